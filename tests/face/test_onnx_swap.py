"""Running an operator's ONNX face-swap models: loading and refusing files, alignment, batching,
the identity path through the swapper's identity matrix, and paste-back.

The models are random-weight graphs of the real signatures, built in ``tmp_path`` (``onnx_models``).
"""

from pathlib import Path

import cv2
import numpy as np
import pytest
from tests.face import onnx_models
from tests.face.conftest import move
from tests.face.swap_faces import astronaut_face, other_person

from animatica.face import geometry as g
from animatica.face import onnx_swap as ox
from animatica.face.analyzer import get_analyzer


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return onnx_models.pair(tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="module")
def models(files) -> ox.SwapModels:
    return ox.load_models(ox.SwapModelFiles(str(files[0]), str(files[1])))


def landmarks(image: np.ndarray) -> np.ndarray:
    analyzer = get_analyzer()
    return analyzer.landmarks(image, analyzer.detect(image, thorough=True)[0]).astype(np.float64)


# --- loading ---


def test_models_of_the_real_signatures_load_once_per_process(files, models) -> None:
    assert models.swapper.emap.shape == (512, 512) and models.swapper.shared_source
    assert models.swapper.batch is None and models.identity.batch is None  # both take batches
    assert ox.load_models(ox.SwapModelFiles(str(files[0]), str(files[1]))) is models
    # The matrix used is the file's last initializer, whatever its values.
    emap = np.eye(512, dtype=np.float32)[::-1]
    other = onnx_models.swapper(files[0].parent / "reversed.onnx", emap=emap)
    assert np.array_equal(ox.SwapperModel(other).emap, emap)


@pytest.mark.parametrize(
    ("build", "role", "found"),
    [
        (lambda p: onnx_models.swapper(p, side=64), "ANIMATICA_SWAP_MODEL", "'target' (N, 3, 64, 64)"),
        (lambda p: onnx_models.swapper(p, source_name="latent"), "ANIMATICA_SWAP_MODEL", "'latent' (1, 512)"),
        (
            lambda p: onnx_models.swapper(p, with_emap=False),
            "ANIMATICA_SWAP_MODEL",
            "last initializer of shape",
        ),
        (lambda p: onnx_models.recogniser(p), "ANIMATICA_SWAP_MODEL", "'input.1' (N, 3, 112, 112)"),
    ],
)
def test_a_wrong_swapper_is_refused_naming_the_file_its_setting_and_what_belongs_there(
    tmp_path, files, build, role, found
) -> None:
    wrong = build(tmp_path / "wrong.onnx")
    with pytest.raises(ox.ModelFileError) as caught:
        ox.load_models(ox.SwapModelFiles(str(wrong), str(files[1])))
    message = str(caught.value)
    assert message.startswith(f"wrong.onnx ({role}) is not the face swapper model expected")
    assert "inswapper_128" in message and found in message
    assert str(tmp_path) not in message  # the file by name only: the message may reach a service user


@pytest.mark.parametrize(
    ("build", "found"),
    [
        (lambda p: onnx_models.recogniser(p, size=128), "'embedding' (N, 128)"),
        (lambda p: onnx_models.recogniser(p, side=96), "'input.1' (N, 3, 96, 96)"),
        (lambda p: onnx_models.swapper(p), "'target' (N, 3, 128, 128)"),  # the two files swapped round
    ],
)
def test_a_wrong_recogniser_is_refused_naming_its_setting(tmp_path, files, build, found) -> None:
    wrong = build(tmp_path / "arc.onnx")
    with pytest.raises(ox.ModelFileError, match=r"^arc\.onnx \(ANIMATICA_SWAP_IDENTITY_MODEL\)") as caught:
        ox.load_models(ox.SwapModelFiles(str(files[0]), str(wrong)))
    assert "ArcFace" in str(caught.value) and found in str(caught.value)


