"""The vaegan engine on tiny random-weight checkpoints: the latent-difference rule, its state, the
command line (animate, morph, train) end to end."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests.cli.test_cli import assert_one_line_error_in_process, invoke
from tests.vaegan.conftest import tiny_config, write_clips, write_random_checkpoint

from animatica.engines import load_engine
from animatica.engines.base import StateError
from animatica.engines.vaegan import VaeganEngine
from animatica.vaegan.morph import slerp


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return write_random_checkpoint(tmp_path / "tiny.pth", tiny_config(), seed=3)


def _engine(checkpoint: Path, **options) -> VaeganEngine:
    engine = load_engine("vaegan", checkpoint=str(checkpoint), device="cpu", precision="fp32", **options)
    assert isinstance(engine, VaeganEngine)
    return engine


def _frames(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 64, 64, 3), dtype=np.uint8)


def test_frames_are_the_source_moved_by_differences_from_the_initial_frame(checkpoint):
    engine = _engine(checkpoint, strength=0.5)
    source, driving = _frames(1, 1)[0], _frames(4, 2)
    state = engine.prepare(source, driving[0])
    out = engine.animate(state, driving)
    assert out.shape == (4, 64, 64, 3) and out.dtype == np.uint8
    z = engine.encode(np.concatenate([source[None], driving]))
    expected = engine.to_uint8(engine.decode(z[:1] + 0.5 * (z[1:] - z[1])))
    assert np.array_equal(out, expected)
    # the initial driving frame itself moves nothing: the decoded source
    assert np.array_equal(out[0], engine.to_uint8(engine.decode(z[:1]))[0])
    # a frame's result does not depend on the chunk it comes in (no running sum)
    assert np.array_equal(engine.animate(state, driving[2:3])[0], out[2])


def test_keep_detail_gives_back_the_photo_where_nothing_moves(checkpoint):
    engine = _engine(checkpoint, keep_detail=True)
    source, driving = _frames(1, 1)[0], _frames(3, 2)
    out = engine.animate(engine.prepare(source, driving[0]), driving)
    assert np.abs(out[0].astype(int) - source).max() <= 1
    z = engine.encode(np.concatenate([source[None], driving]))
    change = engine.decode(z[1:] - z[1] + z[:1]) - engine.decode(z[:1])
    photo = torch.from_numpy(source).permute(2, 0, 1).float() / 255
    assert np.array_equal(out, engine.to_uint8(photo + change))


def test_state_round_trip_and_refusals(checkpoint):
    engine = _engine(checkpoint)
    source, driving = _frames(1, 1)[0], _frames(3, 2)
    state = engine.prepare(source, driving[0])
    saved = engine.state_to_dict(state)
    assert np.array_equal(
        engine.animate(engine.state_from_dict(saved), driving), engine.animate(state, driving)
    )
    with pytest.raises(StateError, match="keep_detail"):
        _engine(checkpoint, keep_detail=True).state_from_dict(saved)
    with pytest.raises(StateError, match="latent"):
        engine.state_from_dict({**saved, "z_source": torch.zeros(1, 3)})
    with pytest.raises(StateError, match="fomm"):
        engine.state_from_dict({**saved, "engine": "fomm"})


def _clip(folder: Path, count: int, size: int = 64) -> Path:
    folder.mkdir(parents=True)
    for i, frame in enumerate(_frames(count, 5)):
        Image.fromarray(frame).resize((size, size)).save(folder / f"{i:05d}.png")
    return folder


def test_animate_command_end_to_end(checkpoint, tmp_path):
    source = tmp_path / "source.png"
    Image.fromarray(_frames(1, 1)[0]).save(source)
    driving = _clip(tmp_path / "drive", 3)
    out = tmp_path / "out"
    result = invoke("animate", "--engine", "vaegan", "--checkpoint", str(checkpoint), "-s", str(source),
                    "-d", str(driving), "-o", f"{out}/", "--strength", "0.5", "--precision", "fp32",
                    "-q")  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    frames = sorted(out.glob("*.png"))
    assert len(frames) == 3
    engine = _engine(checkpoint, strength=0.5)
    clip = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(driving.glob("*.png"))])
    expected = engine.animate(engine.prepare(np.asarray(Image.open(source).convert("RGB")), clip[0]), clip)
    assert np.array_equal(np.asarray(Image.open(frames[2])), expected[2])


def test_a_larger_photo_without_a_face_is_animated_whole(checkpoint, tmp_path):
    source = tmp_path / "noise.png"
    Image.fromarray(_frames(1, 1)[0]).resize((160, 160)).save(source)
    out = tmp_path / "out"
    result = invoke("animate", "--engine", "vaegan", "--checkpoint", str(checkpoint), "-s", str(source),
                    "-d", str(_clip(tmp_path / "drive", 2)), "-o", f"{out}/", "-q")  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    assert Image.open(sorted(out.glob("*.png"))[0]).size == (64, 64)


def test_vaegan_options_are_refused_for_other_engines(tmp_path):
    result = invoke("animate", "--engine", "landmarks", "-s", "a.png", "-d", "b.mp4", "-o", "c.mp4",
                    "--strength", "2")  # fmt: skip
    assert_one_line_error_in_process(result, "--strength and --keep-detail are vaegan options")


def test_morph_command(checkpoint, tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(_frames(1, 1)[0]).save(a)
    Image.fromarray(_frames(1, 2)[0]).save(b)
    out = tmp_path / "morph"
    result = invoke("morph", str(a), str(b), "-o", f"{out}/", "--checkpoint", str(checkpoint),
                    "--frames", "5", "--size", "64", "--precision", "fp32")  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    frames = [np.asarray(Image.open(p)) for p in sorted(out.glob("*.png"))]
    assert len(frames) == 5
    engine = _engine(checkpoint)
    z = engine.encode(np.stack([np.asarray(Image.open(a)), np.asarray(Image.open(b))]))
    ends = engine.to_uint8(engine.decode(z))
    assert np.array_equal(frames[0], ends[0]) and np.array_equal(frames[-1], ends[1])
    assert np.array_equal(frames[2], engine.to_uint8(engine.decode(slerp(z[0], z[1], 0.5)[None]))[0])
    bad = invoke(
        "morph", str(a), str(b), "-o", f"{tmp_path}/x/", "--checkpoint", str(checkpoint), "--frames", "1"
    )
    assert_one_line_error_in_process(bad, "--frames must be at least 2")


@pytest.mark.slow
def test_train_command_picks_the_vaegan_trainer_by_its_config(tmp_path):
    data = write_clips(tmp_path / "data")
    config = tmp_path / "tiny.yaml"
    import yaml

    from animatica.vaegan.config import config_to_dict

    config.write_text(yaml.safe_dump(config_to_dict(tiny_config())))
    out = tmp_path / "run"
    result = invoke("train", "--config", str(config), "--data", str(data), "--out-dir", str(out),
                    "--steps", "1", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    # resuming needs no config: the checkpoint says it is a VAE+GAN's
    result = invoke("train", "--checkpoint", str(out / "checkpoint.pth"), "--data", str(data), "--out-dir",
                    str(out), "--steps", "2", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    assert torch.load(out / "checkpoint.pth", weights_only=True)["step"] == 2


def test_a_face_photo_is_cropped_and_pasted_back(checkpoint, tmp_path):
    from animatica.training.faces import neutral, render_frame, sample_identity, sample_scene

    rng = np.random.default_rng(3)
    face, _ = render_frame(sample_identity(rng), sample_scene(rng), neutral(), 256)
    photo = np.zeros((320, 320, 3), np.uint8)  # the face off-centre in a larger picture
    photo[40:296, 60:316] = face
    source = tmp_path / "photo.png"
    Image.fromarray(photo).save(source)
    out = tmp_path / "out"
    result = invoke("animate", "--engine", "vaegan", "--checkpoint", str(checkpoint), "-s", str(source),
                    "-d", str(_clip(tmp_path / "drive", 2)), "-o", f"{out}/", "-q")  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    frame = np.asarray(Image.open(sorted(out.glob("*.png"))[1]))
    assert frame.shape == photo.shape  # the animated crop went back into the whole photo
    assert np.array_equal(frame[:20, :20], photo[:20, :20])  # far from the face: the photo's own pixels
    assert not np.array_equal(frame[150:170, 170:200], photo[150:170, 170:200])  # the face: the model's
