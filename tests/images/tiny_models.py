"""Tiny random-weight Stable Diffusion pipelines, built from configs in about a second.

Real weights are gigabytes and nothing may be downloaded, so every image code path is exercised on
models with the real architectures (UNet2DConditionModel, AutoencoderKL, CLIPTextModel, CLIPTokenizer,
ControlNetModel, the x4 upscaler) but a few channels wide. They are saved the two ways an operator has
them: a diffusers folder (``save_pretrained``) and one ``.safetensors`` file in the original
Stable Diffusion (LDM) key layout, with the configs of the architecture in a folder beside it named like
the file without its extension (``model.safetensors`` + ``model/``), as ``from_single_file`` needs
offline.

``build_tiny_pipeline(folder, kind, single_file)`` returns the path to point a setting or ``--model`` at.
``build_tiny_lora(path, unet_folder)`` writes a LoRA file for the tiny UNet.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

KINDS = ("text2img", "inpaint", "upscale", "controlnet")

# Text width shared by the text encoder and the UNet's cross-attention.
TEXT_WIDTH = 16
# 2 ** (4 - 1) = 8, the SD 1.x latent scale, so that the size policy sees a realistic model.
VAE_BLOCKS = (4, 4, 8, 8)
UNET_SAMPLE_SIZE = 8  # native picture: 8 latents * 8 = 64 px


def _bytes_to_unicode() -> dict[int, str]:
    """The byte -> printable character table of byte-level BPE (GPT-2 / CLIP), so every byte has a token."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def write_tiny_tokenizer(folder: Path) -> int:
    """A CLIP BPE tokenizer with single characters and a few merges; returns its vocabulary size."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("o", "n</w>"), ("e", "r")]
    tokens = chars + [c + "</w>" for c in chars] + ["".join(pair) for pair in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "CLIPTokenizer",
                "model_max_length": 77,
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
                "do_lower_case": True,
            }
        )
    )
    return len(vocab)


def _text_encoder_and_tokenizer(scratch: Path) -> tuple[Any, Any]:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab_size = write_tiny_tokenizer(scratch / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(scratch / "tokenizer", local_files_only=True)
    config = CLIPTextConfig(
        hidden_size=TEXT_WIDTH,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        vocab_size=vocab_size,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=TEXT_WIDTH,
    )
    return CLIPTextModel(config).eval(), tokenizer


def _unet(in_channels: int, **extra: Any) -> Any:
    from diffusers import UNet2DConditionModel

    config: dict[str, Any] = {
        "sample_size": UNET_SAMPLE_SIZE,
        "in_channels": in_channels,
        "out_channels": 4,
        "layers_per_block": 1,
        "block_out_channels": (8, 16),
        "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
        "cross_attention_dim": TEXT_WIDTH,
        "attention_head_dim": 2,
        "norm_num_groups": 4,
    }
    config.update(extra)
    return UNet2DConditionModel(**config)


def _vae(blocks: tuple[int, ...] = VAE_BLOCKS) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(blocks),
        up_block_types=("UpDecoderBlock2D",) * len(blocks),
        block_out_channels=blocks,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=UNET_SAMPLE_SIZE * 2 ** (len(blocks) - 1),
    )


def _scheduler() -> Any:
    from diffusers import PNDMScheduler

    return PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True, steps_offset=1
    )


def _pipeline(kind: str, scratch: Path) -> Any:
    import diffusers

    text_encoder, tokenizer = _text_encoder_and_tokenizer(scratch)
    common = {"text_encoder": text_encoder, "tokenizer": tokenizer}
    sd_extras = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    if kind == "text2img":
        return diffusers.StableDiffusionPipeline(
            unet=_unet(4), vae=_vae(), scheduler=_scheduler(), **common, **sd_extras
        )
    if kind == "inpaint":
        # 4 noisy latents + 1 mask + 4 masked-picture latents, as the SD inpainting checkpoints take.
        return diffusers.StableDiffusionInpaintPipeline(
            unet=_unet(9), vae=_vae(), scheduler=_scheduler(), **common, **sd_extras
        )
    if kind == "controlnet":
        unet = _unet(4)
        # Four entries: three stride-2 steps take the condition picture down to the latent size (/8).
        controlnet = diffusers.ControlNetModel.from_unet(
            unet, conditioning_embedding_out_channels=(4, 4, 8, 8)
        )
        # Its output convolutions start at zero (no effect until trained); a trained one's are not.
        with torch.no_grad():
            for name, param in controlnet.named_parameters():
                if name.startswith(
                    ("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding")
                ):
                    param.normal_(0.0, 0.3)
        return diffusers.StableDiffusionControlNetPipeline(
            unet=unet, controlnet=controlnet, vae=_vae(), scheduler=_scheduler(), **common, **sd_extras
        )
    if kind == "upscale":
        # The x4 upscaler: 4 latents + the 3-channel low-resolution picture, noise level as class label,
        # and a VAE that decodes latents at 4x (three blocks).
        unet = _unet(
            7,
            num_class_embeds=1000,
            sample_size=16,
            # Attention only at the coarser level keeps the full-resolution level cheap, as in the real one.
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        )
        vae = _vae((4, 8, 8))
        vae.register_to_config(scaling_factor=0.08333)
        return diffusers.StableDiffusionUpscalePipeline(
            vae=vae,
            unet=unet,
            low_res_scheduler=diffusers.DDPMScheduler(),
            scheduler=diffusers.DDIMScheduler(
                beta_start=0.0001,
                beta_end=0.02,
                beta_schedule="scaled_linear",
                prediction_type="v_prediction",
            ),
            max_noise_level=350,
            **common,
        )
    raise ValueError(f"unknown kind {kind!r}; use one of {KINDS}")


def build_tiny_pipeline(
    folder: Path, kind: str = "text2img", single_file: bool = False, seed: int = 0
) -> Path:
    """Build a random-weight pipeline of ``kind`` under ``folder``; returns the folder or file to load.

    ``single_file``: a ``<kind>.safetensors`` in the original SD key layout with the weightless config
    folder ``<kind>/`` beside it. ControlNet: the base stays the folder ``controlnet/`` and the ControlNet
    is returned as its own original-layout file ``controlnet-model.safetensors`` + ``controlnet-model/``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    pipe = _pipeline(kind, folder / f".scratch-{kind}")
    shutil.rmtree(folder / f".scratch-{kind}")
    target = folder / kind
    pipe.save_pretrained(target, safe_serialization=True)
    if not single_file:
        return target
    if kind == "controlnet":
        # A ControlNet is distributed as its own file (original layout) with its config.json; the base
        # model stays the diffusers folder.
        from safetensors.torch import save_file

        weights = folder / "controlnet-model.safetensors"
        save_file(_contiguous(_controlnet_to_ldm(pipe.controlnet)), weights)
        weights.with_suffix("").mkdir(exist_ok=True)
        shutil.copy(target / "controlnet" / "config.json", weights.with_suffix("") / "config.json")
        return weights
    checkpoint = ldm_checkpoint(pipe)
    from safetensors.torch import save_file

    weights = folder / f"{kind}.safetensors"
    save_file(checkpoint, weights)
    for part in ("unet", "vae", "text_encoder"):
        for weight_file in (target / part).glob("*.safetensors"):
            weight_file.unlink()
    return weights


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.detach().contiguous().clone() for key, value in state.items()}


