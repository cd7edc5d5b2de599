"""GAN fine-tuning on the CPU: a few steps, finite losses, both networks move, the critic phase leaves G alone."""

import json
import math

import torch

from colorization.gan import PatchDiscriminator, gan_step
from colorization.models import build_model
from colorization.train import TrainConfig, train
from colorization.weights import load_weights, save_weights


def test_discriminator_sees_l_and_ab_and_gives_patch_logits():
    torch.manual_seed(0)
    d = PatchDiscriminator(base_channels=16).eval()  # eval: no power iteration, so equal inputs give equal logits
    l, ab = torch.rand(2, 1, 64, 64) * 100, torch.randn(2, 2, 64, 64) * 20
    out = d(l, ab)
    assert out.shape[:2] == (2, 1) and out.shape[-1] > 1  # one logit per patch, not per image
    assert torch.equal(d(l, ab), out)
    assert not torch.allclose(d(l, ab + 10), out) and not torch.allclose(d(l * 0.5, ab), out)  # it judges ab given L


def test_every_critic_layer_has_spectral_norm_one_however_large_its_raw_weights_grow():
    # Spectral norm, as behaviour: each conv's effective weight (out, in*k*k) has largest singular value 1,
    # even after its raw weights grow 25-fold as an unchecked critic's would; without it they would be ~25.
    torch.manual_seed(0)
    d = PatchDiscriminator(base_channels=16)
    with torch.no_grad():
        for p in d.parameters():
            p.mul_(25.0)
        for _ in range(10):  # power iterations happen in training mode
            d(torch.rand(2, 1, 64, 64) * 100, torch.randn(2, 2, 64, 64) * 20)
        convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
        sigmas = [torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item() for m in convs]
    assert len(convs) == 5 and all(abs(s - 1.0) < 0.1 for s in sigmas), sigmas


def _gradient_log(*nets):
    """A list that gets one name per parameter each time a backward pass reaches it."""
    log = []
    for name, net in nets:
        for p in net.parameters():
            p.register_hook(lambda grad, name=name: log.append(name))
    return log


def test_gan_step_trains_d_on_detached_fakes_then_g_with_d_frozen():
    settings = {"crop_size": 32, "min_crop_scale": 0.35, "gan_weight": 0.02}
    images = torch.randint(0, 256, (4, 3, 40, 40), dtype=torch.uint8)
    pairs = []
    for _ in range(2):  # two identical (G, D) pairs: one takes a critic-only step, the other a joint step
        torch.manual_seed(0)
        pairs.append((build_model("unet", base_channels=8, depth=2), PatchDiscriminator(base_channels=8)))
    (g_critic, d_critic), (g, d) = pairs
    n_g, n_d = len(list(g.parameters())), len(list(d.parameters()))
    g0 = [p.detach().clone() for p in g.parameters()]
    d0 = [p.detach().clone() for p in d.parameters()]
    log = _gradient_log(("g", g_critic), ("d", d_critic), ("g", g), ("d", d))

    opt_d = torch.optim.Adam(d_critic.parameters(), 1e-3)
    losses = gan_step(g_critic, d_critic, None, opt_d, images, **settings, rng=torch.Generator().manual_seed(1))
    assert set(losses) == {"loss_d_real", "loss_d_fake"}  # critic pretraining:
    assert log == ["d"] * n_d  # one backward pass, D's, and it reached every D parameter and no G one
    assert all(torch.equal(a, b) for a, b in zip(g0, g_critic.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, d_critic.parameters()))

    log.clear()
    opt_g, opt_d = torch.optim.Adam(g.parameters(), 1e-3), torch.optim.Adam(d.parameters(), 1e-3)
    losses = gan_step(g, d, opt_g, opt_d, images, **settings, rng=torch.Generator().manual_seed(1))
    assert set(losses) == {"loss_d_real", "loss_d_fake", "loss_g_adv", "loss_g_l1"}
    assert all(math.isfinite(v.item()) for v in losses.values())
    # D's loss reached D alone (it saw fake.detach()), then G's loss reached G alone (D frozen while G stepped)
    assert log == ["d"] * n_d + ["g"] * n_g
    assert any(not torch.equal(a, b) for a, b in zip(g0, g.parameters()))
    # G's half of the step left D's weights where D's half put them: as after the critic-only step
    for (name, a), b in zip(d.named_parameters(), d_critic.parameters()):
        assert torch.equal(a, b), name


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
    assert any("val" in r and "colorfulness" in r["val"]["model"] for r in records)
    model, meta = load_weights(best)
    assert meta["training"]["initialized_from"]["title"] == "tiny cnn"
    assert meta["render_size"] == 96  # a fine-tuned model keeps the render size its CNN was measured at
    start, _ = load_weights(cnn)
    assert any(not torch.allclose(a, b.float(), atol=1e-3) for a, b in
               zip(start.state_dict().values(), model.state_dict().values()) if a.is_floating_point())
    state = torch.load(tmp_path / "gan" / "checkpoint.pt", weights_only=True)
    assert "discriminator" in state and "opt_d" in state
