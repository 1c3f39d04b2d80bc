"""A trained model ready to tag words and texts: `NerPredictor` (loading, batching, decoding, entities).

The prediction path is the evaluation path: `align.encode_examples` (windows for long inputs, no word
lost), one label per word read at the word's FIRST sub-token (as in training), `merge_window_predictions`,
`schemes.repair_tags`, then `schemes.tags_to_spans`. Entities match `transformers.pipeline(
"token-classification", aggregation_strategy="first")` on the same words (tests/test_inference.py).

`NerPredictor` is a loaded model: `predict` (texts or token lists -> entities, words, tags), `predict_words`
(tags and scores); `predict_texts`, `predict_tokens`, `predict_document` are `predict` on one kind of input.
Files are predicted by `files.run_prediction`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from nertune.data.align import encode_examples, merge_window_predictions
from nertune.data.words import split_words
from nertune.errors import ModelError, RequestError
from nertune.heads import Decoded
from nertune.inference.backends import Backend, TorchBackend, load_backend
from nertune.model.loading import trained_labels
from nertune.model.rundir import RunDir
from nertune.model.settings import head_of, temperature_of
from nertune.schemes import normalize_scheme

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# The predictor


class NerPredictor:
    """A token-classification model ready to tag words and texts.

    Calls are serialized by a lock (neither the model nor a fast tokenizer is safe to share between
    threads), so one predictor can serve a threaded web server.

    `model` is a PyTorch token-classification model or a `backends.Backend` (an ONNX Runtime session of an
    exported run); the forward pass goes through it, everything else is the same for both.
    """

    def __init__(
        self,
        model: torch.nn.Module | Backend,
        tokenizer,
        *,
        scheme: str = "IOB2",
        max_length: int = 128,
        window_overlap: int = 32,
        context_size: int = 0,
        batch_size: int = 32,
        name: str = "model",
    ) -> None:
        self.backend = model if isinstance(model, Backend) else TorchBackend(model)
        labels = trained_labels(self.backend.config)
        if labels is None:
            raise ModelError(f"{name}: the model has no NER labels (id2label); is it a fine-tuned model?")
        if batch_size < 1:
            raise RequestError(f"batch_size must be at least 1, got {batch_size}")
        self.model = self.backend.head_model  # the torch model, or an export's head weights
        self.tokenizer = tokenizer
        self.labels = labels
        self.scheme = normalize_scheme(scheme)
        self.max_length = max_length
        self.window_overlap = window_overlap
        self.context_size = context_size
        self._warned_no_documents = False
        self.batch_size = batch_size
        self.name = name
        # config.json's `nertune` section names the head; it decodes with the model's own head modules (the
        # torch model, or an export's head weights), in the scheme the predictor reads tags in, and reports
        # scores at the section's calibration temperature.
        self.head = head_of(self.backend.config).bind(self.backend.head_model)
        self.head.scheme = self.scheme
        self.head.temperature = temperature_of(self.backend.config)
        self.device = self.backend.device
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(
        cls, model_dir: str | Path | RunDir, device: str | None = None, batch_size: int = 32, precision: str = "auto"
    ) -> NerPredictor:
        """Load a model directory written by `nertune train` (or any HF token-classification checkpoint), or
        the model of a `RunDir` already read.

        `max_length`, `window_overlap`, `context_size` and the tag scheme come from config.json's `nertune`
        section when there is one; otherwise 128/32/0 and BIOES if the labels have E-/S- prefixes, else IOB2
        (`RunDir`).
        `precision="auto"` uses bf16 only where the hardware runs it natively (else fp16 on older GPUs,
        fp32 on CPUs); `"int8"` quantizes the linear layers dynamically for CPU serving.
        An ONNX export (`nertune export`, `model.onnx`) runs with ONNX Runtime on the CPU, in the precision
        it was exported with.
        """
        run = model_dir if isinstance(model_dir, RunDir) else RunDir.load(model_dir)
        backend = load_backend(run, device=device, precision=precision)
        tokenizer = run.load_tokenizer()
        return cls(
            backend,
            tokenizer,
            scheme=run.scheme,
            max_length=run.max_length,
            window_overlap=run.window_overlap,
            context_size=run.context_size,
            batch_size=batch_size,
            name=run.path.name,
        )

    # -- words -> tags

    def predict_words(
        self, sentences: Sequence[Sequence[str]], document_ids: Sequence[str | None] | None = None
    ) -> list[list[tuple[str, float]]]:
        """One `(tag, score)` per word of every sentence (the tags and word scores of `predict`)."""
        return [list(zip(d.tags, d.scores)) for d in self._decode(sentences, document_ids)]

    def _decode(self, sentences: Sequence[Sequence[str]], document_ids: Sequence[str | None] | None) -> list[Decoded]:
        """Every sentence as the model's head decodes it (`Head.decode_sentences`: tags valid in the scheme,
        word scores, entities). The linear head reads each word's label at its first sub-token."""
        with self._lock:
            word_outputs = self._word_outputs(sentences, document_ids, self.head.row_outputs)
            if not word_outputs:
                return []
            with torch.inference_mode():
                return self.head.decode_sentences(word_outputs, self.labels)

    def word_logits(
        self, sentences: Sequence[Sequence[str]], document_ids: Sequence[str | None] | None = None
    ) -> list[torch.Tensor]:
        """Every sentence's float32 (words, labels) logits, read at each word's first sub-token, windows merged
        (what `Head.word_posteriors` takes)."""
        with self._lock:
            merged = self._word_outputs(sentences, document_ids, lambda logits: list(logits.cpu()))
        return [torch.stack(words) if words else torch.zeros((0, len(self.labels))) for words in merged]

    def _word_outputs(
        self,
        sentences: Sequence[Sequence[str]],
        document_ids: Sequence[str | None] | None,
        row_outputs: Callable[[torch.Tensor], list],
    ) -> list[list]:
        """`row_outputs(logits)` of every sub-token, merged over windows to one output per word of every sentence."""
        sentences = [list(words) for words in sentences]
        if not sentences:
            return []
        if document_ids is not None and len(document_ids) != len(sentences):
            raise RequestError(f"{len(document_ids)} document ids for {len(sentences)} sentences")
        if document_ids is not None and not any(document_ids):
            document_ids = None
        features = self._encode(sentences, document_ids)
        rows = self._predict_rows(features, row_outputs)
        keys = ("word_index", "example_index", "word_start", "word_end")
        return merge_window_predictions(*(features[key] for key in keys), rows, [len(s) for s in sentences])

    def _encode(self, sentences: list[list[str]], document_ids: Sequence[str | None] | None) -> dict[str, list]:
        if self.context_size and not (document_ids and any(document_ids)) and not self._warned_no_documents:
            self._warned_no_documents = True
            logger.warning(
                "%s was trained with document context (context_size=%d) but the input has no "
                "documents: sentences are read without their neighbours",
                self.name,
                self.context_size,
            )
        return encode_examples(
            sentences,
            self.tokenizer,
            self.max_length,
            self.window_overlap,
            document_ids=document_ids,
            context_size=self.context_size,
        )

    def _predict_rows(self, features: dict[str, list], row_outputs: Callable[[torch.Tensor], list]) -> list[list]:
        """`row_outputs` of a batch's logits (e.g. `Head.row_outputs`) at every sub-token of every window."""
        lengths = [len(row) for row in features["input_ids"]]
        predictions: list = [None] * len(lengths)
        batches = self.backend.batches(features, self.tokenizer.pad_token_id, self.batch_size, self.max_length)
        for placements, batch in batches:
            outputs = row_outputs(self.backend.logits(batch))
            for window, row, offset in placements:
                predictions[window] = outputs[row][offset : offset + lengths[window]]
        return predictions

    # -- entities

    def predict(
        self, inputs: Sequence[str] | Sequence[Sequence[str]], documents: Sequence[str | None] | None = None
    ) -> list[dict[str, Any]]:
        """Entities of every input: `{"entities", "words", "tags"}` per input, in order.

        An input is a text (`str`, split into words by `split_words`) or a pre-split sentence (a list of
        words); both may be mixed. An entity is `{"type", "text", "start", "end", "score"}`: for a text,
        `start`/`end` are CHARACTER offsets (`text[start:end]` is the entity); for words, WORD indices (end
        exclusive) and `text` the words joined by spaces. `score` is the head's (the linear and CRF heads:
        the mean of its words' scores).
        `documents`: one document id per input (in reading order; None for an input read alone); a model
        trained with `context_size` reads every sentence with its neighbours of the same document.
        """
        split = [split_words(x) if isinstance(x, str) else None for x in inputs]
        words = [[w for w, _, _ in s] if s is not None else list(x) for x, s in zip(inputs, split)]
        decoded = self._decode(words, documents)
        return [_result(x, w, s, d) for x, w, s, d in zip(inputs, words, split, decoded)]

    def predict_texts(
        self, texts: Sequence[str], document_ids: Sequence[str | None] | None = None
    ) -> list[dict[str, Any]]:
        """`predict` on texts."""
        return self.predict(list(texts), document_ids)

    def predict_tokens(
        self, sentences: Sequence[Sequence[str]], document_ids: Sequence[str | None] | None = None
    ) -> list[dict[str, Any]]:
        """`predict` on pre-split sentences."""
        return self.predict([list(words) for words in sentences], document_ids)

    def predict_document(self, sentences: Sequence[str]) -> list[dict[str, Any]]:
        """The sentences of one document, in order: entities per sentence, each read with its neighbours
        when the model was trained with `context_size` (FLERT document context)."""
        return self.predict(list(sentences), ["document"] * len(sentences))


def _result(given: Any, words: list[str], split: list | None, decoded: Decoded) -> dict[str, Any]:
    """`{"entities", "words", "tags"}` of one input: character offsets for a text (`split` its words with
    their offsets), word offsets for a pre-split sentence."""
    entities = []
    for type_, i, j, score in decoded.entities:
        if split is None:
            entities.append({"type": type_, "text": " ".join(words[i:j]), "start": i, "end": j, "score": score})
        else:
            start, end = split[i][1], split[j - 1][2]
            entities.append({"type": type_, "text": given[start:end], "start": start, "end": end, "score": score})
    return {"entities": entities, "words": words, "tags": decoded.tags}
