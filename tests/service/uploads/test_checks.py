"""Uploads are decoded in check processes: refusals cross the process boundary intact, the
server's limits travel with each check (a check process reads no settings of its own), and a
decoder crash refuses the upload without harming the server or later uploads."""

import os
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest

from animatica.media.limits import MediaLimits
from animatica.service.errors import Invalid, UnsupportedMedia
from animatica.service.plans import get_plan
from animatica.service.uploads import checks as upload_checks
from animatica.service.uploads.checks import Upload
from animatica.settings import Settings, get_settings


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


# The default limits as explicit settings values, so that the environment cannot fill them in.
DEFAULT_LIMITS = asdict(MediaLimits())


@pytest.fixture
def strict_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment whose settings would refuse the test media (check processes inherit it)."""
    monkeypatch.setenv("ANIMATICA_MAX_VIDEO_FRAMES", "4")
    monkeypatch.setenv("ANIMATICA_MAX_IMAGE_PIXELS", "100")
    get_settings.cache_clear()
    assert get_settings().max_video_frames == 4


@pytest.mark.usefixtures("strict_environment")
def test_a_check_in_the_server_process_obeys_the_limits_given(tmp_path: Path, media: dict[str, Path]) -> None:
    here = {"home": tmp_path / "home", "upload_check_processes": 0}
    image, video = upload_checks.check(_upload(tmp_path, media), Settings(**here, **DEFAULT_LIMITS))
    assert (image.width, video.frames) == (96, 8)
    with pytest.raises(Invalid, match="more than the limit of 7"):
        upload_checks.check(
            _upload(tmp_path, media), Settings(**{**here, **DEFAULT_LIMITS, "max_video_frames": 7})
        )


def test_a_check_process_obeys_the_callers_limits_not_its_own_environment(
    tmp_path: Path, media: dict[str, Path], strict_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = upload_checks._Pool()  # a fresh check process, spawned with the strict environment
    monkeypatch.setattr(upload_checks, "_pool", pool)
    caller = {"home": tmp_path / "home", "upload_check_processes": 1}
    try:
        image, video = upload_checks.check(_upload(tmp_path, media), Settings(**caller, **DEFAULT_LIMITS))
        assert (image.width, video.frames) == (96, 8)
        # Obeyed without rewriting the check process's environment to match the caller's.
        process = pool.get(1)
        assert process.submit(os.getenv, "ANIMATICA_MAX_VIDEO_FRAMES").result() == "4"
        smaller = Settings(**caller, **{**DEFAULT_LIMITS, "max_image_pixels": 96 * 96 - 1})
        with pytest.raises(Invalid, match="is 96x96"):
            upload_checks.check(_upload(tmp_path, media), smaller)
        assert process.submit(os.getenv, "ANIMATICA_MAX_IMAGE_PIXELS").result() == "100"
    finally:
        pool.get(1).shutdown(wait=True)