def ldm_checkpoint(pipe: Any) -> dict[str, torch.Tensor]:
    """The pipeline's weights under the original Stable Diffusion checkpoint's key names."""
    state: dict[str, torch.Tensor] = {}
    layers = pipe.unet.config.layers_per_block
    for key, value in _unet_to_ldm(pipe.unet.state_dict(), layers, pipe.unet.config).items():
        state["model.diffusion_model." + key] = value
    for key, value in _vae_to_ldm(pipe.vae.state_dict(), len(pipe.vae.config.down_block_types)).items():
        state["first_stage_model." + key] = value
    for key, value in pipe.text_encoder.state_dict().items():
        state["cond_stage_model.transformer.text_model." + key] = value
    return _contiguous(state)


def _controlnet_to_ldm(controlnet: Any) -> dict[str, torch.Tensor]:
    """Inverse of diffusers' ``convert_controlnet_checkpoint``: the UNet encoder half keeps the UNet's
    names; the condition embedding, zero convolutions and mid output have names of their own."""
    state = controlnet.state_dict()
    own: dict[str, torch.Tensor] = {}
    shared: dict[str, torch.Tensor] = {}
    blocks = len(controlnet.controlnet_cond_embedding.blocks)
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "controlnet_cond_embedding":
            if parts[1] == "conv_in":
                index = 0
            elif parts[1] == "conv_out":
                index = 2 * blocks + 2
            else:
                index = 2 * (int(parts[2]) + 1)
            own[f"input_hint_block.{index}.{parts[-1]}"] = value
        elif parts[0] == "controlnet_down_blocks":
            own[f"zero_convs.{parts[1]}.0.{parts[-1]}"] = value
        elif parts[0] == "controlnet_mid_block":
            own[f"middle_block_out.0.{parts[-1]}"] = value
        else:
            shared[key] = value
    own.update(_unet_to_ldm(shared, controlnet.config.layers_per_block, controlnet.config))
    return {"control_model." + key: value for key, value in own.items()}


def _resnet_to_ldm(name: str) -> str:
    for new, old in (
        ("norm1", "in_layers.0"),
        ("conv1", "in_layers.2"),
        ("norm2", "out_layers.0"),
        ("conv2", "out_layers.3"),
        ("time_emb_proj", "emb_layers.1"),
        ("conv_shortcut", "skip_connection"),
    ):
        name = name.replace(new, old)
    return name


