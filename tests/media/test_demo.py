from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from skimage import data

from animatica.demo import (
    FACE_BOX,
    demo_driving_frames,
    demo_source,
    demo_voice,
    talking_face_frames,
    talking_face_motion,
    write_demo_driving,
    write_demo_inputs,
)
from animatica.media.probe import probe
from animatica.media.reader import iter_frames, read_image


def test_demo_source_is_the_astronaut_face() -> None:
    source = demo_source()
    assert source.shape == (240, 240, 3) and source.dtype == np.uint8
    left, top, right, bottom = FACE_BOX
    assert np.array_equal(source, data.astronaut()[top:bottom, left:right])
    # Skin in the middle of the crop (red over green over blue), i.e. the face is centred.
    r, g, b = source[100:140, 100:140].reshape(-1, 3).mean(axis=0)
    assert r > g > b


def test_generated_frames_and_sound_are_deterministic() -> None:
    first = np.stack(list(demo_driving_frames(seconds=0.4, fps=10, size=64)))
    second = np.stack(list(demo_driving_frames(seconds=0.4, fps=10, size=64)))
    assert first.shape == (4, 64, 64, 3) and first.dtype == np.uint8
    assert np.array_equal(first, second)
    assert np.array_equal(demo_voice(0.5), demo_voice(0.5))
    assert np.abs(demo_voice(0.5)).max() <= 1.0


def test_talking_face_starts_neutral_and_talks_with_the_voice() -> None:
    motion = talking_face_motion(seconds=4.0, fps=25)
    assert len(motion) == 100 and all(v == 0 for v in motion[0].values())
    mouth = np.array([m["mouth_open"] for m in motion])
    voice = demo_voice(4.0)
    loudness = [np.abs(chunk).mean() for chunk in np.array_split(voice, 100)]
    assert np.corrcoef(mouth, loudness)[0, 1] > 0.8  # the mouth opens on the syllables
    assert sum(m["blink"] > 0.9 for m in motion) >= 2 and max(abs(m["yaw"]) for m in motion) > 5
    first = np.stack(list(talking_face_frames(seconds=0.2, fps=25, size=64)))
    assert first.shape == (5, 64, 64, 3)
    assert np.array_equal(first, np.stack(list(talking_face_frames(seconds=0.2, fps=25, size=64))))


def test_short_driving_video_holds_those_frames(tmp_path: Path) -> None:
    path = write_demo_driving(tmp_path / "a.mp4", seconds=0.4, fps=10, size=64)
    expected = np.stack(list(demo_driving_frames(seconds=0.4, fps=10, size=64))).astype(float)
    decoded = np.stack(list(iter_frames(path))).astype(float)
    assert decoded.shape == expected.shape
    assert (
        10 * np.log10(255**2 / np.mean((decoded - expected) ** 2)) > 30
    )  # CRF 18 with 4:2:0 chroma on a 64 px photo: ~34 dB
    assert sorted(os.listdir(tmp_path)) == ["a.mp4"]


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seconds > 0"):
        write_demo_driving(tmp_path / "x.mp4", seconds=0)
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_demo_inputs(tmp_path: Path) -> None:
    source, driving = write_demo_inputs(tmp_path / "demo")
    assert (source.name, driving.name) == ("source.png", "driving.mp4")
    assert np.array_equal(read_image(source), demo_source())

    info = probe(driving)
    assert (info.kind, info.width, info.height, info.fps, info.frame_count) == ("video", 256, 256, 25.0, 100)
    with av.open(str(driving)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac" and audio.rate == 44100
        assert float(audio.duration * audio.time_base) == pytest.approx(4.0, abs=0.05)

    frames = np.stack(list(iter_frames(driving))).astype(np.float32)
    # Someone else drives the astronaut: the synthetic talking face, not her own photo.
    assert np.abs(frames[0] - next(talking_face_frames())).mean() < 6
    photo = np.asarray(Image.fromarray(demo_source()).resize((256, 256), Image.Resampling.BICUBIC))
    assert np.abs(frames[0] - photo).mean() > 30
    from animatica.face.analyzer import get_analyzer

    assert get_analyzer("hog").detect(frames[0].astype(np.uint8))  # the landmarks engine can track it
    # The head really moves, and smoothly, not in jumps (measured on the upper half: the mouth
    # opens and closes at the pace of syllables).
    head = frames[:, :128]
    from_start = np.abs(head - head[0]).mean(axis=(1, 2, 3))
    steps = np.abs(np.diff(head, axis=0)).mean(axis=(1, 2, 3))
    assert from_start.max() > 8
    assert steps.max() < from_start.max() / 3
    # The background corner barely moves: the motion is the head's, not a camera shake.
    assert np.abs(frames[:, :20, :20] - frames[0, :20, :20]).mean() < from_start.max() / 4

    stamps = (source.stat().st_mtime_ns, driving.stat().st_mtime_ns)
    assert write_demo_inputs(tmp_path / "demo") == (source, driving)
    assert (source.stat().st_mtime_ns, driving.stat().st_mtime_ns) == stamps  # reused
    assert sorted(os.listdir(tmp_path / "demo")) == ["driving.mp4", "source.png"]
