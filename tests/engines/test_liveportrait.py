"""The liveportrait engine end to end on name-derived weights, against the reference's own frames.

The command line runs on the reference's already-cropped inputs (``--no-crop``), written as PNGs,
and must write the reference's 512x512 frames within 0.5/255 on average and 3/255 at most (both
truncated to 8 bits). A full-size frame costs seconds on a CPU, so the slow tests render only the
frames they check: two of the command-line run (see ``CLI_FRAMES``) and the absolute-motion frame.
The keypoints of all four relative-motion frames are checked against the reference without
rendering (``test_state_round_trip_and_absolute_motion``).

Both ask for float32 on the CPU: the reference's numbers are float32 ones (``auto`` picks bfloat16
on CPUs with bf16 units), and with the same folder, device and precision every test of the session
that runs the engine in this process shares its one load (``engines.liveportrait._load``).
"""

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from animatica.cli import app
from animatica.engines import load_engine
from animatica.engines.base import StateError
from animatica.engines.liveportrait import LivePortraitEngine, measure_openness, to_uint8
from animatica.errors import CheckpointError
from animatica.fomm.fast import bf16_is_fast
from animatica.liveportrait import motion
from animatica.liveportrait.layout import resolve_weights

PARITY = Path(__file__).resolve().parents[1] / "liveportrait" / "reference" / "parity.npz"
FRAMES = ("t0", "t1", "t2", "t3")
# The command line renders two of the reference's four driving frames. With relative motion every
# frame moves by its difference from the first driving frame and nothing carries over from one
# frame to the next, so a clip of frames 0 and 2 must give the reference's t0 and t2: t0 is the
# source's own pose (the starting point of relative motion), t2 the frame that moves furthest from
# it (largest keypoint and pixel change of the four). Frames 1 and 3 add only more of the same
# per-frame arithmetic, whose keypoints the state test still checks for all four (and t1's pixels
# the service's segment test, ``tests/service/test_liveportrait_service.py``).
CLI_FRAMES = (0, 2)
MEAN_TOL = 0.5  # grey levels
MAX_TOL = 3


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(PARITY) as data:
        return {key: data[key] for key in data.files}


