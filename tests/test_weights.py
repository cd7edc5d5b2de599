import json
import struct
import time

import pytest
import torch

from colorization.cli import main
from colorization.models import build_model
from colorization.weights import (WeightsError, interpolate_weights, load_weights, read_metadata, save_weights,
                                  training_config, training_summary, update_metadata)


def test_round_trip_rebuilds_the_model_from_metadata_alone(tmp_path):
    torch.manual_seed(0)
    model = build_model("unet", base_channels=8, depth=3).eval()
    path = tmp_path / "w.safetensors"
    save_weights(path, model, {"title": "t", "render_size": 128, "metrics": {"psnr": 1.5}}, half=False)
    loaded, meta = load_weights(path)
    assert meta["model"] == {"name": "unet", "args": {"base_channels": 8, "depth": 3, "max_channels": 256,
                                                      "output": "regression", "temperature": 0.38}}
    assert meta["render_size"] == 128 and meta["metrics"] == {"psnr": 1.5} and meta["title"] == "t"
    assert meta["lab"] == {"l_center": 50.0, "l_scale": 50.0, "ab_scale": 110.0}
    x = torch.rand(1, 1, 40, 40) * 100
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_half_precision_file_is_smaller_and_close(tmp_path):
    torch.manual_seed(0)
    model = build_model("effnet-unet").eval()
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    save_weights(full, model, {}, half=False)
    save_weights(half, model, {}, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, _ = load_weights(half)
    x = torch.rand(1, 1, 64, 64) * 100
    with torch.no_grad():
        assert (model(x) - loaded(x)).abs().max() < 0.5  # Lab units


def _weights(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(path, build_model("unet", base_channels=8, depth=2), {"title": "t"})
    return path


def test_truncated_file_gives_a_clear_error(tmp_path):
    path = _weights(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="w.safetensors"):
        load_weights(path)


def test_tampered_metadata_gives_a_clear_error(tmp_path):
    path = _weights(tmp_path)
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"]["model"] = json.dumps({"name": "unet", "args": {"base_channels": 16, "depth": 2,
                                                                              "max_channels": 256}})
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + data[8 + n :])
    with pytest.raises(WeightsError, match="do not match"):
        load_weights(path)


def test_not_a_weights_file(tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_text("hello, I am not weights")
    with pytest.raises(WeightsError, match="not a valid safetensors"):
        read_metadata(text)
    with pytest.raises(WeightsError, match="no such weights file"):
        load_weights(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign))
    with pytest.raises(WeightsError, match="not a colorization weights file"):
        load_weights(foreign)


