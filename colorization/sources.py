"""Where the photos come from: the project's collection, a folder you name, Imagenette, or an offline starter set.

Every source has the same shape: a folder of training collections and a folder of evaluation collections
(one sub-folder each), so the notebooks and ``train`` read any of them the same way. The project's own photos
(``../shared/data``) are not public; someone who cloned the repository picks one of the others with
``COLORIZATION_DATA``:

- a folder with ``train/`` and ``eval/`` sub-folders (one folder of photos per collection inside each);
- ``imagenette``: torchvision's Imagenette, 160 px version, downloaded once (needs network);
- ``starter``: ten photos that ship inside scikit-image and Matplotlib, copied once (no network).

A public set may hold photos a shipped model trained on: 97 % of torchvision's Imagenette is in the project's
training collection. :func:`trained_on` lists the photos behind a weights file from the collection's manifests,
and :func:`exclude_training_photos` leaves them out of a scoring, or warns that it cannot tell.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from PIL import Image

from .images import find_images
from .paths import EVAL_FOLDERS, cache_dir, data_dir

__all__ = ["PhotoSource", "photo_source", "imagenette", "starter", "data_paths", "STARTER_TRAIN", "STARTER_EVAL",
           "TrainingPhotos", "trained_on", "exclude_training_photos", "photo_key"]

# The natural colour photos bundled with scikit-image's wheel (skimage/data), none fetched from the network.
# The evaluation four are the colour photos of examples/ (the same pictures, before shrinking).
STARTER_EVAL = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")
STARTER_TRAIN = ("motorcycle_left.png", "motorcycle_right.png", "hubble_deep_field.jpg", "retina.jpg", "ihc.png")
_MATPLOTLIB_TRAIN = ("grace_hopper.jpg",)  # Matplotlib's sample_data, a sixth training photo

IMAGENETTE_SIZE = "160px"


@dataclasses.dataclass(frozen=True)
class PhotoSource:
    """A photo collection laid out as training and evaluation collections, with what to expect from it."""

    name: str
    train: Path  # one sub-folder per training collection
    eval: Path  # one sub-folder per evaluation collection
    folders: tuple[str, ...]  # the evaluation collections, in the order tables show them
    about: str  # what it is and what a learner should expect from it

    def train_files(self, collection: Optional[str] = None) -> list[Path]:
        """The photos of one training collection, or every training photo when it is absent or None."""
        if collection and (self.train / collection).is_dir():
            return find_images([self.train / collection])
        return find_images([self.train])

    def eval_files(self, folder: Optional[str] = None) -> list[Path]:
        """The photos of one evaluation collection, or of all of them when it is absent or None."""
        if folder in self.folders:
            return find_images([self.eval / folder])
        return find_images([self.eval / f for f in self.folders])

    def photo(self, name: str, fallback: int = 0) -> Path:
        """``eval/name`` (e.g. ``"Kodak24/kodim23.jpg"``) when it is there, else the ``fallback``-th evaluation photo."""
        if (self.eval / name).is_file():
            return self.eval / name
        files = self.eval_files()
        return files[fallback % len(files)]


def _collections(folder: Path) -> tuple[str, ...]:
    names = sorted(d.name for d in folder.iterdir() if d.is_dir())
    known = [n for n in EVAL_FOLDERS if n in names]
    return tuple(known + [n for n in names if n not in known])


def _folder_source(folder: Path, name: str) -> PhotoSource:
    folders = _collections(folder / "eval")
    if not folders:
        raise FileNotFoundError(f"{folder}/eval has no collections: put evaluation photos in eval/<name>/")
    n_train, n_eval = len(find_images([folder / "train"])), len(find_images([folder / "eval"]))
    return PhotoSource(name, folder / "train", folder / "eval", folders,
                       f"{n_train:,} training photos in {len(_collections(folder / 'train'))} collections, "
                       f"{n_eval:,} evaluation photos in {len(folders)} ({', '.join(folders)})")


def imagenette(root: Optional[Path] = None) -> PhotoSource:
    """torchvision's Imagenette (160 px): 10 ImageNet classes, downloaded into ``root`` once (network needed)."""
    from torchvision.datasets import Imagenette

    root = Path(root) if root is not None else cache_dir() / "imagenette"
    try:
        Imagenette(root, split="train", size=IMAGENETTE_SIZE, download=True)  # returns at once when extracted
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise RuntimeError(f"could not download Imagenette into {root} ({exc}); without network, "
                           "COLORIZATION_DATA=starter uses the photos that ship with scikit-image") from None
    folder = root / f"imagenette2-{IMAGENETTE_SIZE[:-2]}"
    n_train, n_val = (len(find_images([folder / split])) if (folder / split).is_dir() else 0
                      for split in ("train", "val"))
    if not (n_train and n_val):  # an extraction cut short leaves the folder, which torchvision takes as done
        raise RuntimeError(f"{folder} is incomplete ({n_train} training, {n_val} validation photos): delete it "
                           "and run again to download Imagenette afresh")
    return PhotoSource(
        "Imagenette (160 px, torchvision)", folder / "train", folder, ("val",),
        f"{n_train:,} training photos in 10 ImageNet classes, {n_val:,} validation photos as the evaluation "
        "collection; small photos (160 px on the short side) of ten subjects, so expect narrower colours than "
        "the shipped weights learnt from about 44,600 photos of many kinds")


