"""The face-swap kind: a built-in kind whose request is a pipeline request on the swap engine (the
row's server fields held by decoding, not handed to the engine, a bad option refused before a
frame), and whose segments, planned once and joined by packet copy, give the whole run's frames.

Segments here run in this process, one after the other: what the Celery workers run, without
the broker."""

from pathlib import Path

import av
import numpy as np
import pytest
from tests.face.swap_faces import write_actor_inputs

from animatica.errors import AnimaticaError
from animatica.jobs import face_swap, kinds
from animatica.settings import Settings
from animatica.swapping import SWAP_METADATA, SYNTHETIC_NOTE

SIDE = 128


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    # 1.5 s at 8 fps: two segments of 1 s
    photo, clip = write_actor_inputs(tmp_path_factory.mktemp("swap-kind"), 12, SIDE, every=2)
    return {"source": photo, "driving": clip}


def test_the_request_runs_the_swap_engine_with_the_rows_options(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    kind = kinds.get(face_swap.NAME)
    assert kind.inputs == ("source", "driving") and kind.result == "result.mp4" and kind.cost == 1
    settings = Settings(home=tmp_path / "home", batch_size=3)
    row = {"which": "index:0", "blend": "feather", "fps": 8.0, "max_frames": 9, "frame_rate": 8.0}
    execution = face_swap.execution(
        inputs["source"], inputs["driving"], tmp_path / "out.mp4", "faceswap", row
    )
    fields = kind.request(settings, execution)
    assert fields["engine"] == "faceswap" and fields["max_frames"] == 9 and fields["batch_size"] == 3
    assert fields["engine_options"] == {"which": "index:0", "blend": "feather", "fps": 8.0}
    assert fields["metadata"] == SWAP_METADATA and fields["visible_mark"] == "AI-generated"
    # The consent record and the mark's choice are the server's, never the engine's options.
    recorded = {
        **row,
        "consent": {"user_id": 1, "at": "2026-01-01T00:00:00+00:00"},
        "visible_watermark": False,
    }
    fields = kind.request(
        settings, face_swap.execution(inputs["source"], inputs["driving"], tmp_path, "", recorded)
    )
    assert fields["engine_options"] == {"which": "index:0", "blend": "feather", "fps": 8.0}
    assert fields["metadata"] == SWAP_METADATA and fields["visible_mark"] is None
    with pytest.raises(AnimaticaError, match="Unknown blend 'paste'"):
        kind.request(
            settings,
            face_swap.execution(inputs["source"], inputs["driving"], tmp_path, "", {"blend": "paste"}),
        )
    with pytest.raises(AnimaticaError, match="animates a photo"):
        kind.request(
            settings, face_swap.execution(inputs["source"], inputs["driving"], tmp_path, "landmarks")
        )


@pytest.mark.slow
def test_segments_joined_in_order_give_the_whole_runs_frames(inputs: dict[str, Path], tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", segment_seconds=1.0, log_level="WARNING")
    kind = kinds.get(face_swap.NAME)
    assert kind.segmented is not None
    row = {"which": "largest", "fps": 8.0, "max_frames": 121, "frame_rate": 8.0}

    whole = tmp_path / "whole.mp4"
    result = kind.run(
        kind.request(
            settings, face_swap.execution(inputs["source"], inputs["driving"], whole, "faceswap", row)
        ),
        lambda _p: None,
        lambda: False,
    )
    assert result.frames == 12

    work = tmp_path / "plan"
    work.mkdir()
    plan = kind.segmented.plan(
        settings,
        face_swap.execution(inputs["source"], inputs["driving"], work, "faceswap", row),
        lambda _p: None,
        lambda: False,
    )
    assert [(part.start, part.stop) for part in plan.parts] == [(0, 8), (8, 12)]
    prepared = None
    if plan.prepared is not None:
        prepared = tmp_path / "prepared.bin"
        prepared.write_bytes(plan.prepared)
    files, counts = [], []
    for number, part in enumerate(plan.parts):
        packed = tmp_path / f"segment-{number}" / "segment.mkv"
        packed.parent.mkdir()
        counts.append(
            kind.segmented.segment(
                settings,
                face_swap.execution(inputs["source"], inputs["driving"], packed, "faceswap", row),
                plan,
                part,
                prepared,
                lambda _p: None,
                lambda: False,
            )
        )
        files.append(packed)
    joined = tmp_path / "joined.mp4"
    kind.segmented.join(settings, files, counts, plan, lambda slot: inputs[slot], joined)

    got, expected = _frames(joined), _frames(whole)
    assert len(got) == len(expected) == 12
    # Each segment is its own H.264 encode and starts its face tracking afresh at its seam (from
    # the plan's prepared photo): close frames, not bit-equal ones.
    assert max(np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(got, expected, strict=True)) < 3
    # Both say they are synthetic: the whole run's writer and the join set the same tags, and
    # every frame carries the visible mark, stamped per frame wherever it was rendered.
    for video in (whole, joined):
        with av.open(str(video)) as container:
            assert (
                container.metadata.get("comment") == container.metadata.get("description") == SYNTHETIC_NOTE
            )
    original = _frames(inputs["driving"])
    assert (
        min(
            np.abs(a.astype(int) - b.astype(int))[-16:, -56:].mean()
            for a, b in zip(got, original, strict=True)
        )
        > 20
    )
    assert (
        min(
            np.abs(a.astype(int) - b.astype(int))[33:73, 47:83].mean()
            for a, b in zip(got, original, strict=True)
        )
        > 4
    )
