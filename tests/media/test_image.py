"""decode_picture: the one way pictures become upright 8-bit RGB, for the command line and the service."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from animatica.errors import MediaError
from animatica.media.image import decode_picture
from animatica.media.probe import open_image


def _decode(path: Path, max_side: int | None = None) -> np.ndarray:
    with open_image(path) as image:
        return decode_picture(image, path, max_side)


def test_modes_become_8_bit_rgb(tmp_path: Path) -> None:
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((6, 8), 65535 // 2, np.uint16)).save(deep)
    assert Image.open(deep).mode.startswith("I")  # really stored as 16-bit grayscale
    assert np.abs(_decode(deep).astype(int) - 127).max() <= 1

    cut_out = tmp_path / "la.png"
    la = np.zeros((6, 8, 2), np.uint8)
    la[:, :4] = (30, 255)  # opaque dark gray
    la[:, 4:] = (0, 0)  # transparent: white
    Image.fromarray(la, "LA").save(cut_out)
    pixels = _decode(cut_out)
    assert pixels.shape == (6, 8, 3) and pixels.dtype == np.uint8
    assert (pixels[:, :4] == 30).all() and (pixels[:, 4:] == 255).all()

    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(cmyk, quality=100)
    red = _decode(cmyk).reshape(-1, 3).mean(axis=0)
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


def test_a_large_photo_is_scaled_to_the_side_and_stands_upright(tmp_path: Path) -> None:
    path = tmp_path / "phone.jpg"
    pixels = np.zeros((3000, 4000, 3), np.uint8)
    pixels[:1000, :1000] = 255  # a white block at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # the phone was held upright: display rotated 90° clockwise
    Image.fromarray(pixels).save(path, exif=exif, quality=90)
    with open_image(path) as image:
        upright = decode_picture(image, path, max_side=1280)
        # Decoded at half scale straight from the JPEG's coefficients, not at full size then shrunk.
        assert image.size == (2000, 1500)
    assert upright.shape == (1280, 960, 3)
    assert upright[:100, -100:].mean() > 200  # clockwise: top-left went to top-right
    assert upright[:100, :100].mean() < 50


def test_small_pictures_are_never_enlarged(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    Image.new("RGB", (30, 20), (10, 20, 30)).save(path)
    assert _decode(path, max_side=1280).shape == (20, 30, 3)


def test_damaged_pixel_data_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "half.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"half\.png is a damaged or incomplete image"):
        _decode(path)