def starter(root: Optional[Path] = None) -> PhotoSource:
    """Ten photos that ship inside scikit-image (and Matplotlib), copied into ``root``: runs with no network."""
    import skimage
    import skimage.data

    root = Path(root) if root is not None else cache_dir() / "starter"
    wanted = [(Path(skimage.data.data_dir) / f, root / "train" / "scikit-image" / f) for f in STARTER_TRAIN]
    wanted += [(Path(skimage.data.data_dir) / f, root / "eval" / "examples" / f) for f in STARTER_EVAL]
    try:
        import matplotlib

        sample_data = Path(matplotlib.get_data_path()) / "sample_data"
        wanted += [(sample_data / f, root / "train" / "matplotlib" / f) for f in _MATPLOTLIB_TRAIN]
    except ImportError:
        pass
    for source, target in wanted:
        if source.is_file() and not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    n_train = len(find_images([root / "train"])) if (root / "train").is_dir() else 0
    if not n_train or not (root / "eval" / "examples").is_dir():
        raise FileNotFoundError(f"scikit-image {skimage.__version__} lacks the starter photos "
                                f"({', '.join(STARTER_TRAIN + STARTER_EVAL)}) in {skimage.data.data_dir}")
    return PhotoSource(
        "starter set (offline: photos shipped with scikit-image and Matplotlib)", root / "train", root / "eval",
        ("examples",),
        f"{n_train} training photos (motorcycles, a Hubble field, a retina, a microscope slide, a portrait) and "
        "scikit-image's originals of the 4 colour photos in examples/ to evaluate on. Enough to run every cell, "
        "far too few to learn colour: a run learns the reds of its photos and paints them over everything (notebook "
        "2's CPU settings: +1.9 dB over gray on the 4 warm evaluation photos and a red night sky, where the shipped "
        "CNN gets +3.4 dB; experiments/starter_set). For a real run set "
        "COLORIZATION_DATA=imagenette (downloads it) or to a folder with train/ and eval/ inside")


def photo_source(spec: Optional[str] = None) -> PhotoSource:
    """The photos to use: ``spec`` or ``$COLORIZATION_DATA`` (a folder, ``imagenette`` or ``starter``), else the
    project's collection in ``../shared/data`` when it is there, else the offline starter set."""
    spec = spec if spec is not None else os.environ.get("COLORIZATION_DATA")
    if spec == "imagenette":
        return imagenette()
    if spec == "starter":
        return starter()
    folder = Path(spec) if spec else data_dir()
    if (folder / "train").is_dir() and (folder / "eval").is_dir():
        return _folder_source(folder, "the project's collection" if not spec else f"your folder {folder}")
    if spec:
        raise FileNotFoundError(f"COLORIZATION_DATA={spec}: expected a folder with train/ and eval/ inside (one "
                                "sub-folder of photos per collection), or imagenette, or starter")
    source = starter()
    return dataclasses.replace(source, about=f"the project's collection is not at {folder}, so: {source.about}")


def data_paths(values: Sequence[str]) -> list[str]:
    """Command-line photo arguments with the public sources' names replaced by their folders: ``imagenette``
    (training photos), ``imagenette-val``, ``starter`` (training photos), ``starter-eval``."""
    named = {
        "imagenette": lambda: imagenette().train,
        "imagenette-val": lambda: imagenette().eval / "val",
        "starter": lambda: starter().train,
        "starter-eval": lambda: starter().eval,
    }
    return [str(named[v]()) if v in named else v for v in values]