def _unet_to_ldm(state: dict[str, torch.Tensor], layers: int, config: Any) -> dict[str, torch.Tensor]:
    """Inverse of diffusers' ``convert_ldm_unet_checkpoint`` for SD 1.x-style UNets."""
    fixed = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
        "class_embedding": "label_emb",
    }
    out: dict[str, torch.Tensor] = {}
    per_block = layers + 1
    for key, value in state.items():
        parts = key.split(".")
        head = ".".join(parts[:-1])
        if head in fixed:
            out[f"{fixed[head]}.{parts[-1]}"] = value
        elif parts[0] == "down_blocks":
            block = int(parts[1])
            if parts[2] == "downsamplers":
                index = 1 + block * per_block + layers
                out[f"input_blocks.{index}.0.op.{parts[-1]}"] = value
            else:
                index = 1 + block * per_block + int(parts[3])
                slot = "0" if parts[2] == "resnets" else "1"
                rest = ".".join(parts[4:])
                name = _resnet_to_ldm(rest) if slot == "0" else rest
                out[f"input_blocks.{index}.{slot}.{name}"] = value
        elif parts[0] == "mid_block":
            rest = ".".join(parts[3:])
            if parts[1] == "resnets":
                out[f"middle_block.{2 * int(parts[2])}.{_resnet_to_ldm(rest)}"] = value
            else:
                out[f"middle_block.1.{rest}"] = value
        elif parts[0] == "up_blocks":
            block = int(parts[1])
            if parts[2] == "upsamplers":
                index = block * per_block + layers
                has_attention = any(k.startswith(f"up_blocks.{block}.attentions.") for k in state)
                out[f"output_blocks.{index}.{2 if has_attention else 1}.conv.{parts[-1]}"] = value
            else:
                index = block * per_block + int(parts[3])
                rest = ".".join(parts[4:])
                if parts[2] == "resnets":
                    out[f"output_blocks.{index}.0.{_resnet_to_ldm(rest)}"] = value
                else:
                    out[f"output_blocks.{index}.1.{rest}"] = value
        else:
            raise KeyError(f"no LDM name for UNet weight {key}")
    return out


def _vae_to_ldm(state: dict[str, torch.Tensor], blocks: int) -> dict[str, torch.Tensor]:
    """Inverse of diffusers' ``convert_ldm_vae_checkpoint`` (attention projections back to 1x1 convs)."""
    attention = {
        "group_norm": "norm",
        "to_q": "q",
        "to_k": "k",
        "to_v": "v",
        "to_out.0": "proj_out",
    }
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        side = parts[0]
        if parts[1] in ("conv_in", "conv_out") or key.startswith(("quant_conv", "post_quant_conv")):
            out[key] = value
        elif parts[1] == "conv_norm_out":
            out[f"{side}.norm_out.{parts[-1]}"] = value
        elif parts[1] in ("down_blocks", "up_blocks"):
            block = int(parts[2])
            level = block if parts[1] == "down_blocks" else blocks - 1 - block
            word = "down" if parts[1] == "down_blocks" else "up"
            if parts[3] in ("downsamplers", "upsamplers"):
                sampler = "downsample" if word == "down" else "upsample"
                out[f"{side}.{word}.{level}.{sampler}.conv.{parts[-1]}"] = value
            else:
                rest = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
                out[f"{side}.{word}.{level}.block.{parts[4]}.{rest}"] = value
        elif parts[1] == "mid_block":
            if parts[2] == "resnets":
                rest = ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
                out[f"{side}.mid.block_{int(parts[3]) + 1}.{rest}"] = value
            else:
                name = ".".join(parts[4:-1])
                if value.dim() == 2:
                    value = value[:, :, None, None]
                out[f"{side}.mid.attn_1.{attention[name]}.{parts[-1]}"] = value
        else:
            raise KeyError(f"no LDM name for VAE weight {key}")
    return out


def build_tiny_lora(
    path: Path, unet_folder: Path, rank: int = 2, seed: int = 1, scale: float = 0.5, layout: str = "peft"
) -> Path:
    """A LoRA file for the tiny UNet in ``unet_folder`` (a pipeline folder).

    Both LoRA matrices are random (peft starts B at zero, which would change nothing), so loading it
    visibly changes the output. ``layout``: ``peft`` (what diffusers saves) or ``kohya`` (the
    ``lora_unet_…lora_down/lora_up/alpha`` names of the files LoRA sites distribute), same weights.
    """
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(Path(unet_folder) / "unet", local_files_only=True)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
    layers = get_peft_model_state_dict(unet)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if layout == "kohya":
        from safetensors.torch import save_file

        save_file(_kohya_names(layers), path)
        return path
    StableDiffusionPipeline.save_lora_weights(
        path.parent, unet_lora_layers=layers, weight_name=path.name, safe_serialization=True
    )
    return path


def _kohya_names(layers: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """peft LoRA weights under kohya's names; alpha = rank keeps the scale at 1, as peft's file has."""
    out: dict[str, torch.Tensor] = {}
    for key, value in layers.items():
        module, _, kind = key.removeprefix("unet.").removeprefix("base_model.model.").rpartition(".lora_")
        name = "lora_unet_" + module.replace(".", "_")
        down = kind.startswith("A")
        out[f"{name}.lora_{'down' if down else 'up'}.weight"] = value.contiguous()
        rank = value.shape[0] if down else value.shape[1]
        out[f"{name}.alpha"] = torch.tensor(float(rank))
    return out
