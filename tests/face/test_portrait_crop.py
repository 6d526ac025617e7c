"""Portrait crop and paste-back on a real photo (the astronaut scikit-image ships).

The pipeline tests use a stand-in engine named ``liveportrait`` (the real one needs 130M-parameter
weights; its own tests cover it): it returns the source crop, enlarged to the network's 512-pixel
output, for every driving frame, so the pasted-back video must reproduce the photo.
"""

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from animatica.engines import ENGINES
from animatica.errors import AnimaticaError
from animatica.face.analyzer import FaceBox, NoFaceError
from animatica.face.portrait_crop import (
    LIVEPORTRAIT_DRIVING,
    LIVEPORTRAIT_SOURCE,
    PASTE_BACK_MAX_SIDE,
    CropWindow,
    PasteBack,
    crop_mask,
    crop_portrait,
    track_windows,
    warp_crop,
    window_from_landmarks,
)
from animatica.pipeline import AnimationRequest, animate, prepare

from .conftest import FACE_CENTRE, move


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255**2 / max(mse, 1e-12))


def to_crop(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ m[:, :2].T + m[:, 2]


@pytest.fixture(scope="module")
def source_crop(astronaut, analyzer):
    return crop_portrait(astronaut, 512, analyzer=analyzer)


def test_window_matrices_map_the_square_onto_the_crop() -> None:
    window = CropWindow(300.0, 200.0, 180.0, math.radians(25))
    m, inv = window.matrix(512), window.inverse(512)
    assert np.allclose(to_crop(m, np.array([[300.0, 200.0]])), [[255.5, 255.5]])
    # The window's corners (turned by its angle) land on the crop's outer pixel edges.
    c, s = math.cos(window.angle), math.sin(window.angle)
    across, down = np.array([c, s]), np.array([-s, c])
    corner = np.array([300.0, 200.0]) - 90 * across - 90 * down
    assert np.allclose(to_crop(m, corner[None]), [[-0.5, -0.5]])
    assert np.allclose(
        to_crop(inv, to_crop(m, np.array([[10.0, 20.0], [400.0, -3.0]]))), [[10, 20], [400, -3]]
    )
    assert np.allclose(CropWindow.from_array(window.to_array()).matrix(256), window.matrix(256))


@pytest.mark.parametrize(("side", "size"), [(150.0, 256), (390.0, 128)])  # enlarged; box-reduced by 3
def test_warp_crop_samples_where_the_matrix_says(side: float, size: int) -> None:
    """On a linear ramp every interpolation is exact, so any half-pixel slip would show."""
    ys, xs = np.mgrid[0:400, 0:600].astype(np.float64)
    ramp = lambda x, y: 0.3 * x + 0.2 * y + 20  # noqa: E731
    image = np.repeat(np.rint(ramp(xs, ys))[..., None], 3, axis=2).astype(np.uint8)
    window = CropWindow(310.0, 190.0, side, math.radians(-12))
    crop = warp_crop(image, window, size)
    inv = window.inverse(size)
    cy, cx = np.mgrid[0:size, 0:size].astype(np.float64)
    px = inv[0, 0] * cx + inv[0, 1] * cy + inv[0, 2]
    py = inv[1, 0] * cx + inv[1, 1] * cy + inv[1, 2]
    seen = (px > 3) & (px < 596) & (py > 3) & (py < 396)  # beyond the picture the edge repeats
    assert seen.mean() > 0.5
    error = (crop[..., 0] - ramp(px, py))[seen]
    assert np.abs(error).max() < 0.8  # the photo's own rounding plus the crop's
    assert abs(error.mean()) < 0.05  # no bias: half a pixel off would be 0.18, a truncation 0.5
    assert (crop[..., 0] == crop[..., 2]).all()


def test_crop_is_centred_on_the_face(astronaut, analyzer, source_crop) -> None:
    crop = source_crop
    assert crop.image.shape == (512, 512, 3) and crop.found_by == "hog"
    assert abs(crop.window.cx - FACE_CENTRE[0]) < 15
    # LivePortrait's framing: the landmarks span 1/2.3 of the crop, their box sits 0.125 crop sides
    # below the centre, the eyes-to-mouth axis upright.
    points = to_crop(crop.matrix, crop.landmarks)
    lo, hi = points.min(axis=0), points.max(axis=0)
    assert (hi - lo).max() == pytest.approx(512 / 2.3, rel=1e-6)
    assert (lo + hi) / 2 == pytest.approx([255.5, 255.5 + 0.125 * 512], abs=1e-6)
    # An independent look: the detector finds the face in the crop, horizontally centred.
    box = analyzer.detect(crop.image)[0]
    assert abs(box.center[0] - 255.5) < 0.04 * 512
    assert 0.3 * 512 < box.width < 0.6 * 512
    assert np.allclose(crop.inverse, crop.window.inverse(512)) and np.allclose(
        crop.matrix, crop.window.matrix(512)
    )


@pytest.mark.parametrize("degrees", [20.0, -20.0])
def test_a_turned_photo_is_cropped_upright(astronaut, analyzer, source_crop, degrees: float) -> None:
    turned = move(astronaut, angle_deg=degrees)
    crop = crop_portrait(turned, 256, analyzer=analyzer)
    assert math.degrees(crop.window.angle - source_crop.window.angle) == pytest.approx(degrees, abs=3)
    points = analyzer.landmarks(crop.image, analyzer.detect(crop.image, thorough=True)[0])
    eyes = points[45] - points[36]
    assert abs(math.degrees(math.atan2(eyes[1], eyes[0]))) < 4


def test_paste_back_of_an_unmodified_crop_gives_the_photo_back(astronaut, source_crop) -> None:
    paste = PasteBack(astronaut, source_crop.window)
    out = paste(source_crop.image)
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    weights = np.zeros(astronaut.shape[:2], np.float32)
    x0, y0, x1, y1 = paste.box
    weights[y0:y1, x0:x1] = paste.mask[..., 0]
    inside, outside = weights == 1, weights == 0
    assert inside.sum() > 20_000 and outside.sum() > 100_000
    assert psnr(out[inside], astronaut[inside]) >= 35
    assert np.array_equal(out[outside], astronaut[outside])
    # The face itself (its landmark box) is well inside the opaque part.
    (fx0, fy0), (fx1, fy1) = source_crop.landmarks.min(axis=0), source_crop.landmarks.max(axis=0)
    assert inside[int(fy0) : int(fy1), int(fx0) : int(fx1)].all()
    # A crop of another size (a network's 256 input, say) pastes back through the same window.
    small = warp_crop(astronaut, source_crop.window, 256)
    assert psnr(paste(small)[inside], astronaut[inside]) >= 30


def test_the_mask_is_feathered() -> None:
    mask = crop_mask(512)
    assert mask[255, 255] == 1 and mask[0, 0] == 0 and mask[255, 0] == 0
    band = (mask > 0) & (mask < 1)
    assert band.sum() > 0.1 * mask.size  # a wide soft band, not a hard edge
    row = mask[255, 256:]
    assert (np.diff(row) <= 0).all()  # falls steadily from the centre outwards
    assert np.abs(np.diff(row)).max() < 0.03  # and never in a jump


def test_paste_back_changes_only_the_masked_region(astronaut, source_crop) -> None:
    paste = PasteBack(astronaut, source_crop.window)
    white = paste(np.full((512, 512, 3), 255, np.uint8))
    changed = np.any(white != astronaut, axis=2)
    x0, y0, x1, y1 = paste.box
    assert not changed[:y0].any() and not changed[y1:].any()
    assert not changed[:, :x0].any() and not changed[:, x1:].any()
    # Inside, the weights show: full white in the middle of the face, a blend on the band.
    cx, cy = round(source_crop.window.cx), round(source_crop.window.cy)
    assert (white[cy, cx] == 255).all()


class ScriptedAnalyzer:
    """One face whose landmarks the test sets per frame (the frame's first pixel is its index)."""

    def __init__(self, tracks: np.ndarray) -> None:
        self.tracks = tracks  # (N, 68, 2)

    def detect(self, image: np.ndarray, **_: Any) -> list[FaceBox]:
        points = self.tracks[int(image[0, 0, 0])]
        return [FaceBox.around(points, score=1.0)]

    def landmarks(self, image: np.ndarray, box: FaceBox) -> np.ndarray:
        return self.tracks[int(image[0, 0, 0])]

    def embedding(self, image: np.ndarray, box: FaceBox) -> np.ndarray:
        raise NotImplementedError


def test_smoothing_a_jittered_track_removes_the_jitter(astronaut_landmarks) -> None:
    n = 40
    rng = np.random.default_rng(1)
    drift = np.linspace(0, 40, n)[:, None] * np.array([1.0, 0.5])  # the head glides 40 px right
    jitter = rng.normal(0, 2.0, (n, 2))
    tracks = astronaut_landmarks[None] + (drift + jitter)[:, None, :]
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(n)]
    analyzer = ScriptedAnalyzer(tracks)
    raw = track_windows(frames, analyzer=analyzer, every=1, smooth=0)
    smooth = track_windows(frames, analyzer=analyzer, every=1, smooth=6)
    assert raw.shape == smooth.shape == (n, 4) and (smooth[:, 3] == 0).all()  # driving crops stay unturned
    truth = np.array(
        [window_from_landmarks(astronaut_landmarks + d, LIVEPORTRAIT_DRIVING).to_array() for d in drift]
    )
    raw_error = np.abs(raw[:, :2] - truth[:, :2]).mean()
    smooth_error = np.abs(smooth[:, :2] - truth[:, :2]).mean()
    assert raw_error > 1.0 and smooth_error < 0.4 * raw_error
    wobble = lambda w: np.abs(np.diff(w[:, :2], n=2, axis=0)).mean()  # noqa: E731
    assert wobble(smooth) < 0.1 * wobble(raw)
    assert smooth[-1, 0] - smooth[0, 0] == pytest.approx(40, abs=3)  # the glide itself is followed


