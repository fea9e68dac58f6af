"""Helpers for tests and fault drills: a tiny model that stands in for the real weights."""

from __future__ import annotations

import shutil
from pathlib import Path


def save_tiny_model(folder: str | Path) -> Path:
    """Save a tiny random BERT (2 layers, 32 dimensions) with the MiniLM tokenizer under ``folder`` and return its
    sentence-transformers folder (``folder/st``).

    It loads, encodes and trains in seconds, so training, indexing and serving can be exercised without the real
    weights; its embeddings mean nothing. Seeded: the same weights every time.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from towersearch.model import base_model_path

    folder = Path(folder)
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(base_model_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder / "hf")
    tokenizer.save_pretrained(folder / "hf")
    transformer = Transformer(str(folder / "hf"), max_seq_length=32)
    modules = [transformer, Pooling(transformer.get_embedding_dimension(), "mean"), Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(folder / "st"))
    shutil.rmtree(folder / "hf")
    return folder / "st"
