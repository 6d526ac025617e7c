"""``animatica live``: the real-time loop from the command line, and its one-line benchmark."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from animatica.settings import Settings


def run(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {"ANIMATICA_HOME": str(home), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "animatica.cli", "live", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("animatica: error: ") and fragment in lines[0], proc.stderr


@pytest.mark.slow  # the real landmarks engine plays a 1 s clip in real time (plus loading its models)
def test_live_on_a_file_prints_one_json_line_and_records(tmp_path: Path, animatica_home: Path) -> None:
    from PIL import Image

    from animatica.demo import demo_source, write_demo_driving
    from animatica.media.probe import probe

    portrait = tmp_path / "portrait.png"
    Image.fromarray(demo_source()).save(portrait)
    clip = write_demo_driving(tmp_path / "talking.mp4", seconds=1.0, fps=10, size=256)
    out = tmp_path / "live.mp4"
    proc = run(
        "--source", str(portrait), "--driving", str(clip), "--json", "--output", str(out), home=animatica_home
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    keys = {"engine", "fps", "delay_ms_p50", "delay_ms_p95", "dropped", "frames", "seconds", "size", "cpu"}
    assert keys <= set(result)
    assert result["engine"] == "landmarks" and result["size"] == 256
    assert result["frames"] > 0 and result["frames"] + result["dropped"] == 10
    assert result["delay_ms_p50"] <= result["delay_ms_p95"]
    info = probe(out)
    assert info.kind == "video" and (info.width, info.height) == (256, 256)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.mp4", "portrait.png", "talking.mp4"]


@pytest.mark.slow  # a real server (uvicorn, the WebSocket, the landmarks engine) and a CLI process
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_live_through_a_server_prints_what_the_client_measured(
    tmp_path: Path, animatica_home: Path, settings: Settings
) -> None:
    from PIL import Image
    from tests.live.serving import access_token, serve

    from animatica.demo import demo_source, write_demo_driving

    portrait = tmp_path / "portrait.png"
    Image.fromarray(demo_source()).save(portrait)
    clip = write_demo_driving(tmp_path / "talking.mp4", seconds=1.0, fps=10, size=256)
    with serve(settings) as (base, _app):
        token = access_token(base, "cli")
        proc = run(
            "--source", str(portrait), "--driving", str(clip), "--size", "192", "--json",
            "--server", base, "--token", token,
            home=animatica_home,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    keys = {"engine", "fps", "delay_ms_p50", "delay_ms_p95", "dropped", "frames", "seconds", "cpu"}
    assert keys <= set(result)
    assert result["engine"] == "landmarks" and result["size"] == 192 and result["end"] == "stopped"
    # The first frame is always sent and every sent frame is answered before the client stops.
    assert result["frames"] >= 1 and result["frames"] + result["dropped"] == 10


def test_live_needs_exactly_one_frame_source(
    test_image: Path, test_video: Path, animatica_home: Path
) -> None:
    assert_one_line_error(
        run("--source", str(test_image), home=animatica_home), "--driving VIDEO or --camera N"
    )
    both = run(
        "--source", str(test_image), "--driving", str(test_video), "--camera", "0", home=animatica_home
    )
    assert_one_line_error(both, "--driving VIDEO or --camera N")


def test_live_without_the_camera_says_so(test_image: Path, animatica_home: Path) -> None:
    if Path("/dev/video97").exists():
        pytest.skip("this machine has a /dev/video97")
    assert_one_line_error(
        run("--source", str(test_image), "--camera", "97", home=animatica_home), "no camera /dev/video97"
    )
