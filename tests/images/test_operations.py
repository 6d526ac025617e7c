"""Image-to-image, inpainting, x4 upscaling and ControlNet guidance on tiny pipelines."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from animatica.images.errors import ImageModelMissing, ImageRequestError
from animatica.images.models import ImageModels
from animatica.images.request import ImageRequest
from animatica.images.run import _fit, run_image_request
from animatica.media.reader import read_image


def pixels(request: ImageRequest, models: ImageModels, **kwargs) -> np.ndarray:
    return np.asarray(run_image_request(request, models, **kwargs))


def test_img2img_starts_from_the_picture(tiny, pictures) -> None:
    models = ImageModels(diffusion=tiny["text2img"])
    base = ImageRequest(
        operation="img2img", prompt="a painting", init_image=pictures["photo"], size=(64, 64), steps=4
    )
    light_steps: list[tuple[int, int]] = []
    full_steps: list[tuple[int, int]] = []
    light = pixels(replace(base, strength=0.5), models, progress=lambda *a: light_steps.append(a))
    full = pixels(replace(base, strength=1.0), models, progress=lambda *a: full_steps.append(a))
    # A light touch runs only the end of the schedule, so it differs from a full redraw.
    assert light_steps[-1][0] == light_steps[-1][1] < full_steps[-1][1]
    assert not np.array_equal(light, full)
    other = pixels(replace(base, strength=0.5, init_image=pictures["mask"]), models)
    assert not np.array_equal(light, other)
    assert np.array_equal(light, pixels(replace(base, strength=0.5), models))


@pytest.mark.parametrize("form", ["inpaint", "inpaint-file"])
def test_inpainting_redraws_the_mask_and_keeps_the_rest_exactly(tiny, pictures, form) -> None:
    size = (128, 128)
    request = ImageRequest(
        operation="inpaint",
        prompt="a red helmet",
        init_image=pictures["photo"],
        mask=pictures["mask"],
        size=size,
        steps=3,
        strength=1.0,
    )
    result = pixels(request, ImageModels(inpaint=tiny[form]))
    original = np.asarray(_fit(read_image(pictures["photo"]), size))
    mask = np.asarray(_fit(read_image(pictures["mask"]), size))[..., 0] > 127
    # Outside the mask (beyond the feathered edge) the picture is the input's, pixel for pixel.
    outside = ~_grow(mask, 4)
    assert np.array_equal(result[outside], original[outside])
    inside = _shrink(mask, 4)
    assert np.abs(result[inside].astype(int) - original[inside]).mean() > 10


def test_inpainting_falls_back_to_the_diffusion_model_and_refuses_an_empty_mask(
    tiny, pictures, tmp_path
) -> None:
    request = ImageRequest(
        operation="inpaint",
        prompt="x",
        init_image=pictures["photo"],
        mask=pictures["mask"],
        size=(64, 64),
        steps=2,
    )
    assert pixels(request, ImageModels(diffusion=tiny["text2img"])).shape == (64, 64, 3)
    Image.new("RGB", (64, 64)).save(tmp_path / "black.png")
    with pytest.raises(ImageRequestError, match="mask is empty"):
        run_image_request(
            replace(request, mask=tmp_path / "black.png"), ImageModels(diffusion=tiny["text2img"])
        )
    with pytest.raises(ImageModelMissing, match=r"ANIMATICA_INPAINT_MODEL.*ANIMATICA_DIFFUSION_MODEL"):
        run_image_request(request, ImageModels())


@pytest.mark.parametrize("form", ["upscale", "upscale-file"])
def test_upscale_with_the_x4_model(tiny, pictures, form) -> None:
    request = ImageRequest(
        operation="upscale", init_image=pictures["small"], size=(160, 96), steps=3, prompt="a photo"
    )
    steps: list[tuple[int, int]] = []
    upscaled = pixels(request, ImageModels(upscale=tiny[form]), progress=lambda *a: steps.append(a))
    assert upscaled.shape == (96, 160, 3)
    assert steps == [(1, 3), (2, 3), (3, 3)]
    # Without the model: Lanczos, exactly the resampled input.
    resampled = pixels(request, ImageModels())
    assert np.array_equal(resampled, np.asarray(_fit(read_image(pictures["small"]), (160, 96))))
    assert not np.array_equal(upscaled, resampled)


def test_generation_is_drawn_at_native_size_then_upscaled(tiny) -> None:
    request = ImageRequest(prompt="a castle", size=(256, 144), steps=2, seed=3)
    steps: list[tuple[int, int]] = []
    with_model = pixels(
        request,
        ImageModels(diffusion=tiny["text2img"], upscale=tiny["upscale"]),
        progress=lambda *a: steps.append(a),
    )
    assert with_model.shape == (144, 256, 3)
    # PNDM's 3 drawing steps, then the x4 model's 2, counted as one job.
    assert steps == [(i, 5) for i in range(1, 6)]
    plain = pixels(request, ImageModels(diffusion=tiny["text2img"]))
    assert plain.shape == (144, 256, 3) and not np.array_equal(plain, with_model)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["face", "pose"])
def test_controlnet_guides_with_the_reference_photos_face(tiny, pictures, kind) -> None:
    models = ImageModels(diffusion=tiny["controlnet"], controlnets=((kind, tiny["controlnet-file"]),))
    request = ImageRequest(
        prompt="a portrait", size=(64, 64), steps=2, control_image=pictures["photo"], control=kind
    )
    guided = pixels(request, models)
    unguided = pixels(replace(request, control_scale=0.0), models)
    assert guided.shape == (64, 64, 3) and not np.array_equal(guided, unguided)
    other = "pose" if kind == "face" else "face"
    with pytest.raises(ImageModelMissing, match=f"'{other}'.*ANIMATICA_CONTROLNET_MODELS"):
        run_image_request(replace(request, control=other), models)


def _grow(mask: np.ndarray, by: int) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=by)


def _shrink(mask: np.ndarray, by: int) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_erosion(mask, iterations=by)
