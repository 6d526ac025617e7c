"""The child-process executor against the real pipeline: same output as in a thread, progress,
cancel, errors carried across, and recovery from a child killed mid-job."""

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from animatica.errors import AnimaticaError, MediaError
from animatica.jobs import animation
from animatica.jobs.child import ChildDied, ProcessExecutor
from animatica.jobs.kinds import Execution
from animatica.jobs.lifecycle import ThreadExecutor
from animatica.pipeline import Cancelled
from animatica.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("process-executor")


@pytest.fixture(scope="module")
def demo(folder: Path) -> tuple[Path, Path]:
    """The demo face and a 1 s cut of its driving clip: every job here is animated, some twice, and
    nothing checked depends on the clip's length."""
    from animatica.demo import write_demo_driving, write_demo_inputs

    (folder / "inputs").mkdir()
    write_demo_driving(folder / "inputs" / "driving.mp4", seconds=1)  # kept by write_demo_inputs
    return write_demo_inputs(folder / "inputs")


@pytest.fixture(scope="module")
def settings(folder: Path) -> Settings:
    return Settings(home=folder / "home", torch_threads=1, log_level="WARNING")


@pytest.fixture(scope="module")
def executor(settings: Settings) -> Iterator[ProcessExecutor]:
    """Shared by the module so the child (and its warm engine) is spawned once, as in the service."""
    run = ProcessExecutor(settings)
    yield run
    run.close()


def _execution(demo: tuple[Path, Path], output: Path) -> Execution:
    return animation.execution(demo[0], demo[1], output, "landmarks", {"relative": True})


def _frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


class _Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def __call__(self, progress: Any) -> None:
        self.events.append(progress)


def test_child_output_matches_the_thread_executor(
    executor: ProcessExecutor, settings: Settings, demo: tuple[Path, Path], tmp_path: Path
) -> None:
    progress = _Recorder()
    in_child = executor(_execution(demo, tmp_path / "child.mp4"), progress, lambda: False)
    in_thread = ThreadExecutor(settings)(
        _execution(demo, tmp_path / "thread.mp4"), lambda _p: None, lambda: False
    )

    assert (in_child.frames, in_child.fps) == (in_thread.frames, in_thread.fps)
    child_frames, thread_frames = _frames(tmp_path / "child.mp4"), _frames(tmp_path / "thread.mp4")
    assert child_frames.shape == thread_frames.shape
    assert np.array_equal(child_frames, thread_frames)
    stages = [event.stage for event in progress.events]
    # The child reports taking the job, then the pipeline reports its stages.
    assert stages[:2] == ["starting", "load"] and stages[-1] == "done" and "animate" in stages
    assert progress.events[-1].done == in_child.frames
    assert len(executor.pids()) == 1
    # It ran under the default address-space cap, which therefore leaves room for a real animation.
    limits = Path(f"/proc/{executor.pids()[0]}/limits").read_text().splitlines()
    address_space = next(line for line in limits if line.startswith("Max address space"))
    assert settings.job_memory_mb > 0
    assert address_space.split()[3] == str(settings.job_memory_mb * 1024 * 1024)


def test_the_child_is_reused_between_jobs(
    executor: ProcessExecutor, demo: tuple[Path, Path], tmp_path: Path
) -> None:
    executor(_execution(demo, tmp_path / "first.mp4"), lambda _p: None, lambda: False)
    before = executor.pids()
    executor(_execution(demo, tmp_path / "second.mp4"), lambda _p: None, lambda: False)
    assert executor.pids() == before
    assert before[0] != os.getpid()


def test_cancel_stops_the_child_and_leaves_no_output(
    executor: ProcessExecutor, demo: tuple[Path, Path], tmp_path: Path
) -> None:
    progress = _Recorder()

    def should_cancel() -> bool:
        return any(event.stage == "animate" for event in progress.events)

    output = tmp_path / "cancelled.mp4"
    with pytest.raises(Cancelled):
        executor(_execution(demo, output), progress, should_cancel)
    assert progress.events[-1].stage == "animate"
    assert progress.events[-1].done < progress.events[-1].total
    assert list(tmp_path.iterdir()) == []
    # The same child takes the next job, with its cancel flag cleared.
    pids = executor.pids()
    executor(_execution(demo, tmp_path / "after.mp4"), lambda _p: None, lambda: False)
    assert executor.pids() == pids
    assert (tmp_path / "after.mp4").is_file()


