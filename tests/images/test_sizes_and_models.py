"""The size policy, the request checks and what the operator is told about missing models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from animatica.images import sizes
from animatica.images.errors import ImageModelMissing, ImageRequestError
from animatica.images.models import ImageModels, locate_weights
from animatica.images.request import SIZE_PRESETS, ImageRequest, parse_lora, parse_size
from animatica.images.run import run_image_request


@pytest.mark.parametrize("preset", ["portrait", "avatar", "thumbnail", "cover"])
def test_pictures_are_drawn_near_the_native_size_in_the_output_aspect(preset) -> None:
    output = SIZE_PRESETS[preset]
    for native in (512, 768):
        width, height = sizes.generation_size(output, native, 64)
        assert width % 64 == 0 and height % 64 == 0
        assert 0.95 < width * height / native**2 < 1.25
        # Rounded up on both sides, so centre-cropping to the output's aspect only trims.
        aspect = output[0] / output[1]
        assert width >= native * aspect**0.5 and height >= native / aspect**0.5
    assert sizes.generation_size((2048, 1152), 512, 64) == (704, 384)
    assert sizes.generation_size((800, 800), 512, 64) == (512, 512)


def test_only_real_enlargements_go_through_the_x4_model() -> None:
    assert sizes.needs_model_upscale((512, 512), (800, 800))
    assert not sizes.needs_model_upscale((512, 512), (600, 600))
    assert not sizes.needs_model_upscale((512, 512), (256, 256))


def test_sizes_and_loras_parse() -> None:
    assert parse_size("thumbnail") == (1280, 720)
    assert parse_size("800x600") == (800, 600)
    with pytest.raises(ImageRequestError, match="WIDTHxHEIGHT"):
        parse_size("big")
    assert parse_lora("ink.safetensors:0.6") == ("ink.safetensors", 0.6)
    assert parse_lora("ink.safetensors") == ("ink.safetensors", 1.0)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"prompt": " "}, "prompt is empty"),
        ({"size": (32, 32)}, "out of range"),
        ({"steps": 0}, "steps"),
        ({"scheduler": "magic"}, "unknown scheduler"),
        ({"operation": "inpaint"}, "picture to start from"),
        ({"loras": (("a.ckpt", 1.0),)}, "not a .safetensors"),
        ({"loras": (("a.safetensors", 5.0),)}, "out of range"),
        (
            {"operation": "img2img", "init_image": Path("a.png"), "control_image": Path("b.png")},
            "generate only",
        ),
    ],
)
def test_requests_are_checked_before_anything_loads(changes, words) -> None:
    request = ImageRequest(**{"prompt": "a cat", **changes})
    with pytest.raises(ImageRequestError, match=words):
        request.validate()
    with pytest.raises(ImageRequestError, match=words):
        run_image_request(request, ImageModels())


def test_settings_give_the_models_and_describe_says_what_is_missing(monkeypatch, tmp_path) -> None:
    from animatica.settings import Settings

    (tmp_path / "sd").mkdir()
    monkeypatch.setenv("ANIMATICA_DIFFUSION_MODEL", str(tmp_path / "sd"))
    monkeypatch.setenv("ANIMATICA_UPSCALE_MODEL", str(tmp_path / "nowhere"))
    monkeypatch.setenv("ANIMATICA_CONTROLNET_MODELS", json.dumps({"face": str(tmp_path / "sd")}))
    monkeypatch.setenv("ANIMATICA_IMAGE_ATTENTION_SLICING", "true")
    models = ImageModels.from_settings(Settings())
    assert models.diffusion == tmp_path / "sd" and models.inpaint is None and models.attention_slicing
    assert models.controlnet("face") == tmp_path / "sd"
    states = {row.key: row for row in models.describe()}
    assert states["diffusion"].state == "configured"
    assert states["upscale"].state == "missing" and "x4 upscaler" in states["upscale"].detail
    assert (
        states["inpaint"].state == "not configured" and states["inpaint"].setting == "ANIMATICA_INPAINT_MODEL"
    )
    assert states["controlnet:face"].state == "configured"


def test_a_missing_model_names_the_setting_and_what_to_put_there(tmp_path) -> None:
    request = ImageRequest(prompt="a cat", size=(64, 64), steps=1)
    with pytest.raises(ImageModelMissing, match="set ANIMATICA_DIFFUSION_MODEL to a Stable Diffusion"):
        run_image_request(request, ImageModels())
    with pytest.raises(ImageModelMissing, match=r"ANIMATICA_DIFFUSION_MODEL points at .* does not exist"):
        run_image_request(request, ImageModels(diffusion=tmp_path / "gone"))


def test_weights_forms_are_recognised_and_wrong_ones_explained(tmp_path) -> None:
    folder = tmp_path / "sd"
    folder.mkdir()
    with pytest.raises(ImageModelMissing, match=r"without model_index\.json"):
        locate_weights(folder, "S")
    (folder / "model_index.json").write_text("{}")
    assert locate_weights(folder, "S").config is None
    single = tmp_path / "sd.safetensors"
    single.write_bytes(b"")
    assert locate_weights(single, "S").config == folder
    lonely = tmp_path / "other.safetensors"
    lonely.write_bytes(b"")
    with pytest.raises(ImageModelMissing, match=r"needs the configs .* in .*other/"):
        locate_weights(lonely, "S")
    pickle = tmp_path / "sd.ckpt"
    pickle.write_bytes(b"")
    with pytest.raises(ImageModelMissing, match="can run code"):
        locate_weights(pickle, "S")


def test_a_damaged_checkpoint_is_an_operator_error(tiny, tmp_path) -> None:
    import shutil

    shutil.copytree(tiny["text2img-file"].with_suffix(""), tmp_path / "broken")
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(
        ImageModelMissing, match=r"ANIMATICA_DIFFUSION_MODEL: the model at .* could not be loaded"
    ):
        run_image_request(
            ImageRequest(prompt="a", size=(64, 64), steps=1),
            ImageModels(diffusion=tmp_path / "broken.safetensors"),
        )


@pytest.mark.parametrize("form", ["folders", "files"])
def test_weights_load_in_the_asked_type_without_a_deprecation_warning(tiny, form) -> None:
    # A ControlNet pipeline goes through both loaders, a pipeline's and a model's; "files" loads the
    # base from its checkpoint and the ControlNet from its own.
    import warnings

    import torch

    from animatica.images.pipelines import load_pipeline

    base, controlnet = tiny["controlnet"], tiny["controlnet"] / "controlnet"
    if form == "files":
        base, controlnet = tiny["text2img-file"], tiny["controlnet-file"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        pipe = load_pipeline("controlnet", base, "S", dtype=torch.bfloat16, controlnet=controlnet)
    assert pipe.unet.dtype == pipe.vae.dtype == pipe.controlnet.dtype == torch.bfloat16


def test_the_prompt_filter_runs_before_any_model_and_ignores_the_negative_prompt(tiny) -> None:
    from animatica.images.errors import PromptRefused

    # Refused even with no model configured: nothing was loaded, so nothing was spent.
    with pytest.raises(PromptRefused, match="nsfw"):
        run_image_request(ImageRequest(prompt="an nsfw picture", size=(64, 64), steps=1), ImageModels())
    allowed = ImageRequest(prompt="a lighthouse", negative="nsfw, nude", size=(64, 64), steps=1)
    assert run_image_request(allowed, ImageModels(diffusion=tiny["text2img"])).size == (64, 64)
