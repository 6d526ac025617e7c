"""Upload checks run in separate processes, never in the web server's.

Checking an upload means decoding it (PyAV, Pillow): CPU work that holds the GIL. Done in the
server's request threads it would delay every other request (status polls reach a p99 of 0.4 s
while two clients keep submitting), so a small pool of spawned processes does the checks and the
request thread only waits for the answer. A decoder that crashes or is killed on a hostile file
takes down one pool process, not the server: that upload is refused, and the pool is replaced
for the next one.

The pool belongs to the process, not to an app: it keeps no state between checks. A check
process reads no settings of its own; the server's ``MediaLimits`` travel with every call.
"""

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from animatica.media.limits import MediaLimits
from animatica.processes import leave_with_parent
from animatica.service.errors import UnsupportedMedia
from animatica.service.plans import Plan
from animatica.service.uploads.validate import DrivingVideo, SourceImage, validate_image, validate_video
from animatica.settings import Settings

CHECKS_PER_PROCESS = 200  # then a fresh process, so nothing a decoder leaked accumulates
NICENESS = 5  # below the server: a burst of uploads must not slow the requests it answers


@dataclass(frozen=True)
class Upload:
    """Two received files and what the check needs to know about them."""

    source: Path
    source_label: str
    normalized_source: Path  # where the accepted picture is written, decoded, fitted and re-encoded as PNG
    driving: Path
    driving_label: str
    plan: Plan
    max_seconds: float | None = None


@dataclass(frozen=True)
class PictureUpload:
    """One received picture, for a kind of job that reads no video (a portrait edit)."""

    source: Path
    source_label: str
    normalized_source: Path
    plan: Plan


@dataclass(frozen=True)
class VideoUpload:
    """One received video, for a job whose picture is already stored (one of the user's earlier)."""

    driving: Path
    driving_label: str
    plan: Plan
    max_seconds: float | None = None


def check_video_upload(upload: VideoUpload, limits: MediaLimits) -> DrivingVideo:
    """The video's check alone, within ``limits``."""
    return validate_video(upload.driving, upload.driving_label, upload.plan, limits, upload.max_seconds)


def check_picture_upload(upload: PictureUpload, limits: MediaLimits) -> SourceImage:
    """The picture's check alone, within ``limits``."""
    return validate_image(upload.source, upload.source_label, upload.plan, upload.normalized_source, limits)


def check_upload(upload: Upload, limits: MediaLimits) -> tuple[SourceImage, DrivingVideo]:
    """Both checks, in order, within ``limits``; raises the refusal of the first file that fails."""
    image = validate_image(upload.source, upload.source_label, upload.plan, upload.normalized_source, limits)
    video = validate_video(upload.driving, upload.driving_label, upload.plan, limits, upload.max_seconds)
    return image, video


def _ready() -> bool:
    return True


def _start_check_process(server: int) -> None:
    """The pool serves every app of the process, so no app's shutdown stops it: its check
    processes leave by themselves when the server is gone."""
    os.nice(NICENESS)
    leave_with_parent(server)


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None

    def get(self, workers: int) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    max_tasks_per_child=CHECKS_PER_PROCESS,
                    initializer=_start_check_process,
                    initargs=(os.getpid(),),
                )
            return self._executor

    def replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:
                self._executor = None
        broken.shutdown(wait=False, cancel_futures=True)


_pool = _Pool()


def warm_up(settings: Settings) -> None:
    """Start a check process now, so the first upload does not wait for it to import."""
    if settings.upload_check_processes > 0:
        _pool.get(settings.upload_check_processes).submit(_ready)


def _decoder_stopped(what: str, them: str, formats: str) -> str:
    """The refusal when a check process died on a file: the user can only save it again."""
    return (
        f"The uploaded {what} could not be checked because the decoder stopped on {them}; "
        f"save {them} again as {formats}."
    )


def check(upload: Upload, settings: Settings) -> tuple[SourceImage, DrivingVideo]:
    """Check an upload in a check process (or here, with ``upload_check_processes`` = 0), within
    the media limits of ``settings``."""
    stopped = _decoder_stopped("files", "them", "a JPG or PNG picture and an MP4 video")
    return _in_check_process(check_upload, upload, settings, stopped)


def check_picture(upload: PictureUpload, settings: Settings) -> SourceImage:
    """`check` for a lone picture."""
    stopped = _decoder_stopped("picture", "it", "a JPG or PNG picture")
    return _in_check_process(check_picture_upload, upload, settings, stopped)


def check_video(upload: VideoUpload, settings: Settings) -> DrivingVideo:
    """`check` for a lone video."""
    stopped = _decoder_stopped("video", "it", "an MP4 video")
    return _in_check_process(check_video_upload, upload, settings, stopped)


def _in_check_process(function: Any, upload: Any, settings: Settings, refusal: str) -> Any:
    limits = MediaLimits.from_settings(settings)
    if settings.upload_check_processes <= 0:
        return function(upload, limits)
    # A pool broken by an earlier upload, or by another upload checked beside this one, gets a
    # second try in a fresh pool; a file that brings the decoder down twice is refused.
    for _attempt in range(2):
        executor = _pool.get(settings.upload_check_processes)
        try:
            return executor.submit(function, upload, limits).result()
        except BrokenProcessPool:
            _pool.replace(executor)
    raise UnsupportedMedia(refusal)