def test_a_bad_input_error_crosses_with_its_class_and_message(
    executor: ProcessExecutor, settings: Settings, demo: tuple[Path, Path], tmp_path: Path
) -> None:
    fake = tmp_path / "face.png"
    fake.write_text("<html>not an image</html>")
    execution = animation.execution(fake, demo[1], tmp_path / "out.mp4", "landmarks", {})
    with pytest.raises(AnimaticaError) as in_thread:
        ThreadExecutor(settings)(execution, lambda _p: None, lambda: False)
    with pytest.raises(AnimaticaError) as in_child:
        executor(execution, lambda _p: None, lambda: False)
    assert type(in_child.value) is type(in_thread.value)
    assert isinstance(in_child.value, MediaError)
    assert str(in_child.value) == str(in_thread.value)
    assert not (tmp_path / "out.mp4").exists()


def test_a_killed_child_fails_its_job_and_the_next_job_gets_a_fresh_one(
    settings: Settings, demo: tuple[Path, Path], tmp_path: Path
) -> None:
    run = ProcessExecutor(settings)
    try:
        killed: list[int] = []

        def kill_on_animate(progress: Any) -> None:
            if progress.stage == "animate" and not killed:
                killed.extend(run.pids())
                os.kill(killed[0], signal.SIGKILL)

        with pytest.raises(RuntimeError) as failure:
            run(_execution(demo, tmp_path / "killed.mp4"), kill_on_animate, lambda: False)
        assert isinstance(failure.value, ChildDied)
        assert not isinstance(failure.value, AnimaticaError)  # the runner returns the credit
        assert len(killed) == 1 and run.pids() == []
        assert not (tmp_path / "killed.mp4").exists()

        result = run(_execution(demo, tmp_path / "next.mp4"), lambda _p: None, lambda: False)
        assert result.frames == len(_frames(tmp_path / "next.mp4"))
        assert run.pids() and run.pids()[0] != killed[0]
    finally:
        run.close()
    assert run.pids() == []


def test_a_sigterm_sent_to_every_process_leaves_the_job_to_the_parent(
    executor: ProcessExecutor, demo: tuple[Path, Path], tmp_path: Path
) -> None:
    # systemd stops a service by signalling its whole cgroup: the child must not die of it, or the
    # job would fail instead of going back to the queue when the parent stops.
    signalled: list[int] = []

    def sigterm_on_first_report(_progress: Any) -> None:
        if not signalled:
            signalled.extend(executor.pids())
            os.kill(signalled[0], signal.SIGTERM)

    result = executor(_execution(demo, tmp_path / "out.mp4"), sigterm_on_first_report, lambda: False)
    assert result.frames == len(_frames(tmp_path / "out.mp4"))
    assert executor.pids() == signalled


def test_close_stops_a_child_in_the_middle_of_a_job_and_waits_until_it_is_gone(
    settings: Settings, demo: tuple[Path, Path], tmp_path: Path
) -> None:
    run = ProcessExecutor(settings)
    frozen: list[int] = []
    outcome: list[BaseException | None] = []

    def freeze_on_first_report(_progress: Any) -> None:
        if not frozen:  # a stopped child acts on nothing but SIGKILL
            frozen.extend(run.pids())
            os.kill(frozen[0], signal.SIGSTOP)

    def job() -> None:
        try:
            run(_execution(demo, tmp_path / "closed.mp4"), freeze_on_first_report, lambda: False)
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=job)
    worker.start()
    deadline = time.monotonic() + 120
    while not frozen:
        assert time.monotonic() < deadline and worker.is_alive(), outcome
        time.sleep(0.02)
    run.close()
    with pytest.raises(ProcessLookupError):
        os.kill(frozen[0], 0)  # reaped before close() returned
    worker.join(60)
    assert len(outcome) == 1 and isinstance(outcome[0], ChildDied)
    assert run.pids() == [] and not (tmp_path / "closed.mp4").exists()


def test_the_service_animates_in_a_child_unless_told_to_use_a_thread(settings: Settings) -> None:
    from animatica.service.app import create_app

    service = settings.model_copy(update={"worker_enabled": False})
    assert isinstance(create_app(service).state.ctx.runner.executor, ProcessExecutor)
    threaded = service.model_copy(update={"worker_mode": "thread"})
    assert isinstance(create_app(threaded).state.ctx.runner.executor, ThreadExecutor)
