"""Job-status latency under load: 50 clients poll while jobs are being submitted.

    python bench/service_load.py [--clients 50] [--seconds 20] [--submitters 2]
                                 [--phase random|lockstep] [--workers 1 2 ...] [--json]

Starts `animatica serve --workers N` in a child process on a free localhost port with a temporary
ANIMATICA_HOME (SQLite, local files, the job runner in its own process), once for each N given
(one after the other, same inputs, so the figures compare), signs up users, then for a bounded time
runs N polling clients (GET /api/v1/animations/{id}, once a second like the job page) beside a
few submitters that keep posting new jobs, which the worker animates meanwhile. Reports
status-request latency percentiles and throughput. ``--phase lockstep`` makes every client poll
at the same instant (the worst case: a burst of N requests each second, answered one after
another by each web process); ``random`` (default) starts each client at a random moment of
the second, as independent pages do. Rate limits are off (every client shares one address).
Traffic goes to 127.0.0.1 only; every loop stops by itself. One JSON line per server run.
"""

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from animatica.bench import machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_ready(base: str, log: Path, workers: int, timeout: float = 180) -> None:
    """Until /healthz answers and every web process has built its app (each logs its payment mode)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                answered = (await client.get(f"{base}/healthz")).status_code == 200
            except httpx.TransportError:
                answered = False
            if answered and log.read_text(errors="replace").count('"payments: ') >= workers:
                return
            await asyncio.sleep(0.2)
    raise RuntimeError("the service did not start")


async def login(client: httpx.AsyncClient, base: str, username: str) -> str:
    password = "correct horse battery"
    await client.post(f"{base}/api/v0/auth/signup", json={"username": username, "password": password})
    r = await client.post(f"{base}/api/v0/auth/login", json={"username": username, "password": password})
    r.raise_for_status()
    return r.json()["access_token"]


async def submit(client: httpx.AsyncClient, base: str, token: str, source: Path, driving: Path) -> str | None:
    files = {
        "source_image": (source.name, source.read_bytes(), "image/png"),
        "driving_video": (driving.name, driving.read_bytes(), "video/mp4"),
    }
    r = await client.post(
        f"{base}/api/v1/animations", files=files, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    return r.json().get("id") if r.status_code == 202 else None


async def run(args: argparse.Namespace, base: str, source: Path, driving: Path) -> dict:
    limits = httpx.Limits(max_connections=args.clients + args.submitters + 4)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        tokens = [await login(client, base, f"bench{i}") for i in range(args.submitters)]
        first = [await submit(client, base, t, source, driving) for t in tokens]
        job_ids = [(t, j) for t, j in zip(tokens, first, strict=True) if j]
        if not job_ids:
            raise RuntimeError("no job could be submitted")
        latencies: list[float] = []
        errors = 0
        submitted = len(job_ids)
        stop_at = time.monotonic() + args.seconds
        phases = random.Random(0)

        async def poller(i: int) -> None:
            nonlocal errors
            token, job = job_ids[i % len(job_ids)]
            headers = {"Authorization": f"Bearer {token}"}
            if args.phase == "random":  # pages opened at different moments poll out of step
                await asyncio.sleep(phases.uniform(0, args.interval))
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                try:
                    r = await client.get(f"{base}/api/v1/animations/{job}", headers=headers)
                    errors += r.status_code != 200
                except httpx.TransportError:
                    errors += 1
                latencies.append(time.perf_counter() - t0)
                await asyncio.sleep(args.interval)

        async def submitter(token: str) -> None:
            nonlocal submitted
            while time.monotonic() < stop_at:
                if await submit(client, base, token, source, driving):
                    submitted += 1
                await asyncio.sleep(args.submit_every)

        started = time.monotonic()
        await asyncio.gather(*(poller(i) for i in range(args.clients)), *(submitter(t) for t in tokens))
        elapsed = time.monotonic() - started
    ms = sorted(x * 1000 for x in latencies)

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, int(p / 100 * len(ms)))], 1)

    return {
        "bench": "service_load",
        "web_processes": args.web_processes,
        "clients": args.clients,
        "phase": args.phase,
        "seconds": round(elapsed, 1),
        "requests": len(ms),
        "requests_per_s": round(len(ms) / elapsed, 1),
        "errors": errors,
        "jobs_submitted": submitted,
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "mean_ms": round(statistics.fmean(ms), 1),
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--submitters", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument(
        "--interval", type=float, default=1.0, help="pause between one client's polls (the web page: 1 s)"
    )
    parser.add_argument(
        "--phase",
        choices=["random", "lockstep"],
        default="random",
        help="random: each client starts at a random moment of the interval, as independent pages do; "
        "lockstep: all clients poll at the same instant every time (a burst of --clients requests)",
    )
    parser.add_argument("--submit-every", type=float, default=1.0, help="pause between one submitter's jobs")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1],
        help="web processes of the server (animatica serve --workers); several values: one run each",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for workers in args.workers:
        result = measure(argparse.Namespace(**vars(args), web_processes=workers))
        if not args.json:
            for key, value in result.items():
                print(f"{key}: {value}")
        print(json.dumps(result), flush=True)


def measure(args: argparse.Namespace) -> dict:
    """One server with ``args.web_processes`` web processes, measured, then stopped."""
    from animatica.demo import write_demo_inputs
    from animatica.settings import Settings

    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "ANIMATICA_HOME": home, "ANIMATICA_FREE_CREDITS": "1000"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        # Every simulated client comes from this one address: per-address limits would cap the load.
        env.update(
            {
                f"ANIMATICA_{name.upper()}": ""
                for name in Settings.model_fields
                if name.startswith("rate_limit_")
            }
        )
        source, driving = write_demo_inputs(Path(home) / "inputs")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = Path(home) / "server.log"
        server = subprocess.Popen(
            [sys.executable, "-m", "animatica.cli", "serve", "--port", str(port),
             "--workers", str(args.web_processes)],
            env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"),
        )  # fmt: skip
        try:
            asyncio.run(wait_ready(base, log, args.web_processes))
            return asyncio.run(run(args, base, source, driving))
        except Exception:
            lines = log.read_text(errors="replace").splitlines()
            print("\n".join(line for line in lines if '"message": "request"' not in line), file=sys.stderr)
            raise
        finally:
            server.terminate()
            server.wait(timeout=120)


if __name__ == "__main__":
    main()
