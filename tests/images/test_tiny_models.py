"""The tiny models are faithful stand-ins: their single file is what diffusers reads as an SD checkpoint."""

from __future__ import annotations

import torch
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    infer_diffusers_model_type,
)
from tests.images.tiny_models import _pipeline, ldm_checkpoint


def _same(converted: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> None:
    assert set(converted) == set(state)
    for key, value in state.items():
        assert torch.equal(converted[key].reshape(value.shape), value), key


def test_ldm_checkpoint_converts_back_to_the_same_weights(tmp_path) -> None:
    for kind in ("text2img", "inpaint"):
        pipe = _pipeline(kind, tmp_path / kind)
        checkpoint = ldm_checkpoint(pipe)
        # diffusers recognises it as an SD 1.x checkpoint (so from_single_file takes its SD path) ...
        expected_type = "v1" if kind == "text2img" else "inpainting"
        assert infer_diffusers_model_type(checkpoint) == expected_type
        # ... and its own converters give back every weight exactly.
        _same(convert_ldm_unet_checkpoint(checkpoint, dict(pipe.unet.config)), pipe.unet.state_dict())
        _same(convert_ldm_vae_checkpoint(checkpoint, dict(pipe.vae.config)), pipe.vae.state_dict())
        clip = {k.removeprefix("text_model."): v for k, v in convert_ldm_clip_checkpoint(checkpoint).items()}
        _same(clip, pipe.text_encoder.state_dict())


def test_tokenizer_splits_words_with_its_merges(tmp_path) -> None:
    pipe = _pipeline("text2img", tmp_path / "t")
    ids = pipe.tokenizer("the anther").input_ids
    tokens = pipe.tokenizer.convert_ids_to_tokens(ids)
    assert tokens[0] == "<|startoftext|>" and tokens[-1] == "<|endoftext|>"
    assert "the</w>" in tokens and "an" in tokens
    assert max(ids) < pipe.text_encoder.config.vocab_size
