"""GAN fine-tuning on the CPU: a few steps, finite losses, both networks move, the critic phase leaves G alone."""

import json
import math

import torch

from colorization.gan import PatchDiscriminator, gan_step
from colorization.models import build_model
from colorization.train import TrainConfig, train
from colorization.weights import load_weights, save_weights


def test_discriminator_sees_l_and_ab_and_gives_patch_logits():
    d = PatchDiscriminator(base_channels=16)
    out = d(torch.rand(2, 1, 64, 64) * 100, torch.randn(2, 2, 64, 64) * 20)
    assert out.shape[:2] == (2, 1) and out.shape[-1] > 1  # one logit per patch, not per image
    assert all(hasattr(m, "parametrizations") for m in d.modules() if isinstance(m, torch.nn.Conv2d))


def test_gan_step_updates_d_always_and_g_only_when_asked():
    torch.manual_seed(0)
    g, d = build_model("unet", base_channels=8, depth=2), PatchDiscriminator(base_channels=8)
    opt_g, opt_d = torch.optim.Adam(g.parameters(), 1e-3), torch.optim.Adam(d.parameters(), 1e-3)
    config = TrainConfig(crop_size=32, gan=True)
    images = torch.randint(0, 256, (4, 3, 40, 40), dtype=torch.uint8)
    g0 = [p.detach().clone() for p in g.parameters()]
    d0 = [p.detach().clone() for p in d.parameters()]
    losses = gan_step(g, d, None, opt_d, images, config)  # critic pretraining: G frozen
    assert set(losses) == {"loss_d_real", "loss_d_fake"}
    assert all(torch.equal(a, b) for a, b in zip(g0, g.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, d.parameters()))
    losses = gan_step(g, d, opt_g, opt_d, images, config)
    assert set(losses) == {"loss_d_real", "loss_d_fake", "loss_g_adv", "loss_g_l1"}
    assert all(math.isfinite(v.item()) for v in losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(g0, g.parameters()))
    assert all(p.requires_grad for p in d.parameters())  # D unfrozen again for its next step


def test_gan_training_from_a_cnn_through_train(tmp_path, train_photos):
    torch.manual_seed(0)
    cnn = tmp_path / "cnn.safetensors"
    save_weights(cnn, build_model("unet", base_channels=8, depth=2), {"title": "tiny cnn", "render_size": 96}, half=False)
    config = TrainConfig(data=[str(p) for p in train_photos[:10]], out_dir=str(tmp_path / "gan"), init_weights=str(cnn),
                         gan=True, d_pretrain_steps=3, d_base_channels=8, steps=8, batch_size=4, image_size=32,
                         crop_size=32, val_count=2, val_every=4, checkpoint_every=4, log_every=1, workers=0,
                         ema_decay=0.0, warmup_steps=1)
    best = train(config, progress=False)
    records = [json.loads(line) for line in (tmp_path / "gan" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "lr" in r]
    assert all("loss_g_adv" not in r for r in steps[:3]) and all("loss_g_adv" in r for r in steps[3:])
    assert all(math.isfinite(v) for r in steps for k, v in r.items() if k.startswith("loss"))
    assert any("val" in r and "model_colorfulness" in r["val"] for r in records)
    model, meta = load_weights(best)
    assert meta["training"]["initialized_from"]["title"] == "tiny cnn"
    assert meta["render_size"] == 96  # a fine-tuned model keeps the render size its CNN was measured at
    start, _ = load_weights(cnn)
    assert any(not torch.allclose(a, b.float(), atol=1e-3) for a, b in
               zip(start.state_dict().values(), model.state_dict().values()) if a.is_floating_point())
    state = torch.load(tmp_path / "gan" / "checkpoint.pt", weights_only=True)
    assert "discriminator" in state and "opt_d" in state
