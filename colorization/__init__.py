"""Automatic image colorization in CIE Lab: the network sees L and predicts ab.

>>> from colorization import load_colorizer
>>> colorizer = load_colorizer()            # the best weights shipped in weights/
>>> result = colorizer(PIL.Image.open("old_photo.jpg"))

Training lives in :mod:`colorization.train` (``TrainConfig``, ``train``), imported only when asked for, so
the inference API stays light.
"""

from .color import is_grayish, lab_to_rgb, rgb_to_lab
from .evaluation import evaluate, score_prepared
from .hints import hint_image, rgba_hints, suggested_colours
from .images import ImageError, find_images, read_image
from .metrics import colorfulness, psnr, ssim
from .models import MODELS, build_model
from .pipeline import Colorizer, available_weights, load_colorizer, prepare
from .reference import ReferenceMatches, match_reference, prepare_reference
from .video import (VideoBudget, VideoError, VideoInfo, VideoStats, colorize_frames, colorize_video, evaluate_video,
                    is_video, probe_video)
from .weights import WeightsError, load_weights, read_metadata, save_weights

__all__ = [
    "Colorizer",
    "ImageError",
    "MODELS",
    "ReferenceMatches",
    "VideoBudget",
    "VideoError",
    "VideoInfo",
    "VideoStats",
    "WeightsError",
    "available_weights",
    "build_model",
    "colorfulness",
    "colorize_frames",
    "colorize_video",
    "evaluate",
    "evaluate_video",
    "find_images",
    "hint_image",
    "is_grayish",
    "is_video",
    "lab_to_rgb",
    "load_colorizer",
    "load_weights",
    "match_reference",
    "prepare",
    "prepare_reference",
    "probe_video",
    "psnr",
    "read_image",
    "read_metadata",
    "rgb_to_lab",
    "save_weights",
    "rgba_hints",
    "score_prepared",
    "ssim",
    "suggested_colours",
]
