"""What a live session measures: animated frames per second, delay and dropped frames.

The delay of a frame runs from its capture (or, for a file paced at its frame rate, from the
moment it was due) to its animated frame being ready to show. Memory stays fixed however long
the session runs: the recent frames sit in a ring of ``window`` entries (for the readout a
page refreshes about once a second), and the whole session's delay percentiles come from a
histogram of fixed size (half-millisecond bins up to 10 s), which is exact to a quarter of a
millisecond where it matters.

fps counts from the first animated frame: the engine's set-up before it (the source's face
detection, the neutral pose) is a one-off cost, not a rate.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_BIN_MS = 0.5
_BINS = 20_000  # 10 s of delay; anything slower goes in the last bin


class LiveStats:
    def __init__(self, engine: str, window: int = 600, clock: Callable[[], float] = time.monotonic) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.engine = engine
        self._clock = clock
        # (shown_s, delay_ms, engine_ms or nan) of the latest frames
        self._recent: deque[tuple[float, float, float]] = deque(maxlen=window)
        self._histogram = np.zeros(_BINS, dtype=np.int64)
        self._max_delay = 0.0
        self.frames = 0
        self.dropped = 0
        self._started: float | None = None  # when the session started (set-up included)
        self._first_shown: float | None = None
        self._last_shown: float | None = None
        self._finished: float | None = None

    def start(self) -> None:
        """Mark the session's start (wall time counts from here); idempotent."""
        if self._started is None:
            self._started = self._clock()

    def finish(self) -> None:
        """Mark the session's end, so that ``seconds`` stops growing once it is over."""
        if self._finished is None:
            self._finished = self._clock()

    def record(self, delay_ms: float, engine_ms: float | None = None, shown_s: float | None = None) -> None:
        """One animated frame, ready ``delay_ms`` after its capture; shown at ``shown_s`` (the clock's
        seconds, default now)."""
        shown = self._clock() if shown_s is None else shown_s
        self.start()
        delay = max(0.0, float(delay_ms))
        self.frames += 1
        if self._first_shown is None:
            self._first_shown = shown
        self._last_shown = shown
        self._histogram[min(_BINS - 1, int(delay / _BIN_MS))] += 1
        self._max_delay = max(self._max_delay, delay)
        self._recent.append((shown, delay, math.nan if engine_ms is None else float(engine_ms)))

    def add_dropped(self, count: int = 1) -> None:
        self.dropped += count

    def set_dropped(self, count: int) -> None:
        """For a caller whose drops are counted elsewhere (a `LatestSlot`, a paced source)."""
        self.dropped = count

    @property
    def seconds(self) -> float:
        if self._started is None:
            return 0.0
        end = self._finished if self._finished is not None else self._clock()
        return max(0.0, end - self._started)

    def fps(self) -> float:
        """Animated frames per second between the first and the latest animated frame."""
        if self.frames < 2 or self._first_shown is None or self._last_shown is None:
            return 0.0
        span = self._last_shown - self._first_shown
        return (self.frames - 1) / span if span > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """The whole session so far."""
        return {
            "engine": self.engine,
            "fps": round(self.fps(), 2),
            "delay_ms_p50": self._session_percentile(50),
            "delay_ms_p95": self._session_percentile(95),
            "dropped": self.dropped,
            "frames": self.frames,
            "seconds": round(self.seconds, 2),
            "engine_ms_p50": self._recent_engine_ms(),
        }

    def recent(self, seconds: float = 1.0) -> dict[str, Any]:
        """The frames shown in the last ``seconds`` (at most ``window`` of them): the live readout."""
        now = self._clock()
        rows = [row for row in self._recent if row[0] > now - seconds]
        delays = np.array([row[1] for row in rows], dtype=np.float64)
        engine = np.array([row[2] for row in rows if not math.isnan(row[2])], dtype=np.float64)
        return {
            "fps": round(len(rows) / seconds, 2) if seconds > 0 else 0.0,
            "delay_ms_p50": _round(np.percentile(delays, 50)) if len(delays) else None,
            "delay_ms_p95": _round(np.percentile(delays, 95)) if len(delays) else None,
            "engine_ms": _round(float(np.median(engine))) if len(engine) else None,
            "frames": self.frames,
            "dropped": self.dropped,
        }

    def _recent_engine_ms(self) -> float | None:
        """The engine's median time per frame over the ring: a one-off (the first frame's neutral
        pose) does not move it as it would move a mean."""
        values = [row[2] for row in self._recent if not math.isnan(row[2])]
        return _round(float(np.median(values))) if values else None

    def _session_percentile(self, q: float) -> float | None:
        if self.frames == 0:
            return None
        rank = math.ceil(q / 100 * self.frames)  # nearest-rank: the smallest delay with q % at or below it
        index = int(np.searchsorted(np.cumsum(self._histogram), max(1, rank)))
        if index >= _BINS - 1:
            return _round(self._max_delay)
        return _round(min((index + 0.5) * _BIN_MS, self._max_delay))


def _round(value: float) -> float:
    return round(float(value), 1)


# The CPU features that decide how fast the engines run, in the order worth reading.
_CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_summary(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor's model, core count and vector features, for a benchmark line's context."""
    model: str | None = None
    flags: set[str] = set()
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model is None:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    present = [flag for flag in _CPU_FLAGS if flag in flags]
    name = model or platform.processor() or platform.machine()
    return f"{name}, {os.cpu_count()} cores" + (f", {' '.join(present)}" if present else "")
