"""A trained model ready to tag words and texts: `NerPredictor` (loading, batching, decoding, entities).

The prediction path is the evaluation path: `align.encode_examples` (windows for long inputs, no word
lost), one label per word read at the word's FIRST sub-token (as in training), `merge_window_predictions`,
`schemes.repair_tags`, then `schemes.tags_to_spans`. Entities match `transformers.pipeline(
"token-classification", aggregation_strategy="first")` on the same words (tests/test_inference.py).

`NerPredictor` is a loaded model: `predict_words` (tags and scores), `predict_tokens`, `predict_texts`,
`predict_document`. Files are predicted by `prediction.run_prediction`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nertune.data.align import encode_examples, merge_window_predictions
from nertune.data.words import split_words
from nertune.errors import ModelError, RequestError
from nertune.heads import head_of
from nertune.inference.backends import Backend, TorchBackend, load_backend
from nertune.model.loading import trained_labels
from nertune.model.rundir import RunDir
from nertune.schemes import normalize_scheme, repair_tags, tags_to_spans

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
        self.model = self.backend.head_model  # what the head decodes with: the torch model, or an export's head weights
        self.tokenizer = tokenizer
        self.labels = labels
        self.scheme = normalize_scheme(scheme)
        self.max_length = max_length
        self.window_overlap = window_overlap
        self.context_size = context_size
        self._warned_no_documents = False
        self.batch_size = batch_size
        self.name = name
        self.head = head_of(self.backend.config)  # config.json's nertune_head: how logits become word labels
        self.head.temperature = (getattr(self.backend.config, "nertune_calibration", None) or {}).get("temperature")
        self.device = self.backend.device
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(
        cls, model_dir: str | Path, device: str | None = None, batch_size: int = 32, precision: str = "auto"
    ) -> NerPredictor:
        """Load a model directory written by `nertune train` (or any HF token-classification checkpoint).

        `max_length`, `window_overlap`, `context_size` and the tag scheme come from the run's saved recipe
        (`recipe.yaml`, or `config.yaml` of older runs) when there is one; otherwise 128/32/0 and BIOES if the
        labels have E-/S- prefixes, else IOB2 (`RunDir`).
        `precision="auto"` uses bf16 only where the hardware runs it natively (else fp16 on older GPUs,
        fp32 on CPUs); `"int8"` quantizes the linear layers dynamically for CPU serving.
        An ONNX export (`nertune export`, `model.onnx`) runs with ONNX Runtime on the CPU, in the precision
        it was exported with.
        """
        run = RunDir.load(model_dir)
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
        """One `(tag, score)` per word of every sentence.

        The model's head decodes the words' labels (the linear head: read at the word's first sub-token)
        and the sequence is repaired to be valid in the scheme (an I-X after O becomes B-X: the spans stay
        the same). The score is the model's probability of that label; repair only changes a prefix,
        never the entity type.
        With `document_ids` (one per sentence, in reading order) and a model trained with `context_size`,
        every sentence is read with its neighbours of the same document, as in training.
        """
        sentences = [list(words) for words in sentences]
        if not sentences:
            return []
        if document_ids is not None and len(document_ids) != len(sentences):
            raise RequestError(f"{len(document_ids)} document ids for {len(sentences)} sentences")
        with self._lock:
            features = self._encode(sentences, document_ids)
            rows = self._predict_rows(features)
            word_outputs = merge_window_predictions(
                features["word_index"],
                features["example_index"],
                features["word_start"],
                features["word_end"],
                rows,
                [len(s) for s in sentences],
            )
            with torch.inference_mode():
                decoded = self.head.decode_words(self.model, word_outputs)
        results = []
        for predicted in decoded:
            tags = repair_tags([self.labels[label_id] for label_id, _ in predicted], self.scheme)
            results.append([(tag, score) for tag, (_, score) in zip(tags, predicted)])
        return results

    def word_logits(
        self, sentences: Sequence[Sequence[str]], document_ids: Sequence[str | None] | None = None
    ) -> list[torch.Tensor]:
        """Every sentence's float32 (words, labels) logits, read at each word's first sub-token, windows merged
        (what `Head.word_posteriors` takes)."""
        sentences = [list(words) for words in sentences]
        if not sentences:
            return []
        with self._lock:
            features = self._encode(sentences, document_ids)
            rows = self._predict_rows(features, lambda logits: list(logits.cpu()))
        keys = ("word_index", "example_index", "word_start", "word_end")
        merged = merge_window_predictions(*(features[key] for key in keys), rows, [len(s) for s in sentences])
        return [torch.stack(words) if words else torch.zeros((0, len(self.labels))) for words in merged]

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

    def _predict_rows(self, features: dict[str, list], row_outputs=None) -> list[list]:
        """The head's output (`Head.row_outputs`, or `row_outputs`) at every sub-token of every window."""
        row_outputs = row_outputs or self.head.row_outputs
        lengths = [len(row) for row in features["input_ids"]]
        predictions: list = [None] * len(lengths)
        batches = self.backend.batches(features, self.tokenizer.pad_token_id, self.batch_size, self.max_length)
        for placements, batch in batches:
            outputs = row_outputs(self.backend.logits(batch))
            for window, row, offset in placements:
                predictions[window] = outputs[row][offset : offset + lengths[window]]
        return predictions

    # -- entities

    def predict_tokens(
        self, sentences: Sequence[Sequence[str]], document_ids: Sequence[str | None] | None = None
    ) -> list[dict[str, Any]]:
        """Entities of pre-split sentences: `{"entities", "words", "tags"}` per sentence.

        An entity is `{"type", "text", "start", "end", "score"}` where `start`/`end` are WORD indices
        (end exclusive), `text` its words joined by spaces and `score` the mean of its words' scores.
        `document_ids`: see `predict_words`.
        """
        tagged = self.predict_words(sentences, document_ids)
        return [self.tokens_result(words, tags) for words, tags in zip(sentences, tagged)]

    def predict_texts(
        self, texts: Sequence[str], document_ids: Sequence[str | None] | None = None
    ) -> list[dict[str, Any]]:
        """Entities of raw texts: `{"entities", "words", "tags"}` per text (words from `split_words`).

        An entity is `{"type", "text", "start", "end", "score"}` where `start`/`end` are CHARACTER
        offsets (`text[start:end]` is the entity) and `score` the mean of its words' scores.
        `document_ids`: see `predict_words`; `predict_document` reads texts as the sentences of one document.
        """
        split = [split_words(text) for text in texts]
        tagged = self.predict_words([[w for w, _, _ in words] for words in split], document_ids)
        return [self.text_result(text, words, tags) for text, words, tags in zip(texts, split, tagged)]

    def predict_document(self, sentences: Sequence[str]) -> list[dict[str, Any]]:
        """The sentences of one document, in order: entities per sentence, each read with its neighbours
        when the model was trained with `context_size` (FLERT document context)."""
        return self.predict_texts(sentences, document_ids=["document"] * len(sentences))

    def tokens_result(self, words: Sequence[str], tagged: Sequence[tuple[str, float]]) -> dict[str, Any]:
        """`{"entities", "words", "tags"}` of a pre-split sentence; entity offsets are word indices."""
        entities = [
            {"type": type_, "text": " ".join(words[i:j]), "start": i, "end": j, "score": score}
            for type_, i, j, score in self._spans(tagged)
        ]
        return {"entities": entities, "words": list(words), "tags": [tag for tag, _ in tagged]}

    def text_result(
        self, text: str, words: Sequence[tuple[str, int, int]], tagged: Sequence[tuple[str, float]]
    ) -> dict[str, Any]:
        """`{"entities", "words", "tags"}` of a text split by `split_words`; entity offsets are characters."""
        entities = []
        for type_, i, j, score in self._spans(tagged):
            start, end = words[i][1], words[j - 1][2]
            entities.append({"type": type_, "text": text[start:end], "start": start, "end": end, "score": score})
        return {"entities": entities, "words": [w for w, _, _ in words], "tags": [t for t, _ in tagged]}

    def _spans(self, tagged: Sequence[tuple[str, float]]) -> list[tuple[str, int, int, float]]:
        """(type, first word, end word, mean word score) of every entity."""
        spans = tags_to_spans([tag for tag, _ in tagged], self.scheme)
        return [(type_, i, j, sum(score for _, score in tagged[i:j]) / (j - i)) for type_, i, j in spans]
