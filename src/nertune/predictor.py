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

from .align import encode_examples, merge_window_predictions
from .config import Recipe, RecipeError, load_recipe
from .errors import ModelError, ModelNotFoundError, RequestError
from .modeling import (cpu_supports_bf16, is_adapter_dir, load_for_inference, load_model_config, load_tokenizer,
                       resolve_precision, trained_labels)
from .schemes import normalize_scheme, parse_tag, repair_tags, tags_to_spans
from .words import split_words

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# The predictor


def _scheme_from_labels(labels: Sequence[str]) -> str:
    return "BIOES" if any(parse_tag(label)[0] in ("E", "S") for label in labels) else "IOB2"


def _read_recipe(model_dir: Path, labels: Sequence[str]) -> tuple[int, int, int, str]:
    """(max_length, window_overlap, context_size, scheme) from the run's `config.yaml`, else defaults and
    the scheme of the labels."""
    recipe_file = model_dir / "config.yaml"
    from_labels = _scheme_from_labels(labels)
    defaults = Recipe()
    if not recipe_file.is_file():
        return defaults.max_length, defaults.window_overlap, defaults.context_size, from_labels
    try:
        recipe = load_recipe(recipe_file)
    except RecipeError as e:
        # A recipe from another nertune version must not make its model unusable; windows only need sizes.
        logger.warning("%s; using default max_length/window_overlap/context_size and the scheme of the labels", e)
        return defaults.max_length, defaults.window_overlap, defaults.context_size, from_labels
    scheme = normalize_scheme(recipe.data.train_scheme)
    if scheme != from_labels:
        logger.warning("%s says train_scheme=%s but the labels look %s; reading tags as %s",
                       recipe_file, scheme, from_labels, scheme)
    return recipe.max_length, recipe.window_overlap, recipe.context_size, scheme


def _inference_precision(precision: str, device: torch.device) -> str:
    if precision == "int8" and device.type != "cpu":
        raise RequestError("precision=int8 (dynamic quantization) runs on the CPU only; use bf16 or fp16 on a GPU")
    if device.type == "cpu":
        if precision == "int8":
            return precision
        if precision == "fp16":
            raise RequestError("precision=fp16 needs a CUDA device; use bf16 or fp32 on CPU")
        if precision == "auto":  # resolve_precision would look at the GPU even when asked for the CPU
            return "bf16" if cpu_supports_bf16() else "fp32"
    return resolve_precision(precision)


