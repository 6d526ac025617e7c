"""Marks that say a video was generated: the visible label stamped per frame (the same whether a
frame is stamped alone or in a chunk, only in its corner) and the container tags that the writer
and the join of segments both set."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from animatica.jobs.join import join_segments
from animatica.jobs.segment_file import write_segment
from animatica.media.watermark import stamp
from animatica.media.writer import open_writer

TAGS = {"comment": "made by a test", "description": "synthetic"}


def _frames(count: int, height: int = 120, width: int = 160) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def test_the_mark_is_drawn_in_the_corner_the_same_on_every_frame_however_they_are_chunked() -> None:
    frames = _frames(5)
    chunked = stamp(frames.copy(), "AI-generated")
    one_by_one = np.stack([stamp(frame.copy(), "AI-generated") for frame in frames])
    assert np.array_equal(chunked, one_by_one)
    changed = np.any(chunked != frames, axis=(0, 3))
    rows, cols = np.nonzero(changed)
    assert rows.min() > 120 // 2 and cols.min() > 160 // 2, "only the bottom-right corner changes"
    assert changed.sum() > 200  # a readable label, not a dot
    # On a black frame the label is light (text), on a white one the plate darkens behind it.
    dark = stamp(np.zeros((1, 120, 160, 3), np.uint8), "AI-generated")
    light = stamp(np.full((1, 120, 160, 3), 255, np.uint8), "AI-generated")
    assert dark.max() > 150 and light.min() < 150


def test_a_read_only_chunk_is_copied_and_a_tiny_frame_left_alone() -> None:
    frames = _frames(2)
    frames.flags.writeable = False
    marked = stamp(frames, "AI-generated")
    assert marked is not frames and not np.array_equal(marked, frames)
    tiny = _frames(1, 24, 24)
    assert np.array_equal(stamp(tiny.copy(), "AI-generated"), tiny)


def test_the_writer_and_the_join_of_segments_set_the_same_container_tags(tmp_path: Path) -> None:
    whole = tmp_path / "whole.mp4"
    with open_writer(whole, 10, metadata=TAGS) as writer:
        writer.write_chunk(_frames(4))
    parts = [tmp_path / "a.mkv", tmp_path / "b.mkv"]
    counts = [write_segment(list(_frames(2)), part, Fraction(10)) for part in parts]
    joined = tmp_path / "joined.mp4"
    assert join_segments(parts, joined, Fraction(10), None, counts, TAGS) == 4
    for video in (whole, joined):
        with av.open(str(video)) as container:
            assert {key: container.metadata.get(key) for key in TAGS} == TAGS
    plain = tmp_path / "plain.mp4"
    join_segments(parts, plain, Fraction(10), None, counts)
    with av.open(str(plain)) as container:
        assert "comment" not in container.metadata