def test_missing_and_unreadable_files_say_which_setting_and_what_to_get(tmp_path, files) -> None:
    with pytest.raises(
        ox.ModelFileError, match=r"inswapper\.onnx \(ANIMATICA_SWAP_MODEL\) does not exist"
    ) as c:
        ox.load_models(ox.SwapModelFiles(str(tmp_path / "inswapper.onnx"), str(files[1])))
    assert "set ANIMATICA_SWAP_MODEL to an identity-injection face swapper" in str(c.value)
    junk = tmp_path / "w600k.onnx"
    junk.write_bytes(b"\x08\x07not a model at all" * 50)
    with pytest.raises(
        ox.ModelFileError, match=r"w600k\.onnx \(ANIMATICA_SWAP_IDENTITY_MODEL\).*cannot load it"
    ):
        ox.load_models(ox.SwapModelFiles(str(files[0]), str(junk)))
    with pytest.raises(
        ox.ModelFileError, match="No face identity model is configured: set ANIMATICA_SWAP_IDENTITY"
    ):
        ox.load_models(ox.SwapModelFiles(str(files[0]), ""))


# --- alignment ---


def test_the_five_points_land_on_the_template_in_the_crop(tmp_path) -> None:
    """A picture with a dot on each of five points, placed by a known rotation and scale of the
    template: the aligned crop has each dot's centre on its template point."""
    angle, scale, shift = np.deg2rad(17.0), 2.3, np.array([61.0, 40.0])
    placed = g.apply(g.similarity(angle, scale, shift), ox.SWAP_TEMPLATE)
    points = np.zeros((68, 2))
    points[g.RIGHT_EYE], points[g.LEFT_EYE] = placed[0], placed[1]
    points[30], points[48], points[54] = placed[2], placed[3], placed[4]
    picture = np.zeros((420, 420, 3), np.float32)
    ys, xs = np.mgrid[0:420, 0:420]
    for x, y in placed:
        picture[..., 0] += 255 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 3.0**2))
    picture = np.clip(picture, 0, 255).astype(np.uint8)
    crop = ox.aligned_crop(picture, ox.alignment(points, ox.SWAP_TEMPLATE), ox.SWAP_SIDE)[..., 0].astype(
        float
    )
    cys, cxs = np.mgrid[0:128, 0:128]
    for x, y in ox.SWAP_TEMPLATE:
        near = (np.abs(cxs - x) < 6) & (np.abs(cys - y) < 6)
        weight = crop * near
        centre = np.array([(weight * cxs).sum(), (weight * cys).sum()]) / weight.sum()
        assert np.linalg.norm(centre - [x, y]) < 0.5, (centre, (x, y))


def test_a_real_face_is_cut_out_the_same_however_it_sits_in_the_frame() -> None:
    face = astronaut_face(200)
    frame = np.full((300, 360, 3), 90, np.uint8)
    frame[50:250, 80:280] = face
    moved = move(frame, angle_deg=14.0, scale=1.25, shift=(-20.0, 10.0), centre=(180.0, 130.0))
    crops = []
    for image in (frame, moved):
        points = landmarks(image)
        matrix = ox.alignment(points, ox.SWAP_TEMPLATE)
        eyes = g.apply(matrix, ox.five_points(points))[:2]
        assert (
            np.linalg.norm(eyes - ox.SWAP_TEMPLATE[:2], axis=1).max() < 4.0
        )  # a real face's own proportions
        crops.append(ox.aligned_crop(image, matrix, ox.SWAP_SIDE).astype(float))
    inner = (slice(30, 110), slice(30, 100))  # the face, clear of the background the rotation shows
    assert np.abs(crops[0][inner] - crops[1][inner]).mean() < 12
    # While a crop of the same face not aligned differs far more.
    assert np.abs(crops[0][inner] - cv2.resize(moved, (128, 128))[inner]).mean() > 30


# --- inference ---