_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class NerPredictor:
    """A token-classification model ready to tag words and texts.

    Calls are serialized by a lock (neither the model nor a fast tokenizer is safe to share between
    threads), so one predictor can serve a threaded web server.
    """

    def __init__(self, model, tokenizer, *, scheme: str = "IOB2", max_length: int = 128,
                 window_overlap: int = 32, context_size: int = 0, batch_size: int = 32,
                 name: str = "model") -> None:
        labels = trained_labels(model.config)
        if labels is None:
            raise ModelError(f"{name}: the model has no NER labels (id2label); is it a fine-tuned model?")
        if batch_size < 1:
            raise RequestError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.labels = labels
        self.scheme = normalize_scheme(scheme)
        self.max_length = max_length
        self.window_overlap = window_overlap
        self.context_size = context_size
        self._warned_no_documents = False
        self.batch_size = batch_size
        self.name = name
        self.device = next(model.parameters()).device
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, device: str | None = None, batch_size: int = 32,
                        precision: str = "auto") -> NerPredictor:
        """Load a model directory written by `nertune train` (or any HF token-classification checkpoint).

        `max_length`, `window_overlap`, `context_size` and the tag scheme come from the run's `config.yaml`
        when there is one; otherwise 128/32/0 and BIOES if the labels have E-/S- prefixes, else IOB2.
        `precision="auto"` uses bf16 only where the hardware runs it natively (else fp16 on older GPUs,
        fp32 on CPUs); `"int8"` quantizes the linear layers dynamically for CPU serving.
        """
        path = Path(model_dir).expanduser()
        if not path.is_dir():
            raise ModelNotFoundError(f"model directory not found: {model_dir}")
        adapter = is_adapter_dir(path)
        if not adapter and not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{model_dir} has no config.json: not a trained model directory")
        labels = trained_labels(load_model_config(str(path)))
        if labels is None:  # checked before loading, which would warn about a fresh, random head
            raise ModelError(f"{model_dir}: config.json has no NER labels (id2label); is it a fine-tuned model?")
        max_length, window_overlap, context_size, scheme = _read_recipe(path, labels)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        precision = _inference_precision(precision, device)
        tokenizer = load_tokenizer(str(path))
        # A LoRA adapter dir loads onto a fresh base model and is merged: inference then costs what a plain model does.
        model = load_for_inference(str(path))
        if adapter:
            model = model.merge_and_unload()
        if precision == "int8":
            # Dynamic int8 for CPU serving: Linear weights quantized once, activations per batch (measured on the
            # quickstart model: 1.24x the fp32 sentences/s, test F1 -0.003; `make bench` reports both).
            model = torch.ao.quantization.quantize_dynamic(model.float(), {torch.nn.Linear}, dtype=torch.qint8)
        else:
            model = model.to(device=device, dtype=_DTYPES[precision])
        return cls(model, tokenizer, scheme=scheme, max_length=max_length, window_overlap=window_overlap,
                   context_size=context_size, batch_size=batch_size, name=path.name)

    # -- words -> tags

    def predict_words(self, sentences: Sequence[Sequence[str]],
                      document_ids: Sequence[str | None] | None = None) -> list[list[tuple[str, float]]]:
        """One `(tag, score)` per word of every sentence.

        The tag is read at the word's first sub-token and the sequence repaired to be valid in the
        scheme (an I-X after O becomes B-X: the spans stay the same). The score is the model's
        probability of that label; repair only changes a prefix, never the entity type.
        With `document_ids` (one per sentence, in reading order) and a model trained with `context_size`,
        every sentence is read with its neighbours of the same document, as in training.
        """
        sentences = [list(words) for words in sentences]
        if not sentences:
            return []
        if document_ids is not None and len(document_ids) != len(sentences):
            raise RequestError(f"{len(document_ids)} document ids for {len(sentences)} sentences")
        crf = getattr(self.model, "crf", None)
        if crf is not None:
            return self._predict_words_crf(sentences, crf, document_ids)
        with self._lock:
            features = self._encode(sentences, document_ids)
            row_predictions = self._predict_rows(features)
        words = merge_window_predictions(features["word_index"], features["example_index"],
                                         features["word_start"], features["word_end"], row_predictions,
                                         [len(s) for s in sentences])
        results = []
        for predicted in words:
            tags = repair_tags([self.labels[label_id] for label_id, _ in predicted], self.scheme)
            results.append([(tag, score) for tag, (_, score) in zip(tags, predicted)])
        return results

    def _encode(self, sentences: list[list[str]], document_ids: Sequence[str | None] | None) -> dict[str, list]:
        if self.context_size and not (document_ids and any(document_ids)) and not self._warned_no_documents:
            self._warned_no_documents = True
            logger.warning("%s was trained with document context (context_size=%d) but the input has no "
                           "documents: sentences are read without their neighbours", self.name, self.context_size)
        return encode_examples(sentences, self.tokenizer, self.max_length, self.window_overlap,
                               document_ids=document_ids, context_size=self.context_size)

    def _predict_words_crf(self, sentences: list[list[str]], crf,
                           document_ids: Sequence[str | None] | None) -> list[list[tuple[str, float]]]:
        """head=crf: constrained Viterbi over each whole sentence's word emissions (windows merged first).
        The score of a word is the softmax probability of its Viterbi label under its emission scores."""
        from .crf import decode_words

        with self._lock:
            features = self._encode(sentences, document_ids)
            rows = self._predict_rows(features, emissions=True)
            emissions = merge_window_predictions(features["word_index"], features["example_index"],
                                                 features["word_start"], features["word_end"], rows,
                                                 [len(s) for s in sentences])
            with torch.inference_mode():
                paths = decode_words(crf, emissions)
        results = []
        for vectors, path in zip(emissions, paths):
            if not path:
                results.append([])
                continue
            probabilities = torch.stack(vectors).softmax(dim=-1)
            results.append([(self.labels[label_id], float(probabilities[i, label_id]))
                            for i, label_id in enumerate(path)])
        return results

    @torch.inference_mode()
    def _predict_rows(self, features: dict[str, list], emissions: bool = False) -> list[list]:
        """`(label id, probability)` at every sub-token of every window; with `emissions`, the float32
        emission score vector (CPU tensor) at every sub-token instead."""
        rows = features["input_ids"]
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in features]
        pad_values = {"input_ids": self.tokenizer.pad_token_id or 0, "attention_mask": 0, "token_type_ids": 0}
        predictions: list = [None] * len(rows)
        # Windows sorted by length and batched: a batch pads only to its own longest window.
        order = sorted(range(len(rows)), key=lambda r: len(rows[r]))
        for first in range(0, len(order), self.batch_size):
            batch_rows = order[first:first + self.batch_size]
            width = len(rows[batch_rows[-1]])
            batch = {}
            for key in keys:
                # Right padding, as in training: positions keep their index, the mask hides the pad.
                padded = [features[key][r] + [pad_values[key]] * (width - len(features[key][r])) for r in batch_rows]
                batch[key] = torch.tensor(padded, dtype=torch.long, device=self.device)
            logits = self.model(**batch).logits.float()
            if emissions:
                logits = logits.cpu()
                for r, row in zip(batch_rows, logits):
                    predictions[r] = list(row[:len(rows[r])])
                continue
            probabilities, label_ids = logits.softmax(dim=-1).max(dim=-1)
            for r, ids, probs in zip(batch_rows, label_ids.tolist(), probabilities.tolist()):
                predictions[r] = list(zip(ids[:len(rows[r])], probs[:len(rows[r])]))
        return predictions

    # -- entities

    def predict_tokens(self, sentences: Sequence[Sequence[str]],
                       document_ids: Sequence[str | None] | None = None) -> list[dict[str, Any]]:
        """Entities of pre-split sentences: `{"entities", "words", "tags"}` per sentence.

        An entity is `{"type", "text", "start", "end", "score"}` where `start`/`end` are WORD indices
        (end exclusive), `text` its words joined by spaces and `score` the mean of its words' scores.
        `document_ids`: see `predict_words`.
        """
        tagged = self.predict_words(sentences, document_ids)
        return [self.tokens_result(words, tags) for words, tags in zip(sentences, tagged)]

    def predict_texts(self, texts: Sequence[str], document_ids: Sequence[str | None] | None = None) -> list[dict[str, Any]]:
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
        entities = [{"type": type_, "text": " ".join(words[i:j]), "start": i, "end": j, "score": score}
                    for type_, i, j, score in self._spans(tagged)]
        return {"entities": entities, "words": list(words), "tags": [tag for tag, _ in tagged]}

    def text_result(self, text: str, words: Sequence[tuple[str, int, int]],
                    tagged: Sequence[tuple[str, float]]) -> dict[str, Any]:
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