# A photo's identity that survives re-encoding: the project's collection is WebP at 128 px, so no byte hash of it
# matches a public copy, but the name does. An ImageNet id (n01440764_10026, ILSVRC2012_val_00009111) names one photo
# whatever a collection appends to it (imagen's "n03063338_187_coffee_maker"), so it is matched by name alone. Other
# names are numbers and words many sets reuse (BSDS's "2018", McMaster's "1", a Kaggle set's "1.jpg"): a photo with
# one of those counts as a training photo only when its picture matches too (:func:`_same_picture`).
_IMAGENET_ID = re.compile(r"(n\d{8}_\d+|ilsvrc2012_val_\d{8})")
_THUMB = 16  # the side both pictures are squashed to: aspect ratio and size differ between copies


def photo_key(name: Union[str, os.PathLike]) -> str:
    """The name a photo is matched by across copies: its ImageNet id when it has one, else its lower-case stem."""
    stem = Path(name).stem.lower()
    found = _IMAGENET_ID.match(stem)
    return found.group(1) if found else stem


def _thumbnail(path: Path):
    """A photo's lightness squashed to 16 x 16, zero mean and unit norm (None when it cannot be read or is flat)."""
    import numpy as np

    from .images import ImageError, read_image

    try:
        image = read_image(path).convert("L").resize((_THUMB, _THUMB), Image.BOX)
    except (ImageError, OSError):
        return None
    values = np.asarray(image, dtype=np.float64).ravel()
    values -= values.mean()
    norm = float(np.linalg.norm(values))
    return values / norm if norm > 1e-6 else None


def _same_picture(a: Path, b: Path) -> bool:
    """Whether two files hold the same picture at any size and aspect: their thumbnails correlate above 0.9
    (the same photo re-encoded is near 1; two photos sharing a name, about 0.0 +- 0.3)."""
    ta, tb = _thumbnail(a), _thumbnail(b)
    return ta is not None and tb is not None and float(ta @ tb) > 0.9


@dataclasses.dataclass(frozen=True)
class TrainingPhotos:
    """The photos the runs behind a weights file trained on, by :func:`photo_key` (with the training files of each
    name that is not an ImageNet id, to compare pictures), and the recorded training folders whose photos cannot
    be listed here (no manifest, no photos): for those nobody can tell."""

    names: dict[str, tuple[Path, ...]]
    unlisted: tuple[str, ...]

    def exclude(self, paths: Sequence[Union[str, os.PathLike]]) -> tuple[list[Path], list[Path]]:
        """(the photos among ``paths`` not trained on, the ones trained on)."""
        kept, seen = [], []
        for path in map(Path, paths):
            key = photo_key(path)
            trained = key in self.names and (_IMAGENET_ID.fullmatch(key) is not None
                                             or any(_same_picture(path, f) for f in self.names[key]))
            (seen if trained else kept).append(path)
        return kept, seen


# The collections added to the project's train/ on 2026-12-01 (../shared/data/README.md: 5,207 photos), after
# every run behind the shipped weights files. Their metadata names the folder, not its collections; what dates a
# run is its recorded pool (train, validation and skipped photos): short of today's folder by about these eight.
ADDED_2026_12_01 = ("camvid_streets", "ccp_street_fashion", "clothing_small", "food101_subset", "grocery_store",
                    "houses_rooms", "shanghaitech_crowds", "stanford_cars_rbfix")


