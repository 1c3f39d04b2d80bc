"""The word-embedding gradient kept in one buffer across steps instead of a new vocabulary-sized tensor each step.

A dense embedding backward allocates a zeroed (vocabulary x hidden) gradient every step and the Trainer frees
it again (`zero_grad(set_to_none=True)`); for a BERT vocabulary that is tens of megabytes of fresh pages a step,
whose page faults cost far more than the few hundred rows the batch touches (the profiler shows it as
`aten::fill_` on the embedding's shape). Here the embedding computes a sparse gradient (`sparse=True`: only the
looked-up rows) and a hook scatters it into a dense buffer that lives as long as the model, so the optimizer,
gradient clipping and checkpoints see the same dense gradient as before.
"""

from __future__ import annotations

import torch
from torch import nn


class ReusedEmbeddingGrad:
    """Makes `embedding` produce its dense gradient in one reused buffer (see the module docstring)."""

    def __init__(self, embedding: nn.Embedding):
        self.embedding = embedding
        self.buffer: torch.Tensor | None = None
        embedding.sparse = True
        self.handle = embedding.weight.register_post_accumulate_grad_hook(self._densify)

    def _densify(self, weight: torch.Tensor) -> None:
        grad = weight.grad
        if grad is None or not grad.is_sparse:
            # Dense already: a later micro-batch of the same optimizer step, added in place into the buffer.
            return
        if self.buffer is None or self.buffer.shape != weight.shape or self.buffer.dtype != grad.dtype:
            self.buffer = torch.empty(weight.shape, dtype=grad.dtype, device=grad.device)
        grad = grad.coalesce()
        self.buffer.zero_()
        self.buffer.index_add_(0, grad.indices()[0], grad.values())
        weight.grad = self.buffer

    def remove(self) -> None:
        """Back to the plain dense backward."""
        self.handle.remove()
        self.embedding.sparse = False
        self.buffer = None


def reuse_word_embedding_grad(model: nn.Module) -> ReusedEmbeddingGrad | None:
    """Installs `ReusedEmbeddingGrad` on the model's input embedding when it trains (not under LoRA, where it is
    frozen) and is a plain `nn.Embedding`; returns it, or None where nothing was changed. Once per model."""
    embedding = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if not isinstance(embedding, nn.Embedding) or not embedding.weight.requires_grad:
        return None
    existing = getattr(embedding, "_nertune_reused_grad", None)
    if existing is None:
        existing = ReusedEmbeddingGrad(embedding)
        embedding._nertune_reused_grad = existing
    return existing
