"""Job-status latency under load: 50 clients poll while jobs are being submitted.

    python bench/service_load.py [--clients 50] [--seconds 20] [--submitters 2]
                                 [--phase random|lockstep] [--json]

Starts `animatica serve` in a child process on a free localhost port with a temporary
ANIMATICA_HOME (SQLite, local files, in-process worker), signs up users, then for a bounded time
runs N polling clients (GET /api/v1/animations/{id}, once a second like the job page) beside a
few submitters that keep posting new jobs, which the worker animates meanwhile. Reports
status-request latency percentiles and throughput. ``--phase lockstep`` makes every client poll
at the same instant (the worst case: a burst of N requests each second, answered one after
another by one Python process); ``random`` (default) starts each client at a random moment of
the second, as independent pages do. Traffic goes to 127.0.0.1 only; every loop stops by itself.
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


async def wait_ready(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
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
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from animatica.demo import write_demo_inputs

    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "ANIMATICA_HOME": home, "ANIMATICA_FREE_CREDITS": "1000"}
        # Every simulated client comes from this one address: per-address limits would cap the load.
        env.update({f"ANIMATICA_RATE_LIMIT_{topic}": "" for topic in ("LOGIN", "SIGNUP", "SUBMIT")})
        env["ANIMATICA_RATE_LIMIT_SUBMIT_ACCOUNT"] = ""
        source, driving = write_demo_inputs(Path(home) / "inputs")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "animatica.cli", "serve", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=(Path(home) / "server.log").open("w"),
        )  # fmt: skip
        try:
            asyncio.run(wait_ready(base))
            result = asyncio.run(run(args, base, source, driving))
        except Exception:
            print((Path(home) / "server.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            server.terminate()
            server.wait(timeout=30)
    if not args.json:
        for key, value in result.items():
            print(f"{key}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
