"""Where the photos come from: the project's collection, a named folder, Imagenette, the offline starter set.

The last test runs every notebook (fast mode) from a copy of the package that has no ``../shared`` beside it,
as someone who cloned the repository runs them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
from pathlib import Path

import pytest
from PIL import Image

from colorization import sources
from colorization.sources import STARTER_EVAL, STARTER_TRAIN, data_paths, imagenette, photo_source, starter

ROOT = Path(__file__).resolve().parent.parent


def _photo(path: Path, colour=(200, 60, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), colour).save(path)


def test_starter_set_is_copied_once_and_its_training_and_evaluation_photos_are_disjoint(tmp_path):
    source = starter(tmp_path)
    train, evaluation = source.train_files(), source.eval_files()
    assert {p.name for p in evaluation} == set(STARTER_EVAL)
    assert set(STARTER_TRAIN) <= {p.name for p in train}  # and Matplotlib's portrait, which the notebooks have
    assert not {p.name for p in train} & {p.name for p in evaluation}
    assert source.folders == ("examples",) and "imagenette" in source.about
    stamp = evaluation[0].stat().st_mtime_ns
    assert starter(tmp_path).eval_files() == evaluation and evaluation[0].stat().st_mtime_ns == stamp


def test_without_the_project_collection_the_default_is_the_starter_set(tmp_path, monkeypatch):
    monkeypatch.delenv("COLORIZATION_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "data_dir", lambda: tmp_path / "shared" / "data")
    source = photo_source()
    assert source.train == tmp_path / "cache" / "colorization" / "starter" / "train"
    assert f"not at {tmp_path / 'shared' / 'data'}" in source.about
    assert len(source.eval_files()) == len(STARTER_EVAL)


def test_a_named_folder_needs_train_and_eval_and_keeps_the_project_order(tmp_path):
    for name in ("zoo", "Kodak24", "McMaster18"):
        _photo(tmp_path / "mine" / "eval" / name / "a.png")
    _photo(tmp_path / "mine" / "train" / "holiday" / "b.png")
    source = photo_source(str(tmp_path / "mine"))
    assert source.folders == ("Kodak24", "McMaster18", "zoo")
    assert "1 training photos in 1 collections, 3 evaluation photos" in source.about
    assert source.photo("zoo/a.png") == tmp_path / "mine" / "eval" / "zoo" / "a.png"
    # a collection or photo this folder lacks falls back to what it has, so the notebooks run on it
    assert source.photo("Kodak24/kodim23.jpg", 2) == tmp_path / "mine" / "eval" / "zoo" / "a.png"
    assert len(source.eval_files("imagenet_sample")) == 3 and len(source.train_files("intel_scenes")) == 1
    _photo(tmp_path / "flat" / "c.png")
    for spec in (tmp_path / "flat", tmp_path / "missing"):
        with pytest.raises(FileNotFoundError, match="expected a folder with train/ and eval/"):
            photo_source(str(spec))


def _fake_imagenette(root: Path) -> None:
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            _photo(root / "imagenette2-160" / split / "n01440764" / f"{split}{i}.JPEG")


def test_imagenette_already_downloaded_is_used_in_place(tmp_path, monkeypatch):
    import torchvision.datasets.imagenette as tv

    def no_network(*args, **kwargs):
        raise AssertionError("downloaded although the photos are there")

    monkeypatch.setattr(tv, "download_and_extract_archive", no_network)
    _fake_imagenette(tmp_path)
    source = imagenette(tmp_path)
    assert len(source.train_files()) == 3 and len(source.eval_files("val")) == 2 and source.folders == ("val",)
    assert "3 training photos" in source.about and "2 validation photos" in source.about
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path.parent / "cache"))
    _fake_imagenette(tmp_path.parent / "cache" / "colorization" / "imagenette")
    assert data_paths(["imagenette", "imagenette-val", "x/y"]) == [
        str(tmp_path.parent / "cache" / "colorization" / "imagenette" / "imagenette2-160" / "train"),
        str(tmp_path.parent / "cache" / "colorization" / "imagenette" / "imagenette2-160" / "val"), "x/y"]


def test_imagenette_cut_short_says_to_download_it_again(tmp_path, monkeypatch):
    import torchvision.datasets.imagenette as tv

    monkeypatch.setattr(tv, "download_and_extract_archive", lambda *a, **k: None)
    _photo(tmp_path / "imagenette2-160" / "train" / "n01440764" / "a.JPEG")  # no val/: extraction stopped
    with pytest.raises(RuntimeError, match="incomplete"):
        imagenette(tmp_path)


def test_imagenette_without_network_says_what_to_do(tmp_path, monkeypatch):
    import torchvision.datasets.imagenette as tv

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(tv, "download_and_extract_archive", offline)
    with pytest.raises(RuntimeError, match="COLORIZATION_DATA=starter"):
        imagenette(tmp_path)


def test_cli_evaluates_and_trains_on_the_starter_set_by_name(tmp_path, weights_file):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "OMP_NUM_THREADS": "2"}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "colorization", *args], capture_output=True, text=True,
                              env=env, cwd=tempfile.gettempdir(), timeout=600)

    r = run("evaluate", "--weights", str(weights_file), "--data", "starter-eval", "--render-size", "64",
            "--json", str(tmp_path / "report.json"))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "report.json").read_text())["images"] == len(STARTER_EVAL)
    r = run("train", "--data", "starter", "--out-dir", str(tmp_path / "run"), "--steps", "2", "--batch-size", "2",
            "--crop-size", "32", "--image-size", "64", "--val-count", "1", "--val-every", "2", "--workers", "0",
            "--model", "unet", "--no-pretrained")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run" / "best.safetensors").is_file()
    env["COLORIZATION_DATA"] = str(tmp_path / "no_such_folder")
    r = run("train", "--out-dir", str(tmp_path / "run2"), "--steps", "1")
    assert r.returncode != 0 and "--data starter" in r.stderr and "Traceback" not in r.stderr


NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("0*.ipynb"))


@pytest.mark.skipif(os.environ.get("COLORIZATION_FAST") != "1", reason="runs the notebooks in fast mode only")
def test_every_notebook_runs_for_a_learner_without_our_photos(tmp_path, monkeypatch):
    """A copy of the package with no ../shared beside it: setup() finds no collection and uses the starter set."""
    import nbformat
    from nbclient import NotebookClient

    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "colorization", clone / "colorization", ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("weights", "examples"):
        (clone / folder).symlink_to(ROOT / folder)
    (clone / "notebooks").mkdir()
    for name in ("COLORIZATION_DATA", "COLORIZATION_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(clone))  # before the editable install's finder
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("COLORIZATION_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for name in NOTEBOOKS:
        notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(clone / "notebooks")}}).execute()
        first = next(c for c in notebook.cells if c.cell_type == "code")
        said = "".join(o.get("text", "") for o in first.outputs)
        assert f"the project's collection is not at {tmp_path / 'shared' / 'data'}" in said, (name, said)
        assert "starter set" in said
    assert (tmp_path / "runs" / "notebook-cnn-fast" / "best.safetensors").is_file()  # notebook 2 trained
    assert (tmp_path / "runs" / "notebook-gan-fast" / "best.safetensors").is_file()  # notebook 3 trained


def _pattern(path: Path, seed: int, size=(48, 32)) -> None:
    """A photo of random blocks (seeded): two seeds give pictures that do not correlate, one seed the same picture."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    blocks = np.random.default_rng(seed).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    Image.fromarray(blocks).resize(size, Image.NEAREST).save(path)