def test_loading_never_unpickles(tmp_path, monkeypatch):
    path = _weights(tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("torch.load called on the inference path")

    monkeypatch.setattr(torch, "load", forbidden)
    load_weights(path)


def test_update_metadata_keeps_tensors(tmp_path):
    from safetensors.torch import load_file

    path = _weights(tmp_path)
    tensors_before, meta_before = load_file(path), read_metadata(path)
    update_metadata(path, {"render_size": 160, "metrics": {"eval": {"psnr": 1.0}}})
    tensors_after = load_file(path)
    # every tensor of the file, bit for bit and in its stored dtype (float16 here), none added or lost
    assert tensors_after.keys() == tensors_before.keys() and len(tensors_before) > 0
    for key, before in tensors_before.items():
        after = tensors_after[key]
        assert after.dtype == before.dtype and torch.equal(after, before), key
    # the new keys merged in, every other key as it was
    assert read_metadata(path) == {**meta_before, "render_size": 160, "metrics": {"eval": {"psnr": 1.0}}}


def test_interpolation_mixes_every_float_tensor_and_says_so(tmp_path):
    torch.manual_seed(0)
    first, second = (build_model("unet", base_channels=8, depth=3).eval() for _ in range(2))
    with torch.no_grad():
        for p in second.parameters():
            p.add_(1.0)  # a different network of the same architecture
    a, b, mid = tmp_path / "a.safetensors", tmp_path / "b.safetensors", tmp_path / "mid.safetensors"
    save_weights(a, first, {"title": "start", "render_size": 128}, half=False)
    save_weights(b, second, {"title": "fine-tuned", "render_size": 160, "training": {"steps": 7}}, half=False)
    interpolate_weights(a, b, 0.25, mid)
    mixed, meta = load_weights(mid)
    sa, sb = first.state_dict(), second.state_dict()
    for key, value in mixed.state_dict().items():
        if value.is_floating_point():
            # stored in float16: equal to the float32 mix within half precision
            torch.testing.assert_close(value, 0.75 * sa[key] + 0.25 * sb[key], rtol=1e-3, atol=1e-3)
    sources = meta["training"]["interpolated_from"]
    assert [(s["path"], s["weight"], s["title"]) for s in sources] == [(str(a), 0.75, "start"), (str(b), 0.25, "fine-tuned")]
    assert sources[1]["training"] == {"steps": 7} and meta["render_size"] == 160
    assert training_config(meta) == {} and training_config({"training": {"config": {"seed": 3}}}) == {"seed": 3}
    assert training_config({"training": {"interpolated_from": [{}, {"training": {"config": {"seed": 5}}}]}}) == {"seed": 5}
    for alpha, model in ((0.0, first), (1.0, second)):
        interpolate_weights(a, b, alpha, mid)
        x = torch.rand(1, 1, 32, 32) * 100
        with torch.no_grad():
            torch.testing.assert_close(load_weights(mid)[0](x), model(x), rtol=2e-2, atol=2e-2)


def test_interpolation_refuses_different_models_and_bad_alpha(tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_weights(a, build_model("unet", base_channels=8, depth=3), {})
    save_weights(b, build_model("unet", base_channels=16, depth=3), {})
    with pytest.raises(WeightsError, match="different models"):
        interpolate_weights(a, b, 0.5, tmp_path / "out.safetensors")
    with pytest.raises(ValueError, match="alpha"):
        interpolate_weights(a, a, 1.5, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_training_summary_reads_a_run_and_an_interpolation(tmp_path):
    a, b, mid = (tmp_path / f"{n}.safetensors" for n in ("a", "b", "mid"))
    run = {"steps": 30, "batch_size": 8, "train_photos": 14, "wall_time_s": 12.4, "hardware": "cpu"}
    save_weights(a, build_model("unet", base_channels=8, depth=3), {"training": run})
    save_weights(b, build_model("unet", base_channels=8, depth=3), {})
    assert training_summary(read_metadata(a)) == "30 steps of batch 8 on 14 photos, 12 s on cpu"
    assert training_summary(read_metadata(b)) == "no training record"
    interpolate_weights(a, b, 0.5, mid)
    assert training_summary(read_metadata(mid)) == (
        "0.5 x [30 steps of batch 8 on 14 photos, 12 s on cpu] + 0.5 x [no training record]")


def _tampered(tmp_path, meta=None, tensors=None):
    """A copy of a small real weights file with metadata entries replaced (None deletes one, bytes are written
    as they are, anything else as JSON) or its tensors changed by ``tensors(state)``."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(_weights(tmp_path)), framework="pt") as f:
        raw, state = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    for key, value in (meta or {}).items():
        if value is None:
            del raw[key]
        else:
            raw[key] = value.decode() if isinstance(value, bytes) else json.dumps(value)
    if tensors:
        tensors(state)
    path = tmp_path / "tampered.safetensors"
    save_file(state, str(path), metadata=raw)
    return path


def _refused_by_info(path, capsys) -> str:
    """``info`` exits 2 with exactly one ``error:`` line; returns that line."""
    capsys.readouterr()
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("args", [{"base_channels": 20000, "depth": 2, "max_channels": 20000},  # ~10 G parameters
                                  {"base_channels": 8, "depth": 10**9}])
def test_metadata_asking_for_a_huge_model_is_refused_fast_without_allocating(tmp_path, capsys, args):
    path = _tampered(tmp_path, {"model": {"name": "unet", "args": args}})
    start = time.perf_counter()
    with pytest.raises(WeightsError, match="tampered.safetensors"):
        load_weights(path)
    assert time.perf_counter() - start < 5
    _refused_by_info(path, capsys)


@pytest.mark.parametrize("meta, message", [
    ({"model": {"name": "unet", "args": {"base_channels": -8, "depth": 2}}}, "cannot rebuild"),
    ({"model": {"name": "unet", "args": {"depth": -1}}}, "cannot rebuild"),
    ({"model": {"name": "unet", "args": {"temperature": float("nan")}}}, "cannot rebuild"),
    ({"model": {"name": "resnet", "args": {}}}, "unknown model"),
    ({"model": "unet"}, "'model' must be"),
    ({"model": {"name": "unet", "args": [8, 2]}}, "'model' must be"),
    ({"lab": None}, "no 'lab'"),
    ({"lab": {"l_center": 50.0, "l_scale": 100.0, "ab_scale": 110.0}}, "Lab normalisation"),
    ({"render_size": 100}, "render_size"),
    ({"render_size": 4096}, "render_size"),
    ({"render_size": "160"}, "render_size"),
    ({"title": 5}, "'title' must be"),
    ({"training": [1]}, "'training' must be"),
    ({"model": b"[" * 100_000}, "corrupt metadata"),
])
def test_bad_metadata_is_one_clear_error_for_load_and_info(tmp_path, capsys, meta, message):
    path = _tampered(tmp_path, meta)
    with pytest.raises(WeightsError, match=message):
        load_weights(path)
    assert message in _refused_by_info(path, capsys)


def _set(key, value):
    return lambda state: state.update({key: value(state[key])})


@pytest.mark.parametrize("change, message", [
    (_set("head.weight", lambda v: torch.full_like(v, float("nan"))), "NaN"),
    (_set("head.weight", lambda v: torch.zeros(3, *v.shape[1:], dtype=v.dtype)), "has shape"),
    (_set("head.weight", lambda v: v.to(torch.int32)), "has dtype"),
    (_set("stem.0.1.num_batches_tracked", lambda v: v.float()), "has dtype"),
    (lambda state: state.pop("head.bias"), "missing"),
    (lambda state: state.update(extra=torch.zeros(2)), "unexpected"),
])
def test_bad_tensors_are_refused_by_load_and_info(tmp_path, capsys, change, message):
    path = _tampered(tmp_path, tensors=change)
    with pytest.raises(WeightsError, match=message):
        load_weights(path)
    assert message in _refused_by_info(path, capsys)


def test_a_render_size_whose_activations_would_not_fit_is_refused_at_load(tmp_path, monkeypatch):
    """Issue 26: the parameter cap does not bound the activations (a 55 M-parameter U-Net whose metadata asked for
    render size 2048 passed 9 GB on a 300 x 200 photo). This 0.2 M-parameter U-Net keeps 64 channels at full
    resolution: at 2048 it needs about 11 GB even on a square photo, and the loader says so before any photo."""
    from colorization import load_colorizer

    path = tmp_path / "wide.safetensors"
    save_weights(path, build_model("unet", base_channels=64, depth=1, max_channels=64), {"render_size": 2048})
    start = time.perf_counter()
    with pytest.raises(WeightsError, match=r"wide\.safetensors: its metadata's render size 2048 needs about 1\d\.\d GB "
                                           r"for the network's activations; at most 5 GB is allowed even on a square "
                                           r"photo \(COLORIZE_MAX_ACTIVATION_GB raises it\)$"):
        load_colorizer(path, device="cpu")
    assert time.perf_counter() - start < 30  # the count runs on the meta device: nothing of that size is allocated
    assert load_colorizer(path, device="cpu", render_size=256).render_size == 256  # a size it can afford
    with pytest.raises(ValueError, match="^render size 4096 needs about"):
        load_colorizer(path, device="cpu", render_size=4096)
    monkeypatch.setenv("COLORIZE_MAX_ACTIVATION_GB", "20")
    assert load_colorizer(path, device="cpu").render_size == 2048
    for bad in ("0", "nan", "lots"):
        monkeypatch.setenv("COLORIZE_MAX_ACTIVATION_GB", bad)
        with pytest.raises(ValueError, match="COLORIZE_MAX_ACTIVATION_GB must be a positive number"):
            load_colorizer(path, device="cpu")


def test_the_activation_count_follows_the_model_and_the_pixels():
    """The meta-device count: more channels, more bytes per pixel; the classification head's 313 bins the most;
    the same per pixel at any size (the networks are convolutional)."""
    from colorization.models import _LiveTensors, activation_bytes_per_pixel

    narrow, wide = (build_model("unet", base_channels=c, depth=2) for c in (8, 32))
    assert 0 < activation_bytes_per_pixel(narrow) < activation_bytes_per_pixel(wide)
    regression = activation_bytes_per_pixel(build_model("unet", base_channels=8, depth=2))
    classification = activation_bytes_per_pixel(build_model("unet", base_channels=8, depth=2,
                                                            output="classification"))
    assert classification > 313 * 4 > regression  # float32 logits for each of the 313 bins, at every pixel
    with torch.device("meta"):
        model = build_model("unet", base_channels=32, depth=2).eval()
        with torch.inference_mode(), _LiveTensors() as live:
            model(torch.zeros(1, 1, 512, 768))
    assert live.peak / (512 * 768) == pytest.approx(activation_bytes_per_pixel(wide), rel=0.01)