def hwc(chw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(chw.transpose(1, 2, 0))


def inputs(reference: dict) -> tuple[np.ndarray, np.ndarray]:
    """The source (256, 256, 3) and the driving frames (4, 256, 256, 3), uint8 as the reference read them."""
    return hwc(reference["inputs/source"][0]), reference["inputs/driving"].transpose(0, 2, 3, 1).copy()


def assert_frame_close(frame: np.ndarray, reference_chw: np.ndarray) -> None:
    diff = np.abs(frame.astype(np.int16) - hwc(reference_chw).astype(np.int16))
    assert frame.shape == (512, 512, 3)
    assert diff.mean() <= MEAN_TOL and diff.max() <= MAX_TOL, (diff.mean(), diff.max())


def test_weights_resolve_by_name_and_missing_files_are_named(tmp_path: Path) -> None:
    home = tmp_path / "checkpoints"
    (home / "liveportrait" / "base_models").mkdir(parents=True)
    with pytest.raises(CheckpointError) as error:
        resolve_weights(None, home)  # no checkpoint given: the folder "liveportrait" under checkpoints/
    message = str(error.value)
    assert "spade_generator.pth" in message and "stitching_retargeting_module.pth" in message
    assert "KwaiVGI/LivePortrait" in message
    with pytest.raises(CheckpointError, match="not found"):
        load_engine("liveportrait", checkpoint=str(tmp_path / "elsewhere"), config=None)


def test_motion_switches_belong_to_liveportrait(tmp_path: Path) -> None:
    runner = CliRunner()
    common = [
        "animate",
        "-s",
        str(tmp_path / "s.png"),
        "-d",
        str(tmp_path / "d.mp4"),
        "-o",
        str(tmp_path / "o/"),
    ]
    other = runner.invoke(app, [*common, "--engine", "landmarks", "--region", "lips", "--no-stitching"])
    assert other.exit_code == 2 and "--region, --stitching: only the liveportrait engine" in other.output
    bad = runner.invoke(app, [*common, "--engine", "liveportrait", "--region", "nose"])
    assert bad.exit_code == 2 and "unknown animation region 'nose'" in bad.output


def test_truncating_to_8_bits() -> None:
    image = torch.tensor([0.0, 0.5, 254.9 / 255, 1.2, -0.1]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    assert to_uint8(image)[0, 0, :, 0].tolist() == [0, 127, 254, 255, 0]


def test_openness_of_a_photographed_face() -> None:
    from skimage import data

    face = data.astronaut()[0:300, 100:400]
    found = measure_openness(face)
    assert found is not None
    assert all(0.15 < ratio < 0.5 for ratio in found.eyes)  # open eyes
    assert 0.0 <= found.lip < 0.3
    assert measure_openness(np.full((200, 200, 3), 128, np.uint8)) is None


@pytest.mark.slow
def test_command_line_writes_the_reference_frames(
    reference: dict, named_lp_dir: Path, tmp_path: Path
) -> None:
    source, driving = inputs(reference)
    Image.fromarray(source).save(tmp_path / "source.png")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, index in enumerate(CLI_FRAMES):
        Image.fromarray(driving[index]).save(frames / f"{i:05d}.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "animate", "--engine", "liveportrait", "--checkpoint", str(named_lp_dir),
            "--source", str(tmp_path / "source.png"), "--driving", str(frames), "--output", f"{out}/",
            "--no-crop", "--device", "cpu", "--precision", "fp32",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    written = sorted(out.glob("*.png"))
    assert len(written) == len(CLI_FRAMES)
    for path, index in zip(written, CLI_FRAMES, strict=True):
        assert_frame_close(
            np.asarray(Image.open(path).convert("RGB")), reference[f"{FRAMES[index]}/out_u8"][0]
        )


@pytest.mark.slow
def test_state_round_trip_and_absolute_motion(reference: dict, named_lp_dir: Path) -> None:
    source, driving = inputs(reference)
    engine = LivePortraitEngine.load(named_lp_dir, device="cpu", precision="fp32")
    state = engine.prepare(source, driving[0])
    # the state crosses processes as plain data, read back with weights_only=True
    buffer = io.BytesIO()
    torch.save(engine.state_to_dict(state), buffer)
    again = engine.state_from_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    assert torch.equal(again.feature_3d, state.feature_3d)
    x_d = engine.driving_keypoints(state, driving)
    assert torch.equal(engine.driving_keypoints(again, driving), x_d)
    expected = np.concatenate([reference[f"{frame}/x_d_i_new"] for frame in FRAMES])
    np.testing.assert_allclose(x_d.numpy(), expected, rtol=0, atol=1e-4)

    absolute = LivePortraitEngine(engine.loaded, motion.MotionOptions(relative=False))
    with pytest.raises(StateError, match="other motion options"):
        absolute.state_from_dict(engine.state_to_dict(state))
    abs_state = absolute.prepare(source, driving[0])
    x_abs = absolute.driving_keypoints(abs_state, driving[2:3])
    np.testing.assert_allclose(x_abs.numpy(), reference["absolute/t2/x_d_i_new"], rtol=0, atol=1e-4)
    assert_frame_close(absolute.animate(abs_state, driving[2:3])[0], reference["absolute/t2/out_u8"][0])


@pytest.mark.slow
@pytest.mark.skipif(
    not bf16_is_fast(), reason="no bf16 units here: bf16 would be emulated, and auto stays fp32"
)
def test_bf16_frames_stay_within_40_db_of_the_reference(reference: dict, named_lp_dir: Path) -> None:
    """What ``--precision auto`` picks on CPUs with bf16 units must still look like the fp32 frame:
    only the decoder may run in bf16 (a bf16 motion extractor moved the head-pose bins, ~20 dB)."""
    source, driving = inputs(reference)
    fp32 = LivePortraitEngine.load(named_lp_dir, device="cpu", precision="fp32")  # the shared load
    engine = LivePortraitEngine(replace(fp32.loaded, dtype=torch.bfloat16), fp32.options)
    assert engine.precision == "bf16"
    frame = engine.animate(engine.prepare(source, driving[0]), driving[2:3])[0].astype(np.float64)
    expected = hwc(reference["t2/out_u8"][0]).astype(np.float64)
    psnr = 10 * np.log10(255.0**2 / np.mean((frame - expected) ** 2))
    assert psnr >= 40, psnr