def _weights_trained_on(path: Path, *folders: str) -> Path:
    from colorization.models import build_model
    from colorization.weights import save_weights

    run = {"data": [folders[0]], "config": {"data": [folders[0]]}}
    if len(folders) > 1:  # a fine-tune: the run it started from trained on the second folder
        run["initialized_from"] = {"training": {"data": [folders[1]], "config": {"data": [folders[1]]}}}
    save_weights(path, build_model("unet", base_channels=4, depth=2), {"training": run})
    return path


def test_photo_key_keeps_imagenet_ids_whatever_a_collection_adds():
    assert sources.photo_key("imagenette2-160/val/n01440764/ILSVRC2012_val_00009111.JPEG") == "ilsvrc2012_val_00009111"
    assert sources.photo_key("imagen/n03063338_187_coffee_maker.jpg") == "n03063338_187"
    assert sources.photo_key("Kodak24/kodim03.png") == "kodim03"


def test_a_shipped_file_is_not_scored_on_the_photos_its_runs_trained_on(tmp_path, monkeypatch):
    """The project's collection, named as the GPU runs record it, lists its photos in manifests; a public set's
    photo is left out by its ImageNet id, and a reused plain name only when the picture is the same."""
    collection = tmp_path / "shared" / "data"
    train = collection / "train" / "imagenette"
    _pattern(train / "val" / "n01440764" / "ILSVRC2012_val_00009111.webp", 1)
    _pattern(train / "00" / "01234_forest_2018.webp", 2)
    (train / "manifest.csv").write_text(
        "file,width,height,source,original_path,license\n"
        "val/n01440764/ILSVRC2012_val_00009111.webp,48,32,x,val/n01440764/ILSVRC2012_val_00009111.JPEG,none\n"
        "00/01234_forest_2018.webp,48,32,x,train/forest/2018.jpg,none\n")
    monkeypatch.setattr(sources, "data_dir", lambda: collection)
    weights = _weights_trained_on(tmp_path / "w.safetensors", ".gpu/data/train")

    public = tmp_path / "imagenette2-160" / "val"
    _pattern(public / "n01440764" / "ILSVRC2012_val_00009111.JPEG", 1, size=(96, 72))  # the same photo, larger
    _pattern(public / "n01440764" / "ILSVRC2012_val_00000293.JPEG", 3)  # a photo no run saw
    _pattern(public / "mine" / "2018.jpg", 4)  # the same plain name, another picture
    _pattern(public / "yours" / "2018.png", 2, size=(80, 50))  # that name and its training picture, stretched
    kept, left_out = sources.exclude_training_photos(sorted(public.rglob("*.*")), weights)
    assert sorted(p.relative_to(public).as_posix() for p in left_out) == [
        "n01440764/ILSVRC2012_val_00009111.JPEG", "yours/2018.png"]
    assert sorted(p.relative_to(public).as_posix() for p in kept) == [
        "mine/2018.jpg", "n01440764/ILSVRC2012_val_00000293.JPEG"]
    assert sources.trained_on(weights).unlisted == ()