def test_a_batch_of_crops_gives_what_each_crop_gives_alone(files, models, tmp_path) -> None:
    crops = np.random.default_rng(3).integers(0, 256, (5, 128, 128, 3), dtype=np.uint8)
    latent = models.swapper.latent(np.random.default_rng(4).normal(size=512))
    batch = models.swapper.swap(crops, latent)
    singles = np.concatenate([models.swapper.swap(crops[i : i + 1], latent) for i in range(5)])
    assert batch.shape == (5, 128, 128, 3) and batch.dtype == np.float32
    assert np.allclose(batch, singles, atol=1e-3) and batch.min() >= 0 and batch.max() <= 255
    assert np.abs(batch[0] - batch[1]).mean() > 5  # each crop is its own
    # A model that only takes one crop at a time is run once per crop, to the same result.
    one = ox.SwapperModel(onnx_models.swapper(tmp_path / "one.onnx", batch=1))
    assert one.batch == 1 and np.allclose(one.swap(crops, latent), batch, atol=1e-3)
    faces = crops[:, :112, :112]
    ids = models.identity.embed(faces)
    assert ids.shape == (5, 512) and np.allclose(np.linalg.norm(ids, axis=1), 1.0, atol=1e-5)
    assert np.allclose(ids[2], models.identity.embed(faces[2:3])[0], atol=1e-5)


def test_the_identity_reaches_the_swapper_through_its_identity_matrix(files, models) -> None:
    embedding = np.random.default_rng(5).normal(size=512)
    expected = (embedding / np.linalg.norm(embedding)) @ models.swapper.emap
    assert np.allclose(models.swapper.latent(embedding), expected / np.linalg.norm(expected), atol=1e-5)
    assert np.allclose(models.swapper.latent(3.0 * embedding), models.swapper.latent(embedding), atol=1e-6)
    # Two people's photos, aligned for the recogniser: two identities, two different swaps.
    crop = ox.aligned_crop(
        astronaut_face(200), ox.alignment(landmarks(astronaut_face(200)), ox.SWAP_TEMPLATE), 128
    )
    swaps = []
    for photo in (other_person(), astronaut_face(200)):
        aligned = ox.aligned_crop(photo, ox.alignment(landmarks(photo), ox.ARCFACE_112), ox.IDENTITY_SIDE)
        identity = models.identity.embed(aligned[None])[0]
        swaps.append(models.swapper.swap(crop[None], models.swapper.latent(identity))[0])
    assert np.abs(swaps[0] - swaps[1]).mean() > 2


# --- paste-back ---


def test_paste_back_changes_the_face_and_nothing_outside_the_crop() -> None:
    frame = np.full((260, 300, 3), 100, np.uint8)
    frame[30:230, 50:250] = astronaut_face(200)
    points = landmarks(frame)
    matrix = ox.alignment(points, ox.SWAP_TEMPLATE)
    swapped = np.zeros((128, 128, 3), np.float32)
    swapped[..., 2] = 255.0  # an unmistakable blue face
    out = frame.copy()
    assert ox.paste_back(out, swapped, matrix)
    changed = np.abs(out.astype(int) - frame).sum(axis=2) > 0
    # Inside: the face's middle is the swapped crop's colour.
    nose = np.round(points[30]).astype(int)
    assert tuple(out[nose[1], nose[0]]) == (0, 0, 255)
    # Outside the crop, as mapped back into the frame, not one pixel changed.
    inside = np.zeros(frame.shape[:2], np.uint8)
    corners = g.apply(g.invert(matrix), np.array([[0, 0], [128, 0], [128, 128], [0, 128]], float) - 0.5)
    cv2.fillConvexPoly(inside, np.round(corners).astype(np.int32), 1)
    inside = cv2.dilate(inside, np.ones((3, 3), np.uint8))
    assert changed.any() and not (changed & (inside == 0)).any()
    # And the seam is soft: the crop's own border is left alone, its inside fades in.
    border = cv2.erode(inside, np.ones((5, 5), np.uint8)) ^ inside
    assert not changed[border.astype(bool)].any()


def test_a_crop_entirely_off_the_frame_changes_nothing() -> None:
    frame = np.full((60, 60, 3), 77, np.uint8)
    far = g.similarity(0.0, 1.0, np.array([500.0, 500.0]))  # frame to crop: the crop is far away
    assert not ox.paste_back(frame, np.zeros((128, 128, 3), np.float32), far)
    assert (frame == 77).all()
