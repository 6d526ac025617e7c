"""The shipped ``vaegan-demo`` model on held-out synthetic people of an unseen seed: the figures it
reaches (see the README's VAE+GAN section), on a few pairs rendered here."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_shipped_model_beats_copying_the_driving_frame_and_keeps_detail(tmp_path: Path) -> None:
    from animatica.engines.vaegan import VaeganEngine
    from animatica.training.cross_identity import evaluate_cross_identity
    from animatica.training.faces import write_faces_dataset

    data = write_faces_dataset(
        tmp_path / "faces", people=1, clips_per_person=1, seed=2, frames=8, test_people=2
    )
    reports = {}
    for keep in (False, True):
        engine = VaeganEngine.load("vaegan-demo", device="cpu", precision="fp32", keep_detail=keep)
        reports[keep] = evaluate_cross_identity(engine, data, max_pairs=2, identity_frames=2)
    plain, detail = reports[False], reports[True]
    # a blurry face of the right person: far closer to the truth than another person's frame
    assert plain["l1"] < 0.6 * plain["baseline_driving_l1"]
    # keeping the photo's detail brings it within reach of copying the photo (1.27x over 16 pairs)
    assert detail["l1"] < 1.6 * detail["baseline_source_l1"]
    assert detail["identity_distance"] < plain["identity_distance"]
