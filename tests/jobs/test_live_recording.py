"""The live-recording job: a session's raw recording becomes an H.264/AAC MP4 at the rate the session
reached, through the one job lifecycle, without touching the owner's credits; a damaged recording
fails with a clear message and leaves no result."""

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from sqlalchemy import select
from tests.conftest import load_job, write_png
from tests.live.recording_media import jpeg, opus_webm, record

from animatica.db import Database, ledger
from animatica.db.models import LedgerEntry
from animatica.errors import AnimaticaError, MediaError
from animatica.jobs import kinds, state
from animatica.jobs.lifecycle import ThreadExecutor
from animatica.jobs.live_recording import NAME, convert, scan
from animatica.jobs.runner import JobRunner
from animatica.live.recording import Recorder
from animatica.service.accounts import signup
from animatica.service.deps import CurrentUser
from animatica.service.live_recording import submit_live_recording
from animatica.service.submit import rerun
from animatica.settings import Settings
from animatica.storage.base import StorageError


def _never() -> bool:
    return False


def _levels(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [int(np.median(frame.to_ndarray(format="rgb24"))) for frame in container.decode(video=0)]


def test_the_mp4_runs_at_the_measured_rate_and_holds_the_picture_through_a_gap(tmp_path: Path) -> None:
    # Ten frames 40 ms apart, a 200 ms stall, then five more: 15 frames over 720 ms.
    times = [1000.0 + 40 * i for i in range(10)] + [1560.0 + 40 * i for i in range(5)]
    recording = record(tmp_path / "session.mkv", times)
    timeline = scan(recording)
    assert (timeline.frames, timeline.rate, timeline.output_frames) == (15, Fraction("19.44"), 15)
    reports: list[Any] = []
    output = tmp_path / "result.mp4"
    result = convert(recording, output, reports.append, _never)
    assert (result.frames, result.fps) == (15, 19.44)
    with av.open(str(output)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.name, video.frames, not container.streams.audio) == ("h264", 15, True)
    # Each recorded frame goes to the output slot nearest its time; through the stall the last
    # picture holds, and after it two frames falling in one slot show the later one.
    slot = [round((time - 1000) * 19.44 / 1000) for time in times]
    shown = [max(i for i in range(15) if slot[i] <= k) for k in range(15)]
    assert shown == [0, 1, 3, 4, 5, 7, 8, 9, 9, 9, 9, 10, 12, 13, 14]
    assert _levels(output) == pytest.approx([4 * i for i in shown], abs=3)
    assert reports[-1].done == reports[-1].total == 15


def test_the_microphone_sound_is_encoded_as_aac_in_step(tmp_path: Path) -> None:
    recording = record(
        tmp_path / "session.mkv", [40.0 * i for i in range(25)], opus_webm(1.5), sound_started_ms=-200.0
    )
    output = tmp_path / "result.mp4"
    convert(recording, output, lambda _step: None, _never)
    with av.open(str(output)) as container:
        audio = container.streams.audio[0]
        video = container.streams.video[0]
        assert audio.codec_context.name == "aac"
        seconds = float(audio.duration * audio.time_base)
        assert seconds == pytest.approx(float(video.duration * video.time_base), abs=0.05)
        samples = np.concatenate([frame.to_ndarray().ravel() for frame in container.decode(audio)])
    assert np.abs(samples[: len(samples) // 2]).max() > 0.1  # the tone from the start: it began before


def test_a_recording_cut_short_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    recording = record(tmp_path / "session.mkv", [40.0 * i for i in range(50)])
    data = recording.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="cut short"):
        convert(cut, tmp_path / "result.mp4", lambda _step: None, _never)
    (tmp_path / "junk.mkv").write_bytes(b"\x1a\x45\xdf\xa3" + bytes(500))
    with pytest.raises(MediaError, match="damaged"):
        convert(tmp_path / "junk.mkv", tmp_path / "result.mp4", lambda _step: None, _never)
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["cut.mkv", "junk.mkv", "session.mkv"]


def test_a_frame_that_does_not_decode_fails_the_job_without_a_result(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "session.mkv", 64)
    recorder.add_frame(jpeg(10), 0.0)
    recorder.add_frame(b"\xff\xd8" + bytes(300), 40.0)  # a JPEG's start, then nothing
    recorder.add_frame(jpeg(30), 80.0)
    recording = recorder.finish()
    assert recording is not None
    with pytest.raises(MediaError, match="frame 1 cannot be decoded"):
        convert(recording, tmp_path / "result.mp4", lambda _step: None, _never)
    assert not (tmp_path / "result.mp4").exists()


def test_a_canceled_conversion_stops_and_leaves_nothing(tmp_path: Path) -> None:
    recording = record(tmp_path / "session.mkv", [40.0 * i for i in range(20)])
    asked = iter([False, False, False, True])
    with pytest.raises(AnimaticaError, match="Canceled"):
        convert(recording, tmp_path / "result.mp4", lambda _step: None, lambda: next(asked))
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["session.mkv"]


def _context(settings: Settings) -> Any:
    from animatica.service.context import build_context

    return build_context(settings)


def _ledger_rows(db: Database, job_id: str) -> list[str]:
    with db.read() as session:
        return list(
            session.scalars(select(LedgerEntry.kind).where(LedgerEntry.ref == state.credit_ref(job_id)))
        )


def test_a_recording_job_lands_in_the_history_through_the_lifecycle_and_costs_nothing(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    ctx = _context(settings)
    user_id = signup(db, "alice", "password-long-enough", 0)  # no credit at all: the session was metered
    user = CurrentUser(user_id, "alice", "free", "family")
    recording = record(tmp_path / "session.mkv", [33.3 * i for i in range(12)])
    job_id = submit_live_recording(ctx, user, write_png(tmp_path / "face.png"), recording)
    job = load_job(db, job_id)
    assert (job.kind, job.status, job.driving_name, job.driving_key) == (
        NAME,
        state.QUEUED,
        "live session",
        f"jobs/{job_id}/driving.mkv",
    )
    assert kinds.get(NAME).cost == 0
    runner = JobRunner(db, ctx.storage, settings, ThreadExecutor(settings, set_threads=False), {})
    claimed = state.claim_next(db, runner.worker_id, {})
    assert claimed is not None and claimed.id == job_id
    assert runner.run(claimed) == state.SUCCEEDED
    job = load_job(db, job_id)
    assert job.result_key == f"jobs/{job_id}/result.mp4" and job.frames == 12
    local = tmp_path / "result.mp4"
    ctx.storage.get_file(job.result_key, local)
    assert len(_levels(local)) == 12
    with db.read() as session:
        assert ledger.balance(session, user_id) == 0
    assert _ledger_rows(db, job_id) == []

    again = rerun(ctx, user, job_id)  # "run again" from the History: free again, the stored files
    claimed = state.claim_next(db, runner.worker_id, {})
    assert claimed is not None and claimed.id == again and claimed.kind == NAME
    assert runner.run(claimed) == state.SUCCEEDED
    assert _ledger_rows(db, again) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_damaged_recording_fails_its_job_with_a_clear_message_and_no_credit_moves(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    ctx = _context(settings)
    user_id = signup(db, "bob", "password-long-enough", 2)
    user = CurrentUser(user_id, "bob", "free", "family")
    recording = record(tmp_path / "session.mkv", [40.0 * i for i in range(50)])
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(recording.read_bytes()[:3000])
    job_id = submit_live_recording(ctx, user, write_png(tmp_path / "face.png"), cut)
    runner = JobRunner(db, ctx.storage, settings, ThreadExecutor(settings, set_threads=False), {})
    claimed = state.claim_next(db, runner.worker_id, {})
    assert claimed is not None
    assert runner.run(claimed) == state.FAILED
    job = load_job(db, job_id)
    assert job.result_key is None and "the live recording is damaged" in (job.error or "")
    assert str(tmp_path) not in (job.error or "")
    with pytest.raises(StorageError):
        ctx.storage.size(f"jobs/{job_id}/result.mp4")
    with db.read() as session:
        assert ledger.balance(session, user_id) == 2
    assert _ledger_rows(db, job_id) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_failed_free_job_does_not_promise_a_credit_back_and_a_paid_one_does(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    from tests.conftest import add_job

    from animatica.jobs.messages import INTERNAL_ERROR

    ctx = _context(settings)
    user_id = signup(db, "carol", "password-long-enough", 2)
    user = CurrentUser(user_id, "carol", "free", "family")
    recording = record(tmp_path / "session.mkv", [40.0 * i for i in range(3)])
    free = [submit_live_recording(ctx, user, write_png(tmp_path / "face.png"), recording) for _ in range(2)]
    paid = [add_job(db, user_id) for _ in range(2)]
    for job_id in (*free, *paid):
        assert state.claim(db, job_id, "gone-worker", "starting") is not None

    # A worker reports the failure, or the worker itself is found dead: the same words either way.
    for failed in (free[0], paid[0]):
        assert state.fail(db, failed, "gone-worker", INTERNAL_ERROR)
    _requeued, abandoned = state.recover_abandoned(db, 3600.0, 0, {"gone-worker"})
    assert sorted(abandoned) == sorted([free[1], paid[1]])

    errors = {job_id: load_job(db, job_id).error for job_id in (*free, *paid)}
    assert errors[free[0]] == "The animation failed because of an internal error."
    assert errors[free[1]] == "The worker stopped while animating this job."
    assert errors[paid[0]] == INTERNAL_ERROR and errors[paid[0]].endswith("; your credit was returned.")
    assert errors[paid[1]] == state.ABANDONED_MESSAGE and "credit was returned" in errors[paid[1]]
    with db.read() as session:
        assert ledger.balance(session, user_id) == 2  # both paid credits came back, nothing else moved
