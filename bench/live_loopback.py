"""Live mode end to end over loopback: the real server, its WebSocket, the Python client.

    python bench/live_loopback.py [--seconds 60] [--engine landmarks] [--size 256] [--fps 30]
                                  [--driving clip.mp4] [--max-in-flight 2] [--rss-every 10]

Starts the app under uvicorn in a child process (embedded defaults: SQLite and local files in a
temporary ANIMATICA_HOME, no job runner), signs up a user on the pro plan (120 live minutes a
day, enough for a 10-minute run), opens a live session for the astronaut portrait and sends a
talking-head clip through ``/api/v1/live`` at its frame rate for ``--seconds``, as a camera would:
frames due at i/fps, at most ``--max-in-flight`` unanswered, the rest dropped. The clip is the
demo's nodding, turning astronaut (or ``--driving``), resized to the session size and encoded as
JPEG once beforehand, so the client spends nothing per frame but sending.

Prints one JSON line: the client's figures (fps, delay p50/p95 from capture to the animated frame
received, dropped, frames), the server's time per frame as it reports it (``engine_ms``: decode,
animate, the rest of the frame's delay is encode, event loop and the network), the server
process's resident memory sampled every ``--rss-every`` seconds (at the start, before the engine
loads; after one minute; at the end; the maximum; and the slope of a least-squares line through
the samples after the first minute, in MB per minute), the time
of each stage of a frame measured afterwards in this process on the same frames (decode, face
tracking, warp, encode), the load average (other work on the machine shows there), and the
machine with its CPU flags. Goals: >= 25 fps, p50 <= 80 ms, p95 <= 150 ms, memory flat over a
10-minute session.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(port: int) -> None:
    """The server process: the app as `animatica serve` builds it, one process, no job runner."""
    import uvicorn

    from animatica.service.app import create_app, server_options
    from animatica.settings import get_settings

    settings = get_settings()
    uvicorn.Server(uvicorn.Config(create_app(settings), **server_options("127.0.0.1", port, settings))).run()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_flags() -> str:
    from animatica.live.stats import cpu_summary

    return cpu_summary()


def clip_frames(driving: Path | None, size: int, fps: float) -> tuple[list[bytes], float]:
    """The clip's frames as JPEGs at ``size``x``size``, and its frame rate."""
    if driving is None:
        from animatica.demo import demo_driving_frames

        pictures = list(demo_driving_frames(seconds=10.0, fps=round(fps), size=size))
    else:
        from animatica.media.probe import probe, require_video
        from animatica.media.reader import iter_frames

        fps = float(require_video(probe(driving)).fps or fps)
        pictures = [np.asarray(Image.fromarray(f).resize((size, size))) for f in iter_frames(driving)]
    frames = []
    for picture in pictures:
        buffer = io.BytesIO()
        Image.fromarray(picture).save(buffer, "JPEG", quality=85)
        frames.append(buffer.getvalue())
    return frames, fps


def prepare_home(home: Path) -> tuple[Path, str]:
    """The database with a pro-plan user (live minutes for a long run) and the portrait."""
    from sqlalchemy import update

    from animatica.db import Database, upgrade_to_head
    from animatica.db.models import User
    from animatica.demo import demo_source
    from animatica.service.accounts import signup
    from animatica.settings import get_settings

    settings = get_settings()
    db = Database(settings.database_url)
    upgrade_to_head(db.engine)
    user_id = signup(db, "bench", PASSWORD, 0)
    with db.transaction() as session:
        session.execute(update(User).where(User.id == user_id).values(plan_id="pro"))
    db.dispose()
    portrait = home / "portrait.png"
    Image.fromarray(demo_source()).save(portrait)
    return portrait, "bench"


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server stopped while starting; see its log")
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not start")


def slope_mb_per_minute(samples: list[tuple[float, float]], skip_seconds: float = 60.0) -> float | None:
    """Least-squares slope of RSS over time, after the first minute (the engine's warm-up)."""
    kept = [(t, mb) for t, mb in samples if t >= skip_seconds]
    if len(kept) < 3:
        return None
    t = np.array([s[0] for s in kept]) / 60
    mb = np.array([s[1] for s in kept])
    return round(float(np.polyfit(t, mb, 1)[0]), 3)


