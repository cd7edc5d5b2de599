"""Reading photos safely and turning any image mode into float RGB (+ alpha).

Everything that opens a user's file goes through :func:`read_image`, so a bad file always
ends as one :class:`ImageError` that names the path and says what is wrong.
"""

from __future__ import annotations

import functools
import io
import os
import struct
import warnings
from pathlib import Path
from typing import IO, Iterable, Union

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

__all__ = [
    "ImageError",
    "ImageWarning",
    "IMAGE_EXTENSIONS",
    "MAX_MEGAPIXELS",
    "find_images",
    "read_image",
    "to_float_rgb",
    "to_rgb_array",
    "as_float",
    "as_uint8",
    "icc_profile",
    "icc_text",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
# Above this a photo is refused with a message instead of exhausting memory (the pipeline's
# float32 Lab copy of a 100 MP photo is 1.2 GB).
MAX_MEGAPIXELS = 100.0

PathLike = Union[str, os.PathLike]


class ImageError(ValueError):
    """A file or array that cannot be used as a photo; the message says why."""


class ImageWarning(UserWarning):
    """A photo that was used, but not all of it as stored (only the first frame, an ignored colour profile)."""


def find_images(paths: Iterable[PathLike]) -> list[Path]:
    """Expand files and folders (recursively) into a sorted list of image paths.

    Files named explicitly are kept whatever their extension, so a broken one gets reported.
    Raises FileNotFoundError for a path that does not exist.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(
                sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file())
            )
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return found


def read_image(source: Union[PathLike, IO[bytes]], max_megapixels: float = MAX_MEGAPIXELS) -> Image.Image:
    """Open and fully decode an image with its EXIF orientation applied and its colour profile converted to sRGB.

    Raises :class:`ImageError` for a non-image, a truncated or corrupt file, an empty image, or one
    over ``max_megapixels``; warns (:class:`ImageWarning`, also listed in ``image.info["notes"]``) when only
    the first of several frames is used or a colour profile cannot be applied.
    """
    name = str(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(source)
            check_size(img.size, max_megapixels, name)
            frames = getattr(img, "n_frames", 1)
            img.load()  # decode now: a truncated file fails here, not later inside the model
            img = ImageOps.exif_transpose(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file (or a format Pillow cannot read)") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageError(f"{name}: too large (over {max_megapixels:g} megapixels)") from None
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: corrupt or truncated image ({exc})") from None
    notes = []
    if frames > 1:
        notes.append(f"{name}: holds {frames} frames (an animation or several pages); only the first is used")
    img = _to_srgb(img, name, notes)
    for note in notes:
        warnings.warn(note, ImageWarning, stacklevel=2)
    img.info["notes"] = notes  # the same, for a server, where catching warnings is not thread-safe
    return img


_SRGB = ImageCms.createProfile("sRGB")
# Every RGB colour with channels in 0, 51, ..., 255: what a profile must leave unchanged to count as sRGB.
_PROBE = np.stack(np.meshgrid(*[np.arange(0, 256, 51, dtype=np.uint8)] * 3, indexing="ij"), -1).reshape(1, -1, 3)


@functools.lru_cache(maxsize=32)
def _acts_as_srgb(icc: bytes) -> bool:
    """Whether an ICC profile maps RGB colours as sRGB does (within one level), by its numbers, not its name:
    a wide-gamut profile may be called "sRGB IEC61966-2.1"."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        probe = ImageCms.profileToProfile(Image.fromarray(_PROBE, "RGB"), profile, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):  # not an RGB profile, or not a usable one
        return False
    return int(np.abs(np.asarray(probe, np.int16) - _PROBE).max()) <= 1


def _to_srgb(img: Image.Image, name: str, notes: list[str]) -> Image.Image:
    """Convert an embedded ICC profile (Display P3, Adobe RGB, a gray or CMYK profile) to sRGB pixels.

    The pipeline's Lab assumes sRGB; a phone's P3 photo read as sRGB would be scored on the wrong colours.
    """
    icc = img.info.get("icc_profile")
    if not icc:
        return img
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if _acts_as_srgb(icc):
            return img  # already what the pipeline assumes: skip a no-op transform
        alpha = img.getchannel("A") if img.mode in ("RGBA", "LA", "PA") else None
        if img.mode.startswith("I") and profile.profile.xcolor_space.strip() == "GRAY":
            # 16-bit gray to 16-bit gray with sRGB's curve: Pillow's RGB output would keep only 8 of the bits.
            source = img if img.mode == "I;16" else img.convert("I;16")
            converted = ImageCms.profileToProfile(source, profile, _srgb_gray(), outputMode="I;16")
        else:
            source = img.convert({"LA": "L", "PA": "RGB", "P": "RGB", "RGBA": "RGB"}.get(img.mode, img.mode))
            converted = ImageCms.profileToProfile(source, profile, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        # Browsers show a photo with an unusable profile as sRGB; so do we, and say so.
        notes.append(f"{name}: colour profile not applied, read as sRGB ({exc})")
        img.info.pop("icc_profile")  # said once: the pixels are taken as sRGB from here on
        return img
    converted.info.pop("icc_profile", None)  # its pixels are sRGB now, which is what no profile means
    if alpha is not None:
        converted.putalpha(alpha)
    return converted


def icc_profile(space: str, tags: dict[bytes, bytes]) -> bytes:
    """An ICC v2 display profile of colour space ``space`` ("RGB ", "GRAY") from its tags' bodies, PCS XYZ (D50)."""
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags.items():
        data += b"\0" * (-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    d50 = struct.pack(">3i", *(round(v * 65536) for v in (0.9642, 1.0, 0.8249)))
    header = (struct.pack(">I", offset + len(body)) + b"\0" * 4 + bytes([2, 0x10, 0, 0]) + b"mntr"
              + space.encode("ascii") + b"XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 28 + d50 + b"\0" * 48)
    return header + struct.pack(">I", len(tags)) + table + body


def icc_text(text: str) -> bytes:
    """An ICC v2 'desc' tag's body."""
    ascii_text = text.encode("ascii") + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text + b"\0" * 78


@functools.cache
def _srgb_gray() -> ImageCms.ImageCmsProfile:
    """A gray profile with sRGB's tone curve (ICC parametric curve 3) and white: a gray photo's sRGB, in 16 bits."""
    s15 = lambda v: struct.pack(">i", round(v * 65536))  # noqa: E731 - ICC's s15Fixed16Number
    curve = b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(
        s15(v) for v in (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))
    tags = {b"desc": icc_text("sRGB gray"), b"wtpt": b"XYZ \0\0\0\0" + s15(0.9642) + s15(1.0) + s15(0.8249),
            b"kTRC": curve, b"cprt": b"text\0\0\0\0none\0"}
    return ImageCms.ImageCmsProfile(io.BytesIO(icc_profile("GRAY", tags)))


def check_size(size: tuple[int, int], max_megapixels: float, name: str = "image") -> None:
    """Raise :class:`ImageError` for an empty image or one over ``max_megapixels``."""
    w, h = size
    if w < 1 or h < 1:
        raise ImageError(f"{name}: empty image ({w}x{h})")
    if w * h > max_megapixels * 1e6:
        raise ImageError(
            f"{name}: {w}x{h} is {w * h / 1e6:.1f} megapixels, over the limit of {max_megapixels:g}"
        )


def _array_to_float(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):  # e.g. Pillow's mode "I" for 16-bit PNGs
        top = 255.0 if arr.max(initial=0) <= 255 else 65535.0
        return np.clip(arr.astype(np.float32) / top, 0.0, 1.0)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageError("image array holds NaN or infinite values")
        top = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        return np.clip(arr.astype(np.float32) / top, 0.0, 1.0)
    raise ImageError(f"unsupported array dtype {arr.dtype}")


def _pil_to_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("RGB", "L", "RGBA", "LA"):
        return np.asarray(img)
    if mode == "1":
        return np.asarray(img.convert("L"))
    if mode.startswith("I;16") or mode == "I":
        return np.asarray(img.convert("I") if mode != "I" else img).astype(np.int64)
    if mode == "F":
        return np.asarray(img)
    if mode == "P":
        return np.asarray(img.convert("RGBA" if "transparency" in img.info else "RGB"))
    if mode in ("PA", "RGBa", "La"):
        return np.asarray(img.convert("RGBA"))
    return np.asarray(img.convert("RGB"))  # CMYK, YCbCr, LAB, HSV


def to_rgb_array(image: Union[Image.Image, np.ndarray], max_megapixels: float = MAX_MEGAPIXELS):
    """Any PIL image or array (HxW, HxWx1..4; uint8, uint16, float) to (rgb, alpha).

    ``rgb`` is HxWx3, uint8 when the source has 8 bits per channel (the fast path downstream) and
    float32 in [0, 1] otherwise; ``alpha`` is HxW of the same kind, or None.
    """
    if isinstance(image, Image.Image):
        check_size(image.size, max_megapixels)
        notes: list[str] = []  # a photo opened by the caller may still carry a profile
        arr = _pil_to_array(_to_srgb(image, "image", notes))
        for note in notes:
            warnings.warn(note, ImageWarning, stacklevel=2)
    elif isinstance(image, np.ndarray):
        arr = image
    else:
        raise ImageError(f"expected a PIL image or a numpy array, got {type(image).__name__}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        raise ImageError(f"cannot read an image from an array of shape {arr.shape}")
    check_size((arr.shape[1], arr.shape[0]), max_megapixels)
    if arr.dtype != np.uint8:
        arr = _array_to_float(arr)
    alpha = None
    if arr.ndim == 2:
        rgb = np.repeat(arr[..., None], 3, axis=2)
    elif arr.shape[2] == 2:
        rgb, alpha = np.repeat(arr[..., :1], 3, axis=2), arr[..., 1]
    elif arr.shape[2] == 4:
        rgb, alpha = arr[..., :3], arr[..., 3]
    else:
        rgb = arr
    return np.ascontiguousarray(rgb), (None if alpha is None else np.ascontiguousarray(alpha))


def as_float(arr: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1]; float arrays pass through."""
    return arr.astype(np.float32) * np.float32(1 / 255) if arr.dtype == np.uint8 else arr


def as_uint8(arr: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8 (rounded, clipped); uint8 arrays pass through. The inverse of :func:`as_float`."""
    return arr if arr.dtype == np.uint8 else np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)


def to_float_rgb(image: Union[Image.Image, np.ndarray], max_megapixels: float = MAX_MEGAPIXELS):
    """Like :func:`to_rgb_array`, always float32 in [0, 1]."""
    rgb, alpha = to_rgb_array(image, max_megapixels)
    return as_float(rgb), (None if alpha is None else as_float(alpha))
