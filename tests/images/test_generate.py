"""Text-to-image on tiny pipelines: both file forms, seeds, steps, schedulers, LoRA files."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from animatica.images.errors import ImageModelMissing, ImageRequestError
from animatica.images.models import ImageModels
from animatica.images.request import ImageRequest
from animatica.images.run import run_image_request

REQUEST = ImageRequest(prompt="a lighthouse at dusk", size=(128, 72), steps=3, seed=7)


def pixels(request: ImageRequest, models: ImageModels, **kwargs) -> np.ndarray:
    return np.asarray(run_image_request(request, models, **kwargs))


@pytest.mark.slow
def test_folder_and_single_file_give_the_same_picture_and_seeds_reproduce(tiny) -> None:
    folder = ImageModels(diffusion=tiny["text2img"])
    steps: list[tuple[int, int]] = []
    first = pixels(REQUEST, folder, progress=lambda done, total: steps.append((done, total)))
    assert first.shape == (72, 128, 3)
    # One report per denoising step (PNDM runs one more step than asked for), counting up to the total.
    assert steps == [(i, 4) for i in range(1, 5)]
    assert np.array_equal(pixels(REQUEST, folder), first)
    # The original-layout checkpoint holds the same weights, so the same seed gives the same pixels.
    assert np.array_equal(pixels(REQUEST, ImageModels(diffusion=tiny["text2img-file"])), first)
    assert not np.array_equal(pixels(replace(REQUEST, seed=8), folder), first)
    assert not np.array_equal(pixels(replace(REQUEST, negative="fog"), folder), first)


def test_scheduler_choice_is_used(tiny) -> None:
    models = ImageModels(diffusion=tiny["text2img"])
    calls: list[tuple[int, int]] = []
    euler = pixels(replace(REQUEST, scheduler="euler"), models, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (3, 3)  # Euler runs exactly the steps asked for
    assert not np.array_equal(euler, pixels(REQUEST, models))
    assert np.array_equal(euler, pixels(replace(REQUEST, scheduler="euler"), models))


def test_lora_changes_the_picture_with_its_weight_and_is_gone_afterwards(tiny) -> None:
    models = ImageModels(diffusion=tiny["text2img"], lora_dir=tiny["loras"])
    plain = pixels(REQUEST, models)
    full = pixels(replace(REQUEST, loras=(("ink.safetensors", 1.0),)), models)
    half = pixels(replace(REQUEST, loras=(("ink.safetensors", 0.5),)), models)
    assert np.abs(full.astype(int) - plain).mean() > 1
    assert not np.array_equal(half, full) and not np.array_equal(half, plain)
    # The same LoRA under kohya's names (as LoRA sites distribute them) is the same picture.
    assert np.array_equal(pixels(replace(REQUEST, loras=(("ink-kohya.safetensors", 1.0),)), models), full)
    assert np.array_equal(pixels(REQUEST, models), plain)


def test_several_loras_apply_each_at_its_own_weight(tiny, tmp_path) -> None:
    import shutil

    from tests.images.tiny_models import build_tiny_lora

    shutil.copy(tiny["loras"] / "ink.safetensors", tmp_path / "ink.safetensors")
    build_tiny_lora(tmp_path / "chalk.safetensors", tiny["text2img"], seed=2)
    models = ImageModels(diffusion=tiny["text2img"], lora_dir=tmp_path)
    ink = pixels(replace(REQUEST, loras=(("ink.safetensors", 1.0),)), models)
    chalk = pixels(replace(REQUEST, loras=(("chalk.safetensors", 0.7),)), models)
    both = pixels(replace(REQUEST, loras=(("ink.safetensors", 1.0), ("chalk.safetensors", 0.7))), models)
    assert not np.array_equal(both, ink) and not np.array_equal(both, chalk)
    # A file at weight 0 adds nothing: the other keeps its own weight, not a shared one.
    silent = pixels(replace(REQUEST, loras=(("ink.safetensors", 1.0), ("chalk.safetensors", 0.0))), models)
    assert np.array_equal(silent, ink)
    silent = pixels(replace(REQUEST, loras=(("ink.safetensors", 0.0), ("chalk.safetensors", 0.7))), models)
    assert np.array_equal(silent, chalk)


def test_lora_is_unloaded_from_the_loaded_pipeline_bit_for_bit(tiny) -> None:
    import torch

    from animatica.images.pipelines import load_pipeline, loras_applied

    pipe = load_pipeline("text2img", tiny["text2img"], "ANIMATICA_DIFFUSION_MODEL")
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    with loras_applied(pipe, [(tiny["loras"] / "ink.safetensors", 0.8)]):
        assert any("lora" in name for name, _ in pipe.unet.named_parameters())
    after = pipe.unet.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_a_lora_for_another_model_is_a_clear_error_and_leaves_the_model_clean(tiny, tmp_path) -> None:
    import torch

    state = load_file(tiny["loras"] / "ink.safetensors")
    # Wider inputs than this UNet's layers, and layer names this UNet does not have.
    wide = {k: torch.cat([v, v], dim=1) if "lora_A" in k else v for k, v in state.items()}
    save_file(wide, tmp_path / "wide.safetensors")
    renamed = {k.replace("unet.", "unet.other_blocks.", 1): v for k, v in state.items()}
    save_file(renamed, tmp_path / "renamed.safetensors")
    models = ImageModels(diffusion=tiny["text2img"], lora_dir=tmp_path)
    plain = pixels(REQUEST, models)
    for name in ("wide", "renamed"):
        with pytest.raises(ImageRequestError, match=f"{name}.safetensors (does not fit|matches no layer)"):
            run_image_request(replace(REQUEST, loras=((f"{name}.safetensors", 1.0),)), models)
    assert np.array_equal(pixels(REQUEST, models), plain)


def test_lora_names_stay_inside_the_lora_folder(tiny) -> None:
    models = ImageModels(diffusion=tiny["text2img"], lora_dir=tiny["loras"])
    with pytest.raises(ImageModelMissing, match=r"ink\.safetensors"):
        run_image_request(replace(REQUEST, loras=(("../loras/ink.safetensors", 1.0),)), models)
    with pytest.raises(ImageModelMissing, match="ANIMATICA_LORA_DIR"):
        run_image_request(
            replace(REQUEST, loras=(("ink.safetensors", 1.0),)), ImageModels(diffusion=tiny["text2img"])
        )


def test_raising_from_progress_stops_the_work(tiny) -> None:
    class Cancelled(Exception):
        pass

    def cancel(done: int, total: int) -> None:
        if done == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        run_image_request(REQUEST, ImageModels(diffusion=tiny["text2img"]), progress=cancel)


def test_memory_options(tiny) -> None:
    from animatica.images.pipelines import load_pipeline

    plain = pixels(REQUEST, ImageModels(diffusion=tiny["text2img"]))
    # Slicing computes the same attention in pieces, with other kernels than the fused one: the same
    # picture up to float rounding, which the denoising steps can grow into a few levels here and there.
    sliced = pixels(REQUEST, ImageModels(diffusion=tiny["text2img"], attention_slicing=True))
    # A tiny random model amplifies them more than a trained one would, so compare with what another
    # seed changes.
    other_seed = pixels(replace(REQUEST, seed=8), ImageModels(diffusion=tiny["text2img"]))
    rounding = np.abs(sliced.astype(int) - plain).mean()
    seed_change = np.abs(other_seed.astype(int) - plain).mean()
    assert rounding < 0.1 * seed_change, rounding
    pipe = load_pipeline("text2img", tiny["text2img"], "ANIMATICA_DIFFUSION_MODEL", vae_tiling=True)
    assert pipe.vae.use_tiling


def test_precisions(tiny) -> None:
    models = ImageModels(diffusion=tiny["text2img"])
    plain = pixels(REQUEST, models, precision="fp32")
    half = pixels(REQUEST, models, precision="bf16")
    assert half.shape == plain.shape and not np.array_equal(half, plain)
    assert np.abs(half.astype(int) - plain).mean() < 20  # the same picture, in coarser arithmetic
    with pytest.raises(ImageRequestError, match="fp16 needs a CUDA GPU"):
        run_image_request(REQUEST, models, precision="fp16")
