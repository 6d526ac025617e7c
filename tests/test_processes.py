"""Helper processes leave with the process that started them, even one gone before they started."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC)}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone for our purposes: it runs nothing and only waits to be reaped.
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state == "Z"


def test_a_helper_whose_parent_is_already_gone_leaves_at_once() -> None:
    """The parent's pid comes from the parent: a helper orphaned while it was still starting
    (its server stopped during the imports) must not wait for a parent it never saw."""
    helper = textwrap.dedent(
        """
        import sys, time
        from animatica.processes import leave_with_parent
        leave_with_parent(int(sys.argv[1]))
        time.sleep(600)
        """
    )
    # The pid of a process that is certainly not this helper's parent: the test itself is its parent.
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        proc = subprocess.run(
            [sys.executable, "-c", helper, str(stranger.pid)], env=ENV, timeout=120, check=False
        )
        assert proc.returncode == 0
    finally:
        stranger.kill()
        stranger.wait()


def test_a_helper_leaves_when_its_parent_dies(tmp_path: Path) -> None:
    """A middle process starts a helper and is killed: the helper, orphaned, exits by itself."""
    pid_file = tmp_path / "helper.pid"
    middle = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        helper = (
            "import os, sys, time\\n"
            "from animatica.processes import leave_with_parent\\n"
            "leave_with_parent(int(sys.argv[1]))\\n"
            "open(sys.argv[2], 'w').write(str(os.getpid()))\\n"
            "time.sleep(600)\\n"
        )
        subprocess.Popen([sys.executable, "-c", helper, str(os.getpid()), {str(pid_file)!r}])
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", middle], env=ENV)
    try:
        for _ in range(1200):  # the helper writes its pid once it watches its parent
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.1)
        helper_pid = int(pid_file.read_text())
        assert not _gone(helper_pid)  # alive while its parent is
    finally:
        proc.kill()
        proc.wait()
    for _ in range(1200):
        if _gone(helper_pid):
            break
        time.sleep(0.1)
    assert _gone(helper_pid), "the orphaned helper is still running"
