"""Tiny transformers models saved to a folder, for the prompt module's tests.

``build_tiny_captioner`` is a random-weight BLIP captioner: its captions are gibberish, but loading,
preprocessing and generation are the real ones. ``build_scripted_llm`` is a GPT-2 whose weights are
set by hand so that greedy decoding gives a known answer whatever the prompt: the transformer blocks
add nothing, every token embeds as its own one-hot direction, and the output layer maps each token
to the one that should follow it (any token not in the script is followed by ``start``). That lets a
test check the whole rewrite path, including what happens to a good, an empty and a looping answer.
"""

from __future__ import annotations

from pathlib import Path

import torch

EOS = "<eos>"
UNK = "<unk>"
# One transformer block a few channels wide, and a vision tower over 32-px pictures in 8-px patches:
# the sizes of every tiny text or vision model here (BLIP's halves, the safety checker's CLIP).
TINY_BLOCKS = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
TINY_VISION = {**TINY_BLOCKS, "image_size": 32, "patch_size": 8}


def build_tiny_captioner(folder: Path, seed: int = 0) -> Path:
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    folder.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "man", "on", "the", "beach", "dog"]
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(words) + "\n")
    tokenizer = BertTokenizerFast(str(vocab), bos_token="[DEC]", model_max_length=32)
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer
    )
    config = BlipConfig(
        text_config={
            **TINY_BLOCKS,
            "vocab_size": len(words),
            "max_position_embeddings": 40,
            "bos_token_id": words.index("[DEC]"),
            "pad_token_id": 0,
            "sep_token_id": words.index("[SEP]"),
            "eos_token_id": words.index("[SEP]"),
        },
        vision_config=TINY_VISION,
        projection_dim=16,
    )
    torch.manual_seed(seed)
    BlipForConditionalGeneration(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    vocab.unlink()  # the fast tokenizer's tokenizer.json holds it
    return folder


def build_scripted_llm(
    folder: Path, start: str | None, follows: dict[str, str], chat_template: str | None = None
) -> Path:
    """A causal LM folder whose greedy answer is ``start`` and then ``follows[word]`` after each word
    (``EOS`` ends it; ``start=None`` answers nothing at all)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    words = [UNK, EOS, *sorted({*([start] if start else []), *follows, *follows.values()} - {EOS})]
    vocab = {word: i for i, word in enumerate(words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token=UNK, eos_token=EOS)
    if chat_template:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(folder)

    size = len(words) + 1  # one more dimension, constant after the final layer norm
    config = GPT2Config(
        vocab_size=len(words),
        n_positions=1024,
        n_embd=size,
        n_layer=1,
        n_head=1,
        tie_word_embeddings=False,
        bos_token_id=vocab[EOS],
        eos_token_id=vocab[EOS],
        pad_token_id=vocab[EOS],
    )
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "c_proj" in name or name.endswith("wpe.weight"):
                param.zero_()  # blocks add nothing to the residual stream; positions do not matter
        model.transformer.wte.weight.copy_(torch.eye(len(words), size))
        constant = size - 1
        model.transformer.ln_f.weight.fill_(1.0)
        model.transformer.ln_f.weight[constant] = 0.0
        # A one-hot row normalises to 1/std at its own dimension and -mean/std elsewhere: this bias lifts
        # the others to 0, so a word's scripted successor scores high and nothing else scores below 0.
        mean = 1.0 / size
        model.transformer.ln_f.bias.fill_(mean / (mean - mean**2) ** 0.5)
        model.transformer.ln_f.bias[constant] = 1.0
        head = model.lm_head.weight
        head.zero_()
        head[vocab[start] if start else vocab[EOS], constant] = 1.0  # the answer to anything unscripted
        for word, after in follows.items():
            head[vocab[after], vocab[word]] = 10.0
    model.save_pretrained(folder)
    return folder
