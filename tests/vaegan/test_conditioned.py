"""The decoder conditioned on the source photo (``condition: source``): what it starts from, the
cross-identity training items it learns from, training and exact resume on them, the engine and
morph on such a model, and checkpoints of both formats."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from animatica.engines.base import StateError
from animatica.engines.vaegan import VaeganEngine
from animatica.errors import CheckpointError, ConfigError
from animatica.fomm.checkpoint import save_checkpoint
from animatica.training.errors import DatasetError, TrainingError
from animatica.training.faces.dataset import write_faces_dataset
from animatica.training.faces.pairs import (
    MOTION_SCALES,
    MOUTH_LANDMARKS,
    FacePairs,
    is_faces_dataset,
    mouth_region,
)
from animatica.training.faces.render import render_frame
from animatica.vaegan.checkpoint import inference_entries, read_checkpoint
from animatica.vaegan.config import LossWeights, TrainParams, config_to_dict
from animatica.vaegan.decoder import Decoder, decoder_resolutions, moved_latent
from animatica.vaegan.encoder import Encoder
from animatica.vaegan.morph import morph_frames
from animatica.vaegan.training import VaeganTrainer, train
from tests.vaegan.conftest import tiny_config, write_clips, write_random_checkpoint


def conditioned(**changes):
    changes.setdefault("loss", LossWeights(adversarial=1.0, feature_matching=0.5, motion=10.0, mouth=3.0))
    return tiny_config(condition="source", reconstruction="l1", **changes)


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    return write_faces_dataset(
        tmp_path_factory.mktemp("faces") / "data",
        people=3,
        clips_per_person=2,
        seed=4,
        frames=4,
        test_people=2,
    )


def test_an_untrained_conditioned_decoder_returns_about_the_photo():
    torch.manual_seed(0)
    decoder = Decoder(conditioned()).eval()
    photo = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = torch.sigmoid(decoder(torch.randn(2, 8), photo))
    assert out.shape == photo.shape and (out - photo).abs().mean() < 0.05
    with pytest.raises(ValueError, match="source photo"):
        decoder(torch.randn(2, 8))
    assert decoder_resolutions(64) == [4, 8, 8, 16, 16, 32, 64]
    assert decoder_resolutions(128)[-1] == 128


def test_config_checks_the_new_keys():
    with pytest.raises(ConfigError, match="condition must be one of none, source"):
        tiny_config(condition="photo")
    with pytest.raises(ConfigError, match="flow_range"):
        conditioned(flow_range=0.0)
    with pytest.raises(ConfigError, match="latent_noise must be in"):
        conditioned(train=TrainParams(latent_noise=1.5))
    with pytest.raises(ConfigError, match="motion_scale must be a number > 0"):
        conditioned(train=TrainParams(motion_scale=0))
    with pytest.raises(ConfigError, match="transfer_dims must be a whole number in \\[0, latent\\], got 9"):
        conditioned(transfer_dims=9)  # the latent has 8
    with pytest.raises(ConfigError, match="transfer_dims needs condition: source"):
        tiny_config(transfer_dims=2)


def test_transfer_dims_move_only_the_told_dimensions():
    photo, change = torch.randn(1, 8), torch.randn(3, 8)
    assert torch.equal(moved_latent(photo, change), photo + change)
    moved = moved_latent(photo, change, 3)
    assert torch.equal(moved[:, :3], (photo + change)[:, :3])
    assert torch.equal(moved[:, 3:], photo[:, 3:].expand(3, 5))


def test_pairs_give_the_rendered_truth_of_the_source_person_making_the_driving_motion(faces):
    assert is_faces_dataset(faces) and not is_faces_dataset(faces / "train")
    pairs = FacePairs(faces, 64, cross_identity=1.0, seed=0)
    assert len(pairs) == 3
    item = pairs[(0, 1)]
    assert set(item) == {"source", "initial", "driving", "target", "motion", "mouth"}
    images = {k: v for k, v in item.items() if k not in ("motion", "mouth")}
    assert all(v.shape == (3, 64, 64) and v.dtype == torch.float32 for v in images.values())
    # the motion is the driving frame's change since the first, scaled: a frame of some clip says it
    assert item["motion"].shape == (len(MOTION_SCALES),)
    changes = []
    for clip in (c for person in pairs.people for c in pairs.clips[person]):
        frames = pairs._params(clip)["frames"]
        for frame in frames[1:]:
            changes.append([(frame[n] - frames[0][n]) / s for n, s in MOTION_SCALES.items()])
    assert min(np.abs(np.array(changes) - item["motion"].numpy()).max(1)) < 1e-6
    # the same key gives the same item (exact resume), another key another one
    assert all(torch.equal(item[k], pairs[(0, 1)][k]) for k in item)
    assert not torch.equal(item["driving"], pairs[(1, 1)]["driving"])
    # the renderer with the source clip's own motion gives back its frames: the target is the truth
    clip = pairs.clips[pairs.people[0]][1]
    record = pairs._params(clip)
    for t in range(4):
        frame = render_frame(record["identity"], _scene(pairs, clip), record["frames"][t], 64)[0]
        assert np.array_equal(frame, pairs._frames(clip, [t])[0])
    with pytest.raises(DatasetError, match="--size 128"):
        FacePairs(faces, 128, 1.0)


def test_the_mouth_region_covers_the_lips_and_chin_of_the_photo_and_the_target(faces):
    region = mouth_region([np.array([[10.0, 20.0]] * 68), np.array([[30.0, 40.0]] * 68)], 64)
    assert region.shape == (1, 64, 64) and region.dtype == torch.float32
    rows, cols = region[0].nonzero(as_tuple=True)
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (18, 42, 8, 32)
    pairs = FacePairs(faces, 64, cross_identity=1.0, seed=0)
    for index in range(len(pairs)):
        item = pairs[(0, index)]
        mask = item["mouth"][0]
        # only the lower face, and every lip of the target inside it
        assert set(mask.unique().tolist()) == {0.0, 1.0} and 0.01 < float(mask.mean()) < 0.2
        assert float(mask[:24].sum()) == 0
    clip = pairs.clips[pairs.people[1]][0]
    record = pairs._params(clip)
    lips = np.rint(np.array(record["landmarks"][2])[MOUTH_LANDMARKS]).astype(int)
    mask = mouth_region([record["landmarks"][0], record["landmarks"][2]], 64)[0]
    assert all(mask[y, x] == 1 for x, y in lips)


def test_the_mouth_loss_needs_a_faces_dataset(tmp_path):
    data = write_clips(tmp_path / "clips")
    with pytest.raises(TrainingError, match=r"loss\.mouth"):
        VaeganTrainer(conditioned(), data, tmp_path / "out", device="cpu", precision="fp32")
    VaeganTrainer(conditioned(loss=LossWeights(motion=10.0)), data, tmp_path / "out", device="cpu")


def test_without_latent_noise_the_driving_frame_decodes_from_its_mean(faces, tmp_path):
    def reconstruction(noise: float, noise_seed: int) -> float:
        train_params = TrainParams(batch_size=2, kl_warmup_steps=3, num_repeats=2, latent_noise=noise)
        trainer = VaeganTrainer(
            conditioned(train=train_params), faces, tmp_path, device="cpu", precision="fp32"
        )
        trainer.noise.manual_seed(noise_seed)
        batch = next(iter(trainer._loader()))
        return trainer.train_step(batch)[0]["reconstruction"]

    # the sampling noise is the only thing that differs between the two seeds' first steps
    assert reconstruction(0.0, 1) == reconstruction(0.0, 2)
    assert reconstruction(1.0, 1) != reconstruction(1.0, 2)


def test_motion_scale_multiplies_the_change_the_latent_is_asked_for(faces, tmp_path):
    def first_step(scale: float) -> tuple[torch.Tensor, torch.Tensor, float]:
        train_params = TrainParams(batch_size=2, num_repeats=2, latent_noise=0.0, motion_scale=scale)
        trainer = VaeganTrainer(
            conditioned(train=train_params), faces, tmp_path, device="cpu", precision="fp32"
        )
        batch = next(iter(trainer._loader()))
        with torch.no_grad():
            # the batch the step encodes (its batch norm sees the same statistics)
            mu, _ = trainer.encoder(torch.cat([batch["source"], batch["initial"], batch["driving"]]))
        _, initial, driving = mu.chunk(3)
        said = (driving - initial)[:, : len(MOTION_SCALES)]
        return said, batch["motion"], trainer.train_step(batch)[0]["motion"]

    for scale in (1.0, 10.0):
        said, motion, loss = first_step(scale)
        assert loss == pytest.approx(float((said - scale * motion).pow(2).sum(1).mean()), rel=1e-5)


def test_the_mouth_terms_sum_the_errors_of_the_picture_and_of_the_painted_pixels(faces, tmp_path):
    def first_step(kind: str) -> tuple[list[torch.Tensor], dict[str, float]]:
        train_params = TrainParams(batch_size=2, num_repeats=2, latent_noise=0.0)
        torch.manual_seed(0)
        loss = LossWeights(motion=10.0, mouth=3.0, mouth_painted=2.0)
        cfg = conditioned(train=train_params, mouth_error=kind, loss=loss)
        trainer = VaeganTrainer(cfg, faces, tmp_path, device="cpu", precision="fp32")
        batch = next(iter(trainer._loader()))
        with torch.no_grad():
            mu, _ = trainer.encoder(torch.cat([batch["source"], batch["initial"], batch["driving"]]))
            source, initial, driving = mu.chunk(3)
            logits, painted = trainer.decoder.decode(source + driving - initial, batch["source"])
        images = (torch.sigmoid(logits), painted)
        errors = [((image - batch["target"]).abs() * batch["mouth"]).flatten(1) for image in images]
        return errors, trainer.train_step(batch)[0]

    errors, losses = first_step("l1")
    assert losses["mouth"] == pytest.approx(float(errors[0].sum(1).mean()), rel=1e-5)
    assert losses["mouth_painted"] == pytest.approx(float(errors[1].sum(1).mean()), rel=1e-5)
    errors, losses = first_step("l2")
    assert losses["mouth"] == pytest.approx(float(errors[0].square().sum(1).mean()), rel=1e-5)
    assert losses["mouth_painted"] == pytest.approx(float(errors[1].square().sum(1).mean()), rel=1e-5)
    with pytest.raises(ConfigError, match="mouth_error must be one of l1, l2"):
        conditioned(mouth_error="l3")


def _scene(pairs: FacePairs, clip: str):
    from animatica.training.faces.dataset import Person, scene_of

    index = int(clip[1:5])
    return scene_of(pairs.data_seed, Person("train", index, clip.split("#")[0]), int(clip.split("#c")[1]))


def _train(faces, out, steps, checkpoint=None):
    cfg = None if checkpoint is not None else conditioned()
    return train(
        cfg, faces, checkpoint=checkpoint, out_dir=out, steps=steps, device="cpu", precision="fp32",
        log_every=1, checkpoint_every=0, progress_bar=False,
    )  # fmt: skip


@pytest.mark.slow
def test_training_on_cross_identity_pairs_resumes_exactly(faces, tmp_path):
    whole = read_checkpoint(_train(faces, tmp_path / "whole", 4))
    assert whole["version"] == 2 and whole["config"]["condition"] == "source"
    first = _train(faces, tmp_path / "part", 2)
    resumed = read_checkpoint(_train(faces, tmp_path / "part", 4, checkpoint=first))
    for part in ("encoder", "decoder", "discriminator"):
        for key, value in whole[part].items():
            assert torch.equal(value, resumed[part][key]), f"{part}.{key}"
    rows = {name: list(csv.DictReader((tmp_path / name / "log.csv").open())) for name in ("whole", "part")}
    assert [r["total"] for r in rows["whole"]] == [r["total"] for r in rows["part"]]
    assert [int(r["step"]) for r in rows["part"]] == [1, 2, 3, 4]
    assert all(float(r["motion"]) > 0 for r in rows["whole"])  # the latent is told the motion
    assert all(float(r["mouth"]) > 0 for r in rows["whole"])  # and the mouth is weighed


def _engine(path: Path, **options) -> VaeganEngine:
    return VaeganEngine.load(path, device="cpu", precision="fp32", **options)


def test_the_engine_passes_the_photo_to_a_conditioned_decoder(tmp_path):
    path = write_random_checkpoint(tmp_path / "cond.pth", conditioned(), seed=2)
    engine = _engine(path)
    assert engine.conditioned
    rng = np.random.default_rng(0)
    source, driving = (
        rng.integers(0, 256, (64, 64, 3), np.uint8),
        rng.integers(0, 256, (3, 64, 64, 3), np.uint8),
    )
    state = engine.prepare(source, driving[0])
    out = engine.animate(state, driving)
    z = engine.encode(np.concatenate([source[None], driving]))
    photo = torch.from_numpy(source).permute(2, 0, 1)[None].float() / 255
    assert np.array_equal(out, engine.to_uint8(engine.decode(z[:1] + z[1:] - z[1], photo)))
    saved = engine.state_to_dict(state)
    assert np.array_equal(engine.animate(engine.state_from_dict(saved), driving), out)
    with pytest.raises(StateError, match="another decoder"):
        engine.state_from_dict({**saved, "source": None})
    plain = _engine(write_random_checkpoint(tmp_path / "plain.pth", tiny_config(), seed=2))
    with pytest.raises(StateError, match="another decoder"):
        plain.state_from_dict(saved)
    frames = list(morph_frames(engine, source, driving[1], frames=3))
    assert len(frames) == 3 and frames[0].shape == (64, 64, 3)
    told = _engine(write_random_checkpoint(tmp_path / "told.pth", conditioned(transfer_dims=2), seed=2))
    state = told.prepare(source, driving[0])
    only_told = torch.cat([z[1:, :2] - z[1, :2], torch.zeros(3, 6)], dim=1)
    expected = told.to_uint8(told.decode(z[:1] + only_told, photo))
    assert np.array_equal(told.animate(state, driving), expected)


def test_version_1_checkpoints_load_and_unknown_versions_are_refused(tmp_path):
    cfg = tiny_config()
    old = inference_entries(cfg, Encoder(cfg), Decoder(cfg), step=7)
    stored = config_to_dict(cfg)
    for key in ("condition", "flow_range"):
        stored.pop(key)
    stored["train"].pop("cross_identity")
    save_checkpoint(tmp_path / "v1.pth", {**old, "version": 1, "config": stored})
    engine = _engine(tmp_path / "v1.pth")
    assert not engine.conditioned and engine.networks.config == cfg
    save_checkpoint(tmp_path / "v3.pth", {**old, "version": 3})
    with pytest.raises(CheckpointError, match="version 3; this reads 1, 2"):
        read_checkpoint(tmp_path / "v3.pth")
