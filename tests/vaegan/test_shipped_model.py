"""The shipped ``vaegan-demo`` model on held-out synthetic people of an unseen seed: the figures it
reaches (see the README's VAE+GAN section), on a few pairs rendered here."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
# Over 16 pairs of 32 frames the model reaches 0.61x the photo's L1 and a yaw correlation of 0.87;
# its mouth follows weakly (0.30), so the expression figure, the mean of the two, is 0.58. On the two
# pairs of 24 frames rendered here: 0.84x the photo's L1 (its still background is nearer the truth
# in these two), yaw 0.92, mouth 0.19; the model before the mouth options read the mouth at -0.39.
THRESHOLDS = {"l1_ratio": 0.9, "yaw": 0.5, "mouth": 0.1}


def test_shipped_model_animates_another_person_closer_to_the_truth_than_copying(tmp_path: Path) -> None:
    from animatica.engines.vaegan import VaeganEngine
    from animatica.training.cross_identity import evaluate_cross_identity
    from animatica.training.faces import write_faces_dataset

    data = write_faces_dataset(
        tmp_path / "faces", people=1, clips_per_person=1, seed=2, frames=24, test_people=2
    )
    engine = VaeganEngine.load("vaegan-demo", device="cpu", precision="fp32")
    assert engine.conditioned
    report = evaluate_cross_identity(engine, data, max_pairs=2, identity_frames=2)
    # closer to the rendered truth than both baselines: the photo kept still, and the other person
    assert report["l1"] < THRESHOLDS["l1_ratio"] * report["baseline_source_l1"]
    assert report["l1"] < 0.2 * report["baseline_driving_l1"]
    # the expression reader sees the driving clip's head turn in the output
    assert report["yaw_correlation"] > THRESHOLDS["yaw"], report["yaw_correlation"]
    # and, weakly, its mouth
    assert report["mouth_correlation"] > THRESHOLDS["mouth"], report["mouth_correlation"]
    # the right person: about as far from the truth as the still photo is
    assert report["identity_distance"] < report["baseline_driving_identity_distance"]