def test_no_face_is_the_projects_no_face_error(analyzer) -> None:
    grey = np.full((48, 64, 3), 128, np.uint8)
    with pytest.raises(NoFaceError, match="No face was found in the source image"):
        crop_portrait(grey, analyzer=analyzer)
    with pytest.raises(NoFaceError, match="No face was found in the driving video"):
        track_windows([grey, grey], analyzer=analyzer)


def test_framings_are_liveportraits() -> None:
    assert (LIVEPORTRAIT_SOURCE.scale, LIVEPORTRAIT_SOURCE.vx, LIVEPORTRAIT_SOURCE.vy) == (2.3, 0.0, -0.125)
    assert LIVEPORTRAIT_SOURCE.rotate and not LIVEPORTRAIT_DRIVING.rotate
    assert (LIVEPORTRAIT_DRIVING.scale, LIVEPORTRAIT_DRIVING.vy) == (2.2, -0.1)


# ---- the pipeline, with a stand-in engine -------------------------------------------------------


class EchoEngine:
    """A square-crop engine that animates nothing: every output frame is the source crop at 512."""

    name = "liveportrait"
    frame_size = (256, 256)
    warmup_frames = 0

    def __init__(self) -> None:
        self.driving: list[np.ndarray] = []

    def prepare(self, source: np.ndarray, initial_driving: np.ndarray) -> dict[str, Any]:
        assert source.shape == initial_driving.shape == (256, 256, 3)
        return {"out": np.asarray(Image.fromarray(source).resize((512, 512), Image.Resampling.BICUBIC))}

    def animate(self, state: dict[str, Any], driving: np.ndarray) -> np.ndarray:
        self.driving.extend(driving)
        return np.stack([state["out"]] * len(driving))

    def preload(self) -> None:
        pass

    def warm_up(self, state: dict[str, Any], driving: np.ndarray) -> None:
        pass

    def state_to_dict(self, state: dict[str, Any]) -> dict[str, Any]:
        return {"out": torch.from_numpy(state["out"].copy())}

    def state_from_dict(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"out": data["out"].numpy()}