def stages(portrait: Path, frames: list[bytes], size: int, count: int) -> dict[str, float]:
    """Where a frame's server time goes, measured in this process on the same frames (one thread,
    as the session's engine thread): decode, face tracking, the warp (render), encode; p50 in ms."""
    import torch

    from animatica.engines import load_engine
    from animatica.live.codec import decode_frame, encode_frame
    from animatica.live.session import LiveAnimator

    torch.set_num_threads(1)
    engine = load_engine("landmarks")
    engine.preload()
    animator = LiveAnimator(engine, np.asarray(Image.open(portrait).convert("RGB")), size)
    animator.set_neutral(decode_frame(frames[0], 1920))
    state = animator._state  # the engine's own steps, timed one by one
    times: dict[str, list[float]] = {"decode": [], "track": [], "render": [], "encode": []}
    for data in (frames * (count // len(frames) + 1))[:count]:
        t0 = time.perf_counter()
        picture = decode_frame(data, 1920)
        fitted = animator._fitted(picture)
        t1 = time.perf_counter()
        pose = engine.track(state, fitted)  # type: ignore[attr-defined]
        t2 = time.perf_counter()
        image = animator._at_size(engine.render(state, pose))  # type: ignore[attr-defined]
        t3 = time.perf_counter()
        encode_frame(image, "jpeg", 80)
        t4 = time.perf_counter()
        for name, start, end in (
            ("decode", t0, t1),
            ("track", t1, t2),
            ("render", t2, t3),
            ("encode", t3, t4),
        ):
            times[name].append((end - start) * 1000)
    return {f"{name}_ms_p50": round(float(np.percentile(values, 50)), 2) for name, values in times.items()}


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from animatica.live.client import LiveClient, looped

    with tempfile.TemporaryDirectory(prefix="animatica-live-bench-") as tmp:
        home = Path(tmp)
        os.environ["ANIMATICA_HOME"] = str(home)
        os.environ["ANIMATICA_WORKER_ENABLED"] = "false"
        portrait, username = prepare_home(home)
        frames, fps = clip_frames(args.driving, args.size, args.fps)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = (home / "server.log").open("w")
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve-port", str(port)],
            env={**os.environ},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        samples: list[tuple[float, float]] = []
        stop = threading.Event()
        try:
            wait_ready(base, server)
            token = httpx.post(
                f"{base}/api/v0/auth/login", json={"username": username, "password": PASSWORD}
            ).json()["access_token"]
            client = LiveClient(base, token=token)
            client.create_session(portrait, engine=args.engine, size=args.size)
            engine_ms: list[float] = []
            started = time.monotonic()

            def sample() -> None:
                while True:
                    samples.append((round(time.monotonic() - started, 1), round(rss_mb(server.pid), 1)))
                    if stop.wait(args.rss_every):
                        return

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            summary = client.run(
                looped(frames),
                lambda message, _delay: engine_ms.append(message.engine_ms or 0.0),
                fps=fps,
                max_in_flight=args.max_in_flight,
                seconds=args.seconds,
            )
            stop.set()
            sampler.join()
            samples.append((round(time.monotonic() - started, 1), round(rss_mb(server.pid), 1)))
            load = load_average()
        finally:
            stop.set()
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
        profile = stages(portrait, frames, args.size, args.profile_frames) if args.profile_frames else {}
    rss = [mb for _t, mb in samples]
    timings = np.array(engine_ms) if engine_ms else np.zeros(1)
    return {
        "bench": "live_loopback",
        "engine": summary["engine"],
        "size": args.size,
        "clip_fps": round(fps, 2),
        "fps": summary["fps"],
        "delay_ms_p50": summary["delay_ms_p50"],
        "delay_ms_p95": summary["delay_ms_p95"],
        "dropped": summary["dropped"],
        "frames": summary["frames"],
        "sent": summary["sent"],
        "seconds": summary["seconds"],
        "server_engine_ms_p50": round(float(np.percentile(timings, 50)), 1),
        "server_engine_ms_p95": round(float(np.percentile(timings, 95)), 1),
        "rss_mb_at_start": rss[0] if rss else None,  # before the session's engine loaded
        "rss_mb_at_1min": next((mb for t, mb in samples if t >= 60), None),
        "rss_mb_last": rss[-1] if rss else None,
        "rss_mb_max": max(rss) if rss else None,
        "rss_mb_per_min_after_1min": slope_mb_per_minute(samples),
        "rss_samples": len(samples),
        "end": summary.get("end"),
        "stages_in_process": profile,
        "load_average_1min_at_end": load,
        "cpu": cpu_flags(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--engine", default="landmarks")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--fps", type=float, default=30.0, help="the demo clip's rate (a file keeps its own)")
    parser.add_argument("--driving", type=Path, default=None, help="a talking-head clip instead of the demo")
    parser.add_argument("--max-in-flight", type=int, default=2)
    parser.add_argument("--rss-every", type=float, default=10.0, help="seconds between memory samples")
    parser.add_argument(
        "--profile-frames", type=int, default=300, help="frames timed stage by stage afterwards (0: none)"
    )
    parser.add_argument("--serve-port", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_port is not None:
        serve(args.serve_port)
        return
    print(json.dumps(measure(args)), flush=True)


if __name__ == "__main__":
    main()
