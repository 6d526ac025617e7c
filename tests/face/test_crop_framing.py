"""``animatica crop --framing liveportrait``: the photo and the driving video cut exactly as the
liveportrait engine cuts them (LivePortrait's scale, vertical offset and, for a photo, rotation),
written at the 512 pixels the reference cuts at; the plain framing stays the default."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from animatica.cli import app
from animatica.face.crop import crop_image
from animatica.face.portrait_crop import face_axes
from animatica.media.probe import probe
from animatica.pipeline import AnimationRequest, _face_track, _frames, _source

from .conftest import move

# What the pipeline needs of an engine to cut its inputs: its name and its input size.
LIVEPORTRAIT = SimpleNamespace(name="liveportrait", frame_size=(256, 256))


def crop(*args: str) -> str:
    result = CliRunner().invoke(app, ["crop", *args])
    assert result.exit_code == 0, result.output
    return result.output


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def roll_degrees(image: np.ndarray, analyzer) -> float:
    """The head's roll in ``image``: the angle of the face's across axis from the horizontal."""
    points = analyzer.landmarks(image, analyzer.detect(image, thorough=True)[0])
    across, _ = face_axes(points)
    return float(np.degrees(np.arctan2(across[1], across[0])))


@pytest.fixture(scope="module")
def tilted(astronaut, tmp_path_factory) -> Path:
    """The astronaut with her head tilted by 12 degrees."""
    path = tmp_path_factory.mktemp("crop-framing") / "tilted.png"
    Image.fromarray(move(astronaut, angle_deg=12.0)).save(path)
    return path


def test_a_photo_is_cut_as_the_engine_cuts_it_upright_at_512(tilted, analyzer, tmp_path) -> None:
    out = tmp_path / "lp.png"
    assert crop(str(tilted), str(out), "--framing", "liveportrait") == f"wrote {out}\n"
    cut = read(out)
    assert cut.shape == (512, 512, 3)
    request = AnimationRequest(tilted, tilted, tmp_path / "unused.mp4", crop_face=True, paste_back=False)
    engine_input, _, _ = _source(request, LIVEPORTRAIT)
    small = tmp_path / "lp-256.png"
    crop(str(tilted), str(small), "--framing", "liveportrait", "--size", "256")
    assert np.array_equal(read(small), engine_input), "the very crop the engine animates"
    # LivePortrait turns the crop so the eyes are level; the plain framing keeps the photo's tilt.
    assert abs(roll_degrees(np.asarray(Image.open(tilted)), analyzer)) > 10
    assert abs(roll_degrees(cut, analyzer)) < 2
    plain = tmp_path / "plain.png"
    crop(str(tilted), str(plain))
    assert read(plain).shape == (256, 256, 3)
    assert abs(roll_degrees(read(plain), analyzer)) > 10
    assert np.array_equal(read(plain), crop_image(np.asarray(Image.open(tilted))))


def test_the_framing_can_be_adjusted_and_unknown_ones_are_refused(tilted, analyzer, tmp_path) -> None:
    wide, tight = tmp_path / "wide.png", tmp_path / "tight.png"
    crop(str(tilted), str(wide), "--framing", "liveportrait", "--size", "200")
    crop(str(tilted), str(tight), "--framing", "liveportrait", "--size", "200", "--scale", "1.15")

    def face_width(image: np.ndarray) -> float:
        box = analyzer.detect(image, thorough=True)[0]
        return float(box.right - box.left)

    assert face_width(read(tight)) == pytest.approx(2 * face_width(read(wide)), rel=0.15)
    result = CliRunner().invoke(app, ["crop", str(tilted), str(tmp_path / "x.png"), "--framing", "fomm"])
    assert result.exit_code == 2
    assert "Unknown framing 'fomm'; use plain, liveportrait, vaegan." in result.output
    assert not (tmp_path / "x.png").exists()


def test_a_driving_video_is_tracked_and_cut_as_the_engine_does(astronaut, tmp_path) -> None:
    clip = tmp_path / "clip"
    clip.mkdir()
    for i in range(6):  # the head turning and drifting, as PNG frames so nothing is lost
        Image.fromarray(move(astronaut, angle_deg=2.0 * i, shift=(3.0 * i, 0.0))).save(clip / f"{i:03d}.png")
    out = tmp_path / "cut"
    assert (
        crop(str(clip), f"{out}/", "--framing", "liveportrait", "--size", "256")
        == f"wrote {out} (6 frames)\n"
    )
    written = [read(path) for path in sorted(out.iterdir())]
    request = AnimationRequest(clip / "000.png", clip, tmp_path / "unused.mp4", crop_face=True)
    info = probe(clip)
    boxes = _face_track(request, LIVEPORTRAIT, info)
    expected = list(_frames(request, LIVEPORTRAIT, info, boxes))
    assert len(written) == len(expected) == 6
    for got, want in zip(written, expected, strict=True):
        assert np.array_equal(got, want)
    # The driving crop is not turned: the head's roll stays in it, as motion for the engine.
    assert np.abs(written[5].astype(int) - written[0]).mean() > 5

    default = tmp_path / "default"
    crop(str(clip), f"{default}/", "--framing", "liveportrait")
    assert read(next(default.iterdir())).shape == (512, 512, 3)