def test_a_plain_name_counts_as_trained_on_only_with_the_same_picture(tmp_path):
    run = tmp_path / "run" / "train"  # a notebook's run on a folder of its own: its files are its photos
    _pattern(run / "2018.png", 2)
    weights = _weights_trained_on(tmp_path / "w.safetensors", str(run))
    _pattern(tmp_path / "eval" / "2018.jpg", 2, size=(64, 64))
    _pattern(tmp_path / "eval2" / "2018.jpg", 5)
    kept, left_out = sources.exclude_training_photos([tmp_path / "eval" / "2018.jpg", tmp_path / "eval2" / "2018.jpg"],
                                                     weights)
    assert left_out == [tmp_path / "eval" / "2018.jpg"] and kept == [tmp_path / "eval2" / "2018.jpg"]


def test_without_the_collection_it_says_it_cannot_tell(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "data_dir", lambda: tmp_path / "shared" / "data")
    monkeypatch.setattr(sources, "__file__", str(tmp_path / "clone" / "colorization" / "sources.py"))
    _pattern(tmp_path / "own" / "a.png", 1)
    weights = _weights_trained_on(tmp_path / "w.safetensors", str(tmp_path / "own"), "../shared/data/train")
    assert sources.trained_on(weights).unlisted == ("../shared/data/train",)
    with pytest.warns(UserWarning, match="cannot tell which photos w.safetensors trained on.*Imagenette"):
        kept, left_out = sources.exclude_training_photos([tmp_path / "own" / "a.png"], weights)
    assert left_out == [tmp_path / "own" / "a.png"] and kept == []


def test_a_run_dated_before_the_added_collections_did_not_train_on_them(tmp_path, monkeypatch):
    """The metadata names the folder; a run's recorded pool, short of today's by the collections added on
    2026-12-01, says it drew before them. A run that sampled (max_photos) cannot be dated: all collections count."""
    from colorization.models import build_model
    from colorization.weights import save_weights

    train = tmp_path / "shared" / "data" / "train"
    for collection, names in (("old", ["a", "b", "c"]), ("houses_rooms", ["room1", "room2"])):
        rows = ["file,width,height,source,original_path,license"]
        for name in names:
            _pattern(train / collection / f"{name}.webp", hash(name) % 1000)
            rows.append(f"{name}.webp,48,32,x,{name}.jpg,none")
        (train / collection / "manifest.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setattr(sources, "data_dir", lambda: tmp_path / "shared" / "data")

    def weights(name: str, **config) -> Path:
        run = {"data": ["../shared/data/train"], "train_photos": 2, "val_photos": 1, "skipped_photos": 0,
               "config": {"data": ["../shared/data/train"], "max_photos": 0, **config}}
        save_weights(tmp_path / name, build_model("unet", base_channels=4, depth=2), {"training": run})
        return tmp_path / name

    rooms = [train / "houses_rooms" / "room1.webp", train / "old" / "a.webp"]
    kept, left_out = sources.exclude_training_photos(rooms, weights("dated.safetensors"))
    assert kept == [rooms[0]] and left_out == [rooms[1]]
    kept, left_out = sources.exclude_training_photos(rooms, weights("sampled.safetensors", max_photos=3))
    assert kept == [] and left_out == rooms


def test_evaluate_leaves_out_the_photos_the_weights_trained_on_and_says_so(tmp_path):
    from colorization import load_colorizer
    from colorization.evaluation import evaluate

    run = tmp_path / "run"
    for seed in (1, 2):
        _pattern(run / f"{seed}.png", seed)
    weights = _weights_trained_on(tmp_path / "w.safetensors", str(run))
    _pattern(tmp_path / "eval" / "1.png", 1, size=(64, 48))  # a training photo, larger
    _pattern(tmp_path / "eval" / "3.png", 3)
    report = evaluate(load_colorizer(weights, device="cpu"), [tmp_path / "eval"], render_size=32, progress=False)
    assert report["images"] == 1 and report["training_photos_left_out"] == [str(tmp_path / "eval" / "1.png")]
    assert report["training_data_unknown"] == []
    with pytest.raises(FileNotFoundError, match="did not train on"):
        evaluate(load_colorizer(weights, device="cpu"), [tmp_path / "eval" / "1.png"], progress=False)
