"""Locate and load the pretrained dlib model files, once per process.

``face_recognition_models`` ships the ``.dat`` files but its ``__init__`` imports
``pkg_resources``, which recent setuptools no longer provides; so the files are found through the
import system's metadata (``find_spec``) without executing the package. Loading a predictor takes
a noticeable fraction of a second, hence the module-level cache: every analyzer, tracker and
metric in the process shares one copy.
"""

import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

from animatica.errors import AnimaticaError

MODELS_PACKAGE = "face-recognition-models"

# File names inside face_recognition_models/models/.
SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"
CNN_DETECTOR = "mmod_human_face_detector.dat"


def _dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover - dlib-bin is a declared dependency
        raise AnimaticaError(
            "The face toolkit needs dlib: install the 'dlib-bin' package (pip install dlib-bin)."
        ) from exc
    return dlib


def model_path(name: str) -> Path:
    """Path of one of the model files, or an error naming the package to install."""
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / "models" / name
        if candidate.is_file():
            return candidate
    raise AnimaticaError(
        f"The face model file {name} was not found: install the '{MODELS_PACKAGE}' package "
        f"(pip install {MODELS_PACKAGE})."
    )


@cache
def frontal_detector() -> Any:
    """dlib's HOG + linear SVM frontal face detector (no file needed: it is built into dlib)."""
    return _dlib().get_frontal_face_detector()


@cache
def cnn_detector() -> Any:
    """dlib's MMOD CNN face detector: slower on CPU, better on turned and small faces."""
    return _dlib().cnn_face_detection_model_v1(str(model_path(CNN_DETECTOR)))


@cache
def shape_predictor_68() -> Any:
    return _dlib().shape_predictor(str(model_path(SHAPE_68)))


@cache
def shape_predictor_5() -> Any:
    return _dlib().shape_predictor(str(model_path(SHAPE_5)))


@cache
def face_encoder() -> Any:
    return _dlib().face_recognition_model_v1(str(model_path(RECOGNITION)))