@pytest.fixture
def echo(monkeypatch) -> EchoEngine:
    engine = EchoEngine()
    monkeypatch.setitem(ENGINES, "liveportrait", lambda **options: engine)
    return engine


@pytest.fixture(scope="module")
def photo_inputs(astronaut, tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    """A wide photo (the astronaut on a 2000 x 600 canvas, beyond the paste-back cap) and a
    driving clip of 3 small PNG frames of the astronaut tilting her head."""
    folder = tmp_path_factory.mktemp("portrait")
    wide = np.zeros((600, 2000, 3), np.uint8)
    wide[...] = astronaut[:1, :1]  # the photo's background colour
    wide[50:562, 700:1212] = astronaut
    source = folder / "wide.png"
    Image.fromarray(wide).save(source)
    driving = folder / "driving"
    driving.mkdir()
    for i, angle in enumerate([0.0, 3.0, 6.0]):
        frame = Image.fromarray(move(astronaut, angle_deg=angle)).resize((256, 256), Image.Resampling.BOX)
        frame.save(driving / f"{i:03d}.png")
    return source, driving, wide


def read_frames(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.iterdir())]


def test_pipeline_pastes_the_animated_crop_back_into_the_photo(echo, photo_inputs, tmp_path) -> None:
    source, driving, wide = photo_inputs
    out = tmp_path / "out"
    result = animate(AnimationRequest(source, driving, f"{out}/", engine="liveportrait", batch_size=2))
    frames = read_frames(out)
    assert result.frames == len(frames) == 3
    # The output is the whole photo, scaled to the cap; the engine saw 256-pixel face crops.
    assert frames[0].shape == (576, PASTE_BACK_MAX_SIDE, 3)
    assert all(d.shape == (256, 256, 3) for d in echo.driving) and len(echo.driving) == 3
    expected = np.asarray(Image.fromarray(wide).resize((1920, 576), Image.Resampling.LANCZOS))
    face = np.s_[130:210, 850:1000]  # the astronaut's face, in the scaled photo
    assert psnr(frames[0][face], expected[face]) >= 35
    assert np.array_equal(frames[0][:, :600], expected[:, :600])  # far from the face: the photo itself
    assert all(np.array_equal(f, frames[0]) for f in frames[1:])

    # A prepared job (a worker's segment) pastes back the same frames without finding the face again.
    blob = prepare(AnimationRequest(source, driving, "unused/", engine="liveportrait")).to_bytes()
    segment = tmp_path / "segment"
    animate(AnimationRequest(source, driving, f"{segment}/", engine="liveportrait", start=2), prepared=blob)
    assert all(np.array_equal(a, b) for a, b in zip(read_frames(segment), frames[2:], strict=True))


def test_pipeline_without_paste_back_gives_the_crops(echo, photo_inputs, tmp_path) -> None:
    source, driving, _ = photo_inputs
    out = tmp_path / "out"
    animate(AnimationRequest(source, driving, f"{out}/", engine="liveportrait", paste_back=False, stop=1))
    assert read_frames(out)[0].shape == (512, 512, 3)


def test_paste_back_needs_a_crop_engine_and_cropping(echo, photo_inputs, tmp_path) -> None:
    source, driving, _ = photo_inputs
    with pytest.raises(AnimaticaError, match="needs cropping"):
        animate(
            AnimationRequest(
                source, driving, f"{tmp_path}/a/", engine="liveportrait", crop_face=False, paste_back=True
            )
        )
    with pytest.raises(AnimaticaError, match="animates the whole photo already"):
        animate(
            AnimationRequest(
                source, driving, f"{tmp_path}/b/", engine="landmarks", crop_face=True, paste_back=True
            )
        )
