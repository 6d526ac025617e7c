"""A live session's figures: fps after set-up, delay percentiles, bounded memory."""

from pathlib import Path

import pytest

from animatica.live.stats import LiveStats, cpu_summary


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_fps_counts_from_the_first_animated_frame() -> None:
    clock = Clock()
    stats = LiveStats("landmarks", clock=clock)
    stats.start()
    clock.now = 5.0  # a slow set-up before the first frame
    for i in range(11):
        stats.record(40.0, engine_ms=900.0 if i == 0 else 20.0, shown_s=5.0 + i * 0.04)
    clock.now = 5.4
    stats.finish()
    clock.now = 100.0  # after the end, the session's length no longer grows
    summary = stats.summary()
    assert summary["fps"] == pytest.approx(25.0)
    assert summary["frames"] == 11 and summary["seconds"] == pytest.approx(5.4)
    assert summary["delay_ms_p50"] == pytest.approx(40.0, abs=0.25)
    assert summary["engine_ms_p50"] == 20.0  # the first frame's neutral pose does not skew it
    assert set(summary) >= {"engine", "fps", "delay_ms_p50", "delay_ms_p95", "dropped", "frames", "seconds"}


def test_session_percentiles_cover_every_frame_not_only_the_recent_ones() -> None:
    stats = LiveStats("landmarks", window=10, clock=Clock())
    for i in range(100):  # 1..100 ms
        stats.record(float(i + 1), shown_s=i * 0.1)
    summary = stats.summary()
    assert summary["delay_ms_p50"] == pytest.approx(50.0, abs=0.5)
    assert summary["delay_ms_p95"] == pytest.approx(95.0, abs=0.5)
    assert len(stats._recent) == 10  # the ring is bounded
    assert stats._histogram.size == 20_000  # and so is the histogram, however long the session


def test_delays_beyond_the_histogram_report_the_worst() -> None:
    stats = LiveStats("x", clock=Clock())
    for _ in range(10):
        stats.record(60_000.0, shown_s=0.0)
    assert stats.summary()["delay_ms_p95"] == 60_000.0


def test_recent_readout_is_the_last_second() -> None:
    clock = Clock()
    stats = LiveStats("x", clock=clock)
    for i in range(50):  # 2 s at 25 fps: 100 ms delays, then 30 ms in the last second
        stats.record(100.0 if i < 25 else 30.0, engine_ms=10.0, shown_s=i * 0.04)
    stats.set_dropped(7)
    clock.now = 49 * 0.04 + 0.02
    recent = stats.recent(1.0)
    assert recent["fps"] == 25.0
    assert recent["delay_ms_p50"] == 30.0 and recent["delay_ms_p95"] == 30.0
    assert recent["engine_ms"] == 10.0 and recent["dropped"] == 7 and recent["frames"] == 50


def test_an_empty_session() -> None:
    summary = LiveStats("x", clock=Clock()).summary()
    assert summary["frames"] == 0 and summary["fps"] == 0.0 and summary["delay_ms_p50"] is None
    assert LiveStats("x", clock=Clock()).recent()["delay_ms_p50"] is None


def test_cpu_summary_names_the_model_and_vector_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile\n" * 2)
    text = cpu_summary(info)
    assert text.startswith("Test CPU 9000, ") and text.endswith("avx2 avx512f avx512_bf16 amx_tile")
    assert "cores" in cpu_summary(tmp_path / "missing")
