"""Uploads are judged by content: markup posing as media, polyglots, lying or missing lengths and
picture bombs are refused and cost nothing; accepted pictures are stored as the command line reads them."""

import io
from pathlib import Path
from typing import Any

from PIL import Image
from tests.service.uploads.posting import post as _post
from tests.service.uploads.posting import stored_files as _stored_files


def test_markup_and_polyglots_posing_as_images_are_refused(
    make_client: Any, api: Any, media: dict[str, Path], settings: Any
) -> None:
    client = make_client(worker=False)
    tokens = api.signup_login(client, "alice")
    video = ("drive.mp4", media["video"].read_bytes())
    png = media["image"].read_bytes()
    jpeg = io.BytesIO()
    Image.open(media["image"]).save(jpeg, format="JPEG")
    html = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="9" height="9"/></svg>'
    gif = io.BytesIO()
    Image.open(media["image"]).save(gif, format="GIF")
    cases = {
        "html named jpg": ("photo.jpg", html),
        "svg named png": ("photo.png", svg),
        "png with a page appended": ("photo.png", png + b"<html><script>alert(1)</script></html>"),
        "jpeg with a zip appended": (
            "photo.jpg",
            jpeg.getvalue() + b"PK\x03\x04" + b"\x00" * 40 + b"payload",
        ),
        "png with a script in a text chunk": (
            "photo.png",
            _png_with_text(media["image"], "<script>x()</script>"),
        ),
        "gif is not accepted": ("photo.gif", gif.getvalue()),
        "video as source": ("photo.jpg", media["video"].read_bytes()),
    }
    for name, source in cases.items():
        response = _post(client, tokens, source, video)
        assert 400 <= response.status_code < 500, (name, response.status_code)
        assert response.status_code != 402
    # An image posing as the video, and HTML posing as the video.
    assert _post(client, tokens, ("a.png", png), ("drive.mp4", png)).status_code == 415
    assert _post(client, tokens, ("a.png", png), ("drive.mp4", html)).status_code == 415
    assert api.credits(client, tokens) == 3
    assert _stored_files(settings) == []
    assert client.get("/api/v1/animations", headers=api.bearer(tokens)).json()["total"] == 0
    # The genuine JPEG is accepted.
    assert _post(client, tokens, ("photo.jpg", jpeg.getvalue()), video).status_code == 202


def _png_with_text(path: Path, text: str) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", text)
    out = io.BytesIO()
    Image.open(path).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def test_videos_over_the_plan_duration_are_refused(
    make_client: Any, api: Any, tmp_path: Path, media: dict[str, Path]
) -> None:
    client = make_client(worker=False)
    tokens = api.signup_login(client, "alice")
    long_clip = api.write_mp4(tmp_path / "long.mp4", frames=17 * 2, fps=2)  # 17 s > free plan's 15 s
    response = api.submit(client, tokens, media["image"], long_clip)
    assert response.status_code == 422 and "15 s" in response.json()["detail"]
    assert api.credits(client, tokens) == 3


# --- lengths from the stream, one picture reader, phone photos and GIFs -------------------------


def _free_plan_upload(tmp_path: Path, source: Path, driving: Path) -> Any:
    from animatica.service.plans import get_plan
    from animatica.service.uploads.checks import Upload

    return Upload(
        source, "The source image", tmp_path / "source.png", driving, "The driving video", get_plan("free")
    )


def test_a_header_that_understates_the_length_beats_no_limit(
    make_client: Any, api: Any, tmp_path: Path, media: dict[str, Path], settings: Any
) -> None:
    from tests.media.hostile import write_live_webm, write_lying_webm

    client = make_client(worker=False, sync_timeout_seconds=5.0)
    tokens = api.signup_login(client, "alice")
    lying = write_lying_webm(tmp_path / "short.webm", seconds=40, declared=5)  # free plan: 15 s
    response = api.submit(client, tokens, media["image"], lying)
    assert response.status_code == 422, response.text
    assert "runs past the length its header declares" in response.json()["detail"]
    assert "short.webm" in response.json()["detail"] and str(tmp_path) not in response.json()["detail"]
    # The synchronous endpoint (10 s) uses the same checks.
    with media["image"].open("rb") as image, lying.open("rb") as video:
        sync = client.post(
            "/api/v0/animation/video",
            headers=api.bearer(tokens),
            files={"source_image": ("a.png", image, "image/png"), "driving_video": ("v.webm", video)},
        )
    assert sync.status_code == 422 and "runs past" in sync.json()["detail"]
    # A clip that declares no length at all is measured on its packets.
    live = write_live_webm(tmp_path / "live.webm", seconds=40)
    response = api.submit(client, tokens, media["image"], live)
    assert response.status_code == 422, response.text
    assert "lasts 40.0 s" in response.json()["detail"] and "15 s" in response.json()["detail"]
    assert api.credits(client, tokens) == 3
    assert _stored_files(settings) == []


def test_the_job_carries_its_length_limit_in_frames(
    make_client: Any, api: Any, media: dict[str, Path], settings: Any, db: Any
) -> None:
    from animatica.jobs.animation import execution, request_fields

    client = make_client(worker=False)
    tokens = api.signup_login(client, "alice")
    job = api.submit(client, tokens, media["image"], media["video"]).json()
    # The free plan's 15 s at the clip's 8 fps, plus one frame of rounding slack.
    assert job["options"]["max_frames"] == 15 * 8 + 1
    fields = request_fields(settings, execution(Path("s"), Path("d"), Path("o"), "landmarks", job["options"]))
    assert fields["max_frames"] == 121  # and it reaches the pipeline