def _training_runs(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The training record of a file's run and of every run it started from or mixed."""
    training = meta.get("training") or {}
    runs = [training] if training.get("data") or training.get("config") else []
    for part in training.get("interpolated_from", []):
        runs += _training_runs(part)
    if training.get("initialized_from"):
        runs += _training_runs(training["initialized_from"])
    return runs


def _project_train(recorded: str) -> Optional[Path]:
    """The project's ``train/`` here for a recorded folder that names it (None for other folders; a missing path
    when it is not here). Runs record it as ``../shared/data/train`` (relative to the repository) or as its copy
    on the GPU machine, ``.gpu/data/train`` (recipes/README.md); ``.../data/train/imagenette`` names one part."""
    parts = Path(recorded).parts
    if "train" not in parts or parts.index("train") == 0 or parts[parts.index("train") - 1] != "data":
        return None
    inside = parts[parts.index("train") + 1:]
    here = [data_dir() / "train", Path(__file__).resolve().parent.parent / "../shared/data/train"]
    folder = next((f for f in here if any(f.glob("*/manifest.csv"))), here[0])
    return folder.joinpath(*inside)


@functools.lru_cache(maxsize=64)
def _manifest_photos(collection: str) -> dict[str, tuple[Path, ...]]:
    """Every photo one collection's manifest lists, by :func:`photo_key` of its file and original names."""
    names: dict[str, list[Path]] = {}
    with open(Path(collection) / "manifest.csv", newline="", encoding="utf-8") as rows:
        for row in csv.DictReader(rows):
            for key in {photo_key(row[k]) for k in ("file", "original_path") if row.get(k)}:
                names.setdefault(key, []).append(Path(collection) / row["file"])
    return {k: tuple(v) for k, v in names.items()}


def _collections_of(run: dict[str, Any], folder: Path) -> list[Path]:
    """The collections of the project's ``folder`` (or ``folder`` itself, one collection) that ``run`` drew from:
    all of them, but for the ones added on 2026-12-01 when its pool shows it drew before them. A run that sampled
    (``max_photos``) or set photos apart (``val_data``) records no pool to date it: all of them count."""
    if (folder / "manifest.csv").is_file():
        return [folder]
    collections = sorted(m.parent for m in folder.glob("*/manifest.csv"))
    config = run.get("config") or {}
    pool = [run.get(k) for k in ("train_photos", "val_photos", "skipped_photos")]
    if config.get("max_photos") or config.get("val_data") or not all(isinstance(n, int) for n in pool):
        return collections
    counts = {c.name: len({f for files in _manifest_photos(str(c)).values() for f in files}) for c in collections}
    added = sum(counts.get(name, 0) for name in ADDED_2026_12_01)
    if added and sum(counts.values()) - sum(pool) >= 0.9 * added:
        return [c for c in collections if c.name not in ADDED_2026_12_01]
    return collections


@functools.lru_cache(maxsize=16)
def _trained_on(path: str, stamp: int) -> TrainingPhotos:
    from .weights import read_metadata  # not at import: the notebooks' first cell stays light

    names: dict[str, list[Path]] = {}
    unlisted: list[str] = []
    for run in _training_runs(read_metadata(path)):
        for recorded in run.get("data") or (run.get("config") or {}).get("data") or []:
            folder = _project_train(recorded)
            if folder is not None and folder.is_dir() and (collections := _collections_of(run, folder)):
                photos = [_manifest_photos(str(c)) for c in collections]
            elif folder is None and Path(recorded).is_dir():  # a folder of its own (a notebook's run): its files
                photos = [{photo_key(f): (f,) for f in find_images([Path(recorded)])}]
            else:
                unlisted.append(recorded)
                continue
            for part in photos:
                for key, files in part.items():
                    names.setdefault(key, []).extend(files)
    return TrainingPhotos({k: tuple(dict.fromkeys(v)) for k, v in names.items()}, tuple(dict.fromkeys(unlisted)))


def trained_on(weights: Union[str, os.PathLike]) -> TrainingPhotos:
    """The photos the runs behind a weights file trained on, read from the training folders its metadata records.

    Of the project's collection, every collection in its manifests counts, but for those added on 2026-12-01 when
    a run's recorded pool dates it before them (:data:`ADDED_2026_12_01`); when in doubt a collection counts: a
    photo left out that was not trained on costs a smaller sample, one kept that was trained on flatters a score.
    """
    path = Path(weights).resolve()
    return _trained_on(str(path), path.stat().st_mtime_ns)


def exclude_training_photos(paths: Sequence[Union[str, os.PathLike]], weights: Union[str, os.PathLike]
                            ) -> tuple[list[Path], list[Path]]:
    """(``paths`` less the photos ``weights`` trained on, those left out); warns when its training photos cannot
    all be listed here, since then scores on a public set (Imagenette above all) may be of training photos."""
    seen = trained_on(weights)
    if seen.unlisted:
        warnings.warn(f"cannot tell which photos {Path(weights).name} trained on: its training data "
                      f"({', '.join(seen.unlisted)}) is not here, so a score on a public set may include its training "
                      "photos (97 % of Imagenette's are in the project's training collection)", stacklevel=2)
    return seen.exclude(paths)
