"""Uploads are decoded in check processes: refusals cross the process boundary intact, the
server's limits travel with each check, and a decoder crash refuses the upload without harming
the server or later uploads."""

import os
import shutil
from pathlib import Path

import pytest

from animatica.service import upload_checks
from animatica.service.errors import Invalid, UnsupportedMedia
from animatica.service.plans import get_plan
from animatica.service.upload_checks import Upload
from animatica.settings import Settings


def _upload(tmp_path: Path, media: dict[str, Path], plan: object = None) -> Upload:
    source, driving = tmp_path / "source.bin", tmp_path / "driving.bin"
    shutil.copyfile(media["image"], source)
    shutil.copyfile(media["video"], driving)
    return Upload(
        source,
        "The source image",
        tmp_path / "source.png",
        driving,
        "The driving video",
        plan or get_plan("free"),
    )


def _checks_in_processes(tmp_path: Path, **limits: int) -> Settings:
    return Settings(home=tmp_path / "home", upload_check_processes=1, **limits)


def test_a_good_upload_is_checked_in_another_process(tmp_path: Path, media: dict[str, Path]) -> None:
    upload = _upload(tmp_path, media)
    image, video = upload_checks.check(upload, _checks_in_processes(tmp_path))
    assert (image.width, image.height) == (96, 96)
    assert image.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # re-encoded by the check process
    assert (video.extension, video.width) == ("mp4", 64)
    assert video.duration == pytest.approx(1.0, abs=0.05)


def test_refusals_and_limits_cross_the_process_boundary(tmp_path: Path, media: dict[str, Path]) -> None:
    # The limit is only in this Settings object, not in the environment the check process has.
    assert "ANIMATICA_MAX_VIDEO_FRAMES" not in os.environ
    with pytest.raises(Invalid, match="more than the limit of 4"):
        upload_checks.check(_upload(tmp_path, media), _checks_in_processes(tmp_path, max_video_frames=4))
    html = tmp_path / "page.bin"
    html.write_bytes(b"<!DOCTYPE html><html><script>alert(1)</script></html>")
    upload = _upload(tmp_path, media)
    hostile = Upload(
        html, "The source image", upload.normalized_source, upload.driving, "The driving video", upload.plan
    )
    with pytest.raises(UnsupportedMedia, match="HTML or script"):
        upload_checks.check(hostile, _checks_in_processes(tmp_path))
    # The same limit again with the default: the check process did not keep the earlier one.
    upload_checks.check(_upload(tmp_path, media), _checks_in_processes(tmp_path))


class _CrashOnArrival:
    """Stands in for a file that crashes the decoder: unpickling it ends the check process."""

    def __reduce__(self) -> tuple[object, tuple[int]]:
        return os._exit, (3,)


def test_a_crashing_check_refuses_the_upload_and_the_next_one_works(
    tmp_path: Path, media: dict[str, Path]
) -> None:
    settings = _checks_in_processes(tmp_path)
    with pytest.raises(UnsupportedMedia, match="decoder stopped"):
        upload_checks.check(_upload(tmp_path, media, plan=_CrashOnArrival()), settings)
    image, _video = upload_checks.check(_upload(tmp_path, media), settings)
    assert image.path.exists()
