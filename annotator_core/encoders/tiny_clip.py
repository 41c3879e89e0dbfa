"""A tiny randomly initialised CLIP built from a config in code, for tests: the production code path, toy weights.

It is never a fallback: only the ``tiny-clip`` spec loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from annotator_core.encoders.clip import ClipEncoder, Preprocess

TINY_CLIP_SEED = 0
TINY_IMAGE_SIZE = 32
TINY_TEXT_LENGTH = 64


def tiny_tokenizer(max_length: int = TINY_TEXT_LENGTH) -> Any:
    """A byte-level tokenizer built in code: 256 byte symbols, then <pad>, <bos>, <eos>; no hub."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    # Specials last, so <eos> has the highest id: CLIP pools the text at the first <eos>, and
    # an eos id of 2 would switch transformers to its legacy "argmax of the ids" pooling.
    vocab = {symbol: i for i, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for special in ("<pad>", "<bos>", "<eos>"):
        vocab[special] = len(vocab)
    core = Tokenizer(BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        model_max_length=max_length,
    )


def load_tiny_clip(
    *, device: str = "auto", cpu_precision: str | None = None, cache_dir: Path | None = None
) -> ClipEncoder:
    """A randomly initialised 32-d CLIP with fixed weights (torch seed), for tests: the real code path."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    tokenizer = tiny_tokenizer()
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": TINY_TEXT_LENGTH,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": TINY_IMAGE_SIZE,
            "patch_size": 8,
        },
        projection_dim=32,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_CLIP_SEED)
        model = CLIPModel(config)
    processor = CLIPImageProcessorPil(
        size={"shortest_edge": TINY_IMAGE_SIZE}, crop_size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}
    )
    return ClipEncoder(
        name="tiny-clip",
        model=model,
        tokenizer=tokenizer,
        preprocess=Preprocess.from_processor(processor),
        device=device,
        cpu_precision=cpu_precision,
        cache_dir=cache_dir,
        text_max_length=TINY_TEXT_LENGTH,
    )
