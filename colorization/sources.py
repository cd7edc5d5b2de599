"""Where the photos come from: the project's collection, a folder you name, Imagenette, or an offline starter set.

Every source has the same shape: a folder of training collections and a folder of evaluation collections
(one sub-folder each), so the notebooks and ``train`` read any of them the same way. The project's own photos
(``../shared/data``) are not public; someone who cloned the repository picks one of the others with
``COLORIZATION_DATA``:

- a folder with ``train/`` and ``eval/`` sub-folders (one folder of photos per collection inside each);
- ``imagenette``: torchvision's Imagenette, 160 px version, downloaded once (needs network);
- ``starter``: ten photos that ship inside scikit-image and Matplotlib, copied once (no network).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Optional, Sequence

from .images import find_images
from .paths import EVAL_FOLDERS, cache_dir, data_dir

__all__ = ["PhotoSource", "photo_source", "imagenette", "starter", "data_paths", "STARTER_TRAIN", "STARTER_EVAL"]

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