def test_gif_driving_videos_are_accepted(
    make_client: Any, api: Any, tmp_path: Path, media: dict[str, Path], settings: Any
) -> None:
    import av
    import numpy as np

    gif = tmp_path / "wave.gif"
    with av.open(str(gif), "w", format="gif") as container:
        stream = container.add_stream("gif", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb8"
        for index in range(20):
            pixels = np.full((48, 64, 3), (index * 12) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    client = make_client(worker=False)
    tokens = api.signup_login(client, "alice")
    response = api.submit(client, tokens, media["image"], gif)
    assert response.status_code == 202, response.text
    assert response.json()["options"]["max_frames"] == 15 * 10 + 1
    stored = sorted(path.name for path in _stored_files(settings))
    assert stored == ["driving.gif", "source.png"]


def test_a_phone_photo_is_scaled_down_to_the_plan_and_the_job_says_so(
    make_client: Any, api: Any, tmp_path: Path, media: dict[str, Path], settings: Any
) -> None:
    import numpy as np

    photo = tmp_path / "IMG_0001.jpg"
    ramp = np.linspace(0, 255, 4000, dtype=np.uint8)
    pixels = np.repeat(np.repeat(ramp[None, :, None], 3000, axis=0), 3, axis=2)
    exif = Image.Exif()
    exif[0x0112] = 6  # taken upright: stored landscape, displayed portrait
    Image.fromarray(pixels).save(photo, exif=exif, quality=85)
    client = make_client(worker=False)
    tokens = api.signup_login(client, "alice")
    response = api.submit(client, tokens, photo, media["video"])
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["notes"] == [
        "The source picture was 3000x4000; it was scaled down to 960x1280, the largest your plan "
        "animates (1280 px per side)."
    ]
    again = client.get(f"/api/v1/animations/{job['id']}", headers=api.bearer(tokens)).json()
    assert again["notes"] == job["notes"]
    (source,) = [path for path in _stored_files(settings) if path.name == "source.png"]
    with Image.open(source) as stored:
        assert stored.size == (960, 1280) and stored.mode == "RGB"
    assert api.credits(client, tokens) == 2
    # A picture within the plan's side is stored as it is, and the job has nothing to say.
    plain = api.submit(client, tokens, media["image"], media["video"]).json()
    assert plain["notes"] == []


def test_pictures_are_stored_as_the_command_line_reads_them(
    tmp_path: Path, media: dict[str, Path], settings: Any
) -> None:
    import numpy as np

    from animatica.media.reader import read_image
    from animatica.service.uploads import checks as upload_checks

    deep = tmp_path / "gray16.png"
    Image.fromarray(np.full((40, 48), 30000, np.uint16)).save(deep)  # 16-bit grayscale, mid-dark
    cut_out = tmp_path / "cutout.png"
    rgba = np.zeros((40, 48, 4), np.uint8)
    rgba[:, :24] = (200, 40, 40, 255)
    rgba[:, 24:] = (0, 0, 0, 0)  # transparent, stored black
    Image.fromarray(rgba, "RGBA").save(cut_out)
    palette = tmp_path / "palette.png"
    indexed = Image.new("P", (48, 40), 1)
    indexed.putpalette([0, 0, 0, 0, 150, 0] + [0] * 762)
    indexed.paste(0, (0, 0, 24, 40))
    indexed.save(palette, transparency=0)
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(np.tile(np.arange(48, dtype=np.uint8)[None, :, None] * 5, (40, 1, 3))).save(
        rotated, exif=exif, quality=95
    )
    in_this_process = settings.model_copy(update={"upload_check_processes": 0})
    for picture in (deep, cut_out, palette, rotated):
        upload = _free_plan_upload(tmp_path, picture, media["video"])
        image, _video = upload_checks.check(upload, in_this_process)
        with Image.open(image.path) as stored:
            assert np.array_equal(np.asarray(stored.convert("RGB")), read_image(picture)), picture.name
    # The 16-bit picture keeps its tone instead of turning white.
    assert np.abs(read_image(deep).astype(int) - round(30000 * 255 / 65535)).max() <= 1


def test_a_picture_bomb_is_refused_from_its_header_without_decoding(
    make_client: Any, api: Any, tmp_path: Path, media: dict[str, Path], settings: Any, monkeypatch: Any
) -> None:
    from PIL import ImageFile
    from tests.media.hostile import write_png_bomb

    bomb = write_png_bomb(tmp_path / "poster.png", 7900, 7900)  # about 180 KB on disk, 187 MB decoded
    assert bomb.stat().st_size < 300_000
    decoded: list[tuple[int, int]] = []
    load = ImageFile.ImageFile.load

    def spy(image: Any) -> Any:
        decoded.append(image.size)
        if image.size == (7900, 7900):
            raise AssertionError("the 7900x7900 picture was decoded")
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    client = make_client(worker=False, upload_check_processes=0)  # the check runs here, under the spy
    tokens = api.signup_login(client, "alice")
    response = api.submit(client, tokens, bomb, media["video"])
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        "The source image (poster.png) is 7900x7900 (62.4 megapixels); your plan accepts pictures of "
        "up to 25 megapixels, scale it down and upload it again."
    )
    assert (7900, 7900) not in decoded
    assert api.credits(client, tokens) == 3 and _stored_files(settings) == []
