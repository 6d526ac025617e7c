"""Tiny pipelines built once per session, pictures to start from, and no network for any image test."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data
from tests.images.tiny_models import build_tiny_lora, build_tiny_pipeline


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test: the weights are local, nothing is downloaded."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a network connection was attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: these models are too small to share out, and on a busy machine two threads
    waiting on each other make a tiny convolution tens of times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every kind in both forms. Same seed, so the folder and the single file hold the same weights."""
    import torch

    torch.set_num_threads(1)  # see one_thread
    root = tmp_path_factory.mktemp("tiny-models")
    models = {}
    for kind in ("text2img", "inpaint", "upscale", "controlnet"):
        models[kind] = build_tiny_pipeline(root / "folders", kind)
        models[f"{kind}-file"] = build_tiny_pipeline(root / "files", kind, single_file=True)
    models["loras"] = root / "loras"
    build_tiny_lora(root / "loras" / "ink.safetensors", models["text2img"])
    build_tiny_lora(root / "loras" / "ink-kohya.safetensors", models["text2img"], layout="kohya")
    return models


@pytest.fixture(scope="session")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The astronaut photo (a real face), a mask over her face, and a small copy to enlarge."""
    root = tmp_path_factory.mktemp("pictures")
    photo = root / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    mask = np.zeros((512, 512, 3), np.uint8)
    mask[60:260, 140:320] = 255
    Image.fromarray(mask).save(root / "mask.png")
    Image.fromarray(data.astronaut()).resize((48, 40), Image.Resampling.LANCZOS).save(root / "small.png")
    return {"photo": photo, "mask": root / "mask.png", "small": root / "small.png"}
