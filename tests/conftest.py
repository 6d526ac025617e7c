"""Fixtures shared by the whole suite."""

import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOMM_REFERENCE = REPO / "tests" / "fomm" / "reference"


@pytest.fixture(autouse=True)
def animatica_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own ANIMATICA_HOME, so nothing touches the user's real data folder."""
    from animatica.settings import get_settings

    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("ANIMATICA_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def fomm_reference() -> Path:
    """The FOMM reference data, trimmed and kept in the repository so that a clone alone is tested.

    ``tests/fomm/reference/refresh.py`` writes it from the full reference folder.
    """
    if not (FOMM_REFERENCE / "vox256_parity.npz").is_file():
        pytest.fail(f"FOMM reference data not found in {FOMM_REFERENCE}")
    return FOMM_REFERENCE


@pytest.fixture(scope="session")
def named_checkpoint(fomm_reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vox-256 checkpoint whose weights derive from key names (the reference's parity weights)."""
    out = tmp_path_factory.mktemp("ckpt") / "named.pth.tar"
    argv = sys.argv
    try:
        sys.argv = ["make_named_checkpoint.py", str(out)]
        runpy.run_path(str(fomm_reference / "make_named_checkpoint.py"), run_name="__main__")
    finally:
        sys.argv = argv
    return out


_TINY_DENSE_MOTION = {"block_expansion": 8, "max_features": 64, "num_blocks": 3, "scale_factor": 0.5}
TINY_FOMM_CONFIG = {
    "dataset_params": {"frame_shape": [64, 64, 3]},
    "model_params": {
        "common_params": {"num_kp": 5, "num_channels": 3, "estimate_jacobian": True},
        "kp_detector_params": {
            "temperature": 0.1, "block_expansion": 8, "max_features": 64, "scale_factor": 0.5,
            "num_blocks": 3,
        },
        "generator_params": {
            "block_expansion": 8, "max_features": 64, "num_down_blocks": 2, "num_bottleneck_blocks": 1,
            "estimate_occlusion_map": True, "dense_motion_params": _TINY_DENSE_MOTION,
        },
        "discriminator_params": {
            "scales": [1], "block_expansion": 8, "max_features": 64, "num_blocks": 3, "sn": True,
        },
    },
}  # fmt: skip


@pytest.fixture(scope="session")
def tiny_fomm_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small FOMM at 64x64 with random weights and its config inside: fast real networks for tests."""
    import torch

    from animatica.fomm.checkpoint import save_checkpoint
    from animatica.fomm.config import config_from_dict, config_to_dict, generator_kwargs, kp_detector_kwargs
    from animatica.fomm.generator import OcclusionAwareGenerator
    from animatica.fomm.keypoint_detector import KPDetector

    cfg = config_from_dict(TINY_FOMM_CONFIG)
    torch.manual_seed(0)
    kp_detector = KPDetector(**kp_detector_kwargs(cfg))
    generator = OcclusionAwareGenerator(**generator_kwargs(cfg))
    with torch.no_grad():  # a non-trivial jacobian head, so that relative jacobians matter
        kp_detector.jacobian.weight.normal_(0, 0.01)
    path = tmp_path_factory.mktemp("tiny") / "tiny.pth.tar"
    save_checkpoint(
        path,
        {
            "kp_detector": kp_detector.state_dict(),
            "generator": generator.state_dict(),
            "config": config_to_dict(cfg),
        },
    )
    return path


def write_test_video(
    path: Path, frames: int = 12, size: tuple[int, int] = (96, 80), fps: int = 25, audio: bool = True
) -> Path:
    """A short H.264 clip of a moving disc over a gradient, with a sine tone when ``audio``."""
    import av
    import numpy as np

    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        sound = container.add_stream("aac", rate=44100) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for i in range(frames):
            cx, cy = w / 2 + 10 * np.sin(i / 3), h / 2 + 6 * np.cos(i / 4)
            disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < (min(h, w) / 5) ** 2)[..., None]
            img = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 90)], -1) * ~disc + disc * 230
            frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            samples = frames * 44100 // fps
            t = np.arange(samples) / 44100
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(tone[:, start : start + 1024]), format="fltp", layout="mono"
                )
                chunk.sample_rate = 44100
                for packet in sound.encode(chunk):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return path


@pytest.fixture()
def test_video(tmp_path: Path) -> Path:
    return write_test_video(tmp_path / "driving.mp4")


@pytest.fixture()
def test_image(tmp_path: Path) -> Path:
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[0:120, 0:100]
    img = np.stack([xx * 2, yy * 2, (xx + yy) % 256], -1).astype(np.uint8)
    path = tmp_path / "source.png"
    Image.fromarray(img).save(path)
    return path
