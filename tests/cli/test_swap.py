"""``animatica swap`` as a user runs it: a small clip with sound in, the same clip with another face out."""

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from tests.cli.test_cli import assert_one_line_error, assert_one_line_error_in_process, invoke, run
from tests.face.swap_faces import write_swap_inputs

from animatica.errors import AnimaticaError
from animatica.media.probe import probe
from animatica.media.reader import iter_frames
from animatica.swapping import SYNTHETIC_NOTE, SwapSettings, swap_request


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_swap_inputs(tmp_path_factory.mktemp("swap"))


@pytest.mark.slow
def test_swap_writes_the_clip_with_the_new_face_and_its_sound(inputs, tmp_path, animatica_home) -> None:
    photo, clip = inputs
    out = tmp_path / "swapped.mp4"
    proc = run("swap", "--face", str(photo), "--video", str(clip), "-o", str(out), "-q", home=animatica_home)
    assert proc.returncode == 0, proc.stderr
    assert "10 frames" in proc.stdout and "with audio" in proc.stdout
    info = probe(out)
    assert info.has_audio and (info.width, info.height) == (192, 192)
    before, after = list(iter_frames(clip)), list(iter_frames(out))
    assert len(after) == len(before) == 10
    for b, a in zip(before, after, strict=True):
        face = np.abs(a[50:110, 70:125].astype(int) - b[50:110, 70:125]).mean()
        corner = np.abs(a[:30, :30].astype(int) - b[:30, :30]).mean()  # wall: only coding noise
        assert face > 4 * corner and face > 4, (face, corner)
        mark = np.abs(a[-20:, -64:].astype(int) - b[-20:, -64:]).mean()
        assert mark > 20, "the visible 'AI-generated' mark is in the bottom-right corner"
    with av.open(str(out)) as container:
        assert container.metadata["comment"] == container.metadata["description"] == SYNTHETIC_NOTE


@pytest.mark.slow
def test_the_operator_can_leave_out_the_visible_mark_but_not_the_tags(inputs, tmp_path) -> None:
    photo, clip = inputs
    frames = tmp_path / "frames"
    result = invoke(
        "swap", "--face", str(photo), "--video", str(clip), "-o", f"{frames}/", "-q",
        settings={"ANIMATICA_SWAP_VISIBLE_WATERMARK": "false"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    pngs = sorted(frames.glob("*.png"))
    before = list(iter_frames(clip))
    assert len(pngs) == len(before) == 10
    for png, original in zip(pngs, before, strict=True):
        with Image.open(png) as picture:
            assert picture.text["Comment"] == SYNTHETIC_NOTE  # PNG frames carry the tags as text
            pixels = np.asarray(picture.convert("RGB"))
        assert np.array_equal(pixels[-20:, -64:], original[-20:, -64:]), "no visible mark"


@pytest.mark.slow
def test_a_video_without_any_face_is_refused_and_nothing_is_written(inputs, tmp_path) -> None:
    from animatica.media.writer import open_writer

    photo, _clip = inputs
    wall = tmp_path / "wall.mp4"
    with open_writer(wall, 10) as writer:
        for shade in range(20):
            writer.write(np.full((96, 96, 3), 80 + 4 * shade, np.uint8))
    out = tmp_path / "out.mp4"
    result = invoke("swap", "--face", str(photo), "--video", str(wall), "-o", str(out), "-q")
    assert_one_line_error_in_process(result, "No face was found anywhere in the video")
    assert list(tmp_path.iterdir()) == [wall]  # no output, no temporary file


def test_bad_swap_requests_are_one_line_errors(inputs, tmp_path, animatica_home) -> None:
    photo, clip = inputs
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(blank)
    out = tmp_path / "out.mp4"
    proc = run("swap", "--face", str(blank), "--video", str(clip), "-o", str(out), "-q", home=animatica_home)
    assert_one_line_error(proc, "No face was found in the face photo blank.png")
    assert not out.exists()
    proc = run("animate", "-s", str(photo), "-d", str(clip), "-o", str(out), "--engine", "faceswap",
               home=animatica_home)  # fmt: skip
    assert_one_line_error(proc, "swaps faces", "animatica swap")


def test_swap_requests_check_their_options_before_any_frame(inputs, tmp_path) -> None:
    photo, clip = inputs
    out = tmp_path / "out.mp4"
    with pytest.raises(AnimaticaError, match="needs --reference"):
        swap_request(photo, clip, out, SwapSettings(which="reference"))
    with pytest.raises(AnimaticaError, match="--reference is for --which reference"):
        swap_request(photo, clip, out, reference=photo)
    with pytest.raises(AnimaticaError, match="does not swap faces"):
        swap_request(photo, clip, out, SwapSettings(engine="landmarks"))
    with pytest.raises(AnimaticaError, match="Unknown blend"):
        swap_request(photo, clip, out, SwapSettings(blend="paste"))
    request = swap_request(photo, clip, out, SwapSettings(which="index:1"))
    assert request.engine == "faceswap" and request.engine_options["which"] == "index:1"
    assert request.engine_options["fps"] == 10.0  # the smoothing is tuned to the clip's rate


def talking_astronaut(path: Path, frames: int = 24, fps: int = 12) -> Path:
    """The astronaut's head turning a little while the mouth opens and closes twice: motion with
    expression in it, written as an MP4 (the original video of an evaluation)."""
    import cv2
    from tests.face.conftest import open_mouth
    from tests.face.swap_faces import astronaut_face

    from animatica.face.analyzer import get_analyzer
    from animatica.media.writer import open_writer

    head = astronaut_face(256)
    analyzer = get_analyzer()
    points = analyzer.landmarks(head, analyzer.detect(head, thorough=True)[0]).astype(np.float64)
    with open_writer(path, fps) as writer:
        for i in range(frames):
            phase = 2 * np.pi * i / frames
            talking = open_mouth(head, points, 7.0 * (1 - np.cos(2 * phase)) / 2)
            turn = cv2.getRotationMatrix2D((128.0, 128.0), 4.0 * np.sin(phase), 1.0)
            writer.write(cv2.warpAffine(talking, turn, (256, 256), borderMode=cv2.BORDER_REPLICATE))
    return path


@pytest.mark.slow
def test_evaluate_swap_finds_the_photos_identity_and_the_actors_expression(inputs, tmp_path) -> None:
    photo, _clip = inputs
    clip = talking_astronaut(tmp_path / "talking.mp4")
    out = tmp_path / "swapped.mp4"
    result = invoke("evaluate-swap", "--face", str(photo), "--video", str(clip), "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["frames"] == report["measured"] == 24
    # Measurably closer to the photo's identity than the actor was, and apart from the actor.
    assert report["to_photo"] < report["original_to_photo"] - 0.05, report
    assert report["to_original"] > 0.3, report
    assert report["expression_correlation"] >= 0.8, report
    assert report["jitter_swapped"] < 1.5 * report["jitter_original"] + 1e-3, report
