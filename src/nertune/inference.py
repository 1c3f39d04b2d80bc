"""Using a trained model: split raw text into words, predict one tag per word, build entities, predict files.

The prediction path is the evaluation path: `align.encode_examples` (windows for long inputs, no word
lost), one label per word read at the word's FIRST sub-token (as in training), `merge_window_predictions`,
`schemes.repair_tags`, then `schemes.tags_to_spans`. Entities match `transformers.pipeline(
"token-classification", aggregation_strategy="first")` on the same words (tests/test_inference.py).

- `split_words(text)`: words with character offsets;
- `NerPredictor`: a loaded model; `predict_words` (tags and scores), `predict_tokens`, `predict_texts`;
- `run_prediction(model_dir, input, output, ...)`: `nertune predict` on a text, JSONL or CoNLL file.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex
import torch

from .align import encode_examples, merge_window_predictions
from .config import Recipe, RecipeError, load_recipe
from .data import DOCSTART, DataError, read_lines, split_columns
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
        raise ValueError("precision=int8 (dynamic quantization) runs on the CPU only; use bf16 or fp16 on a GPU")
    if device.type == "cpu":
        if precision == "int8":
            return precision
        if precision == "fp16":
            raise ValueError("precision=fp16 needs a CUDA device; use bf16 or fp32 on CPU")
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
            raise ValueError(f"{name}: the model has no NER labels (id2label); is it a fine-tuned model?")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
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
            raise FileNotFoundError(f"model directory not found: {model_dir}")
        adapter = is_adapter_dir(path)
        if not adapter and not (path / "config.json").is_file():
            raise FileNotFoundError(f"{model_dir} has no config.json: not a trained model directory")
        labels = trained_labels(load_model_config(str(path)))
        if labels is None:  # checked before loading, which would warn about a fresh, random head
            raise ValueError(f"{model_dir}: config.json has no NER labels (id2label); is it a fine-tuned model?")
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
            raise ValueError(f"{len(document_ids)} document ids for {len(sentences)} sentences")
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


# --------------------------------------------------------------------------------------------
# Predicting files (`nertune predict`)

INPUT_FORMATS = ("text", "jsonl", "conll")
OUTPUT_FORMATS = ("jsonl", "conll")
_CONLL_SUFFIXES = (".conll", ".tsv", ".bio", ".iob", ".iob2", ".bioes")


@dataclass
class _Record:
    """One unit of input: a text or pre-split tokens, with what writing the output needs."""

    text: str | None = None
    tokens: list[str] | None = None
    id: Any = None
    has_id: bool = False
    line: int = 0  # 1-based line of the record (CoNLL: of its first token)
    token_lines: list[int] | None = None  # CoNLL: index in the file's lines of each token
    document_id: str = ""  # CoNLL: from -DOCSTART- lines; JSONL: the `document_id` field; "" for none


_TAG = regex.compile(r"(?:O|[BIESLU]-\S+)")


def _input_format(path: Path, given: str | None) -> str:
    if given:
        return given
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    if suffix in _CONLL_SUFFIXES:
        return "conll"
    if suffix in (".txt", ""):
        return "text"
    # Corpora in the wild are named eng.testb, wnut17.dev ...: sniff. CoNLL when the file starts with
    # -DOCSTART- or its first lines all end in a tag column; JSONL when it starts with `{`; else text.
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        lines = [line.split() for line in itertools.islice(f, 200) if line.strip()][:20]
    if lines and lines[0][0].startswith("{"):
        found = "jsonl"
    elif lines and (lines[0][0] == DOCSTART or all(len(w) >= 2 and _TAG.fullmatch(w[-1]) for w in lines)):
        found = "conll"
    else:
        found = "text"
    logger.info("%s: read as %s from its content (extension %r; --format sets it)", path, found, suffix)
    return found


def _output_format(path: Path, given: str | None, input_format: str) -> str:
    if given:
        return given
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    if suffix in _CONLL_SUFFIXES or (suffix == ".txt" and input_format == "conll"):
        return "conll"
    raise ValueError(f"cannot tell the output format from {path.name!r}: use a .jsonl or .conll file name, "
                     "or --output-format jsonl|conll")


def _read_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    return [line for _, line in read_lines(path, encoding, hint="--encoding sets the input's")]


def read_text_records(path: Path, documents: bool = False, encoding: str = "utf-8") -> list[_Record]:
    """One text per line; a blank line is an empty text (it keeps its position). With `documents`, the
    lines are sentences and blank lines separate documents (whose sentences are each other's context)."""
    records, n_documents, previous_blank = [], 0, True
    for i, line in enumerate(_read_lines(path, encoding), start=1):
        blank = not line.strip()
        if documents and not blank and previous_blank:
            n_documents += 1
        records.append(_Record(text=line, line=i, document_id=f"doc{n_documents}" if documents and not blank else ""))
        previous_blank = blank
    return records


def read_jsonl_records(path: Path) -> list[_Record]:
    """`{"text": "..."}` or `{"tokens": [...]}` per line, optionally with an `id` and a `document_id`
    (records sharing one are the sentences of a document, in file order); blank lines are skipped."""
    records = []
    for i, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON ({e.msg} at column {e.colno}): {line[:80]!r}", path, i) from None
        if not isinstance(value, dict):
            raise DataError(f'expected an object {{"text": ...}} or {{"tokens": [...]}}, got {line[:80]!r}', path, i)
        if ("text" in value) == ("tokens" in value):
            raise DataError(f"a record needs exactly one of 'text' or 'tokens', it has keys {sorted(value)}", path, i)
        record = _Record(id=value.get("id"), has_id="id" in value, line=i)
        if "document_id" in value:
            document_id = value["document_id"]
            if not isinstance(document_id, (str, int)) or isinstance(document_id, bool):
                raise DataError(f"'document_id' must be a string or an integer, got {document_id!r:.80}", path, i)
            record.document_id = str(document_id)
        if "text" in value:
            if not isinstance(value["text"], str):
                raise DataError(f"'text' must be a string, got {value['text']!r:.80}", path, i)
            record.text = value["text"]
        else:
            tokens = value["tokens"]
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise DataError(f"'tokens' must be a list of strings, got {tokens!r:.80}", path, i)
            record.tokens = tokens
        records.append(record)
    return records


@dataclass
class ConllLayout:
    """How to read a CoNLL input: defaults from the model's training recipe (`data.token_column`,
    `data.delimiter`, `data.comment_prefix`), so a model trained on GermEval reads GermEval."""

    token_column: int = 0
    delimiter: str | None = None
    comment_prefix: str | None = None

    def is_comment(self, line: str) -> bool:
        return bool(self.comment_prefix) and line.startswith(self.comment_prefix)


def read_conll_records(path: Path, lines: list[str], layout: ConllLayout | None = None) -> list[_Record]:
    """Sentences of a CoNLL file, labelled or not: the token is in `layout.token_column` (the first by
    default), blank lines separate sentences, `-DOCSTART-` lines documents; comment lines are skipped."""
    layout = layout or ConllLayout()
    records: list[_Record] = []
    current: _Record | None = None
    document_id, n_documents = "", 0
    hash_lines = []  # "#" in the first column while the words are elsewhere: GermEval-style comments?
    for index, line in enumerate(lines):
        stripped = line.rstrip(" \t")
        if stripped.strip() and layout.is_comment(stripped):
            continue
        fields = split_columns(stripped, layout.delimiter) if stripped.strip() else []
        if fields and fields[0] == DOCSTART:
            document_id, n_documents = f"doc{n_documents}", n_documents + 1
        if not fields or fields[0] == DOCSTART:
            current = None
            continue
        try:
            token = fields[layout.token_column]
        except IndexError:
            hint = "; a comment line? --comment-prefix skips them" if stripped.startswith("#") else ""
            raise DataError(f"no token column {layout.token_column} in {line!r} ({len(fields)} columns; "
                            f"--token-column sets it{hint})", path, index + 1) from None
        if not token:
            raise DataError(f"empty token in column {layout.token_column}: {line!r}", path, index + 1)
        if fields[0] == "#" and layout.token_column != 0:
            hash_lines.append(index + 1)
        if current is None:
            current = _Record(tokens=[], token_lines=[], line=index + 1, document_id=document_id)
            records.append(current)
        current.tokens.append(token)
        current.token_lines.append(index)
    if hash_lines:
        logger.warning("%s: %d lines start with a '#' column (first: line %d) and are read as words; if they are "
                       "comments, --comment-prefix '#' skips them", path, len(hash_lines), hash_lines[0])
    return records


def _result_record(record: _Record, result: dict[str, Any], input_format: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": record.id} if record.has_id else {}
    if input_format == "conll":
        out["line"] = record.line
    out.update(result)
    return out


def _write_conll(path: Path, records: list[_Record], results: list[dict], lines: list[str] | None,
                 layout: ConllLayout | None = None) -> None:
    with open(path, "w", encoding="utf-8") as f:
        if lines is not None:
            # CoNLL input: every line as it was, the predicted tag appended as a new last column.
            tags = {}
            for record, result in zip(records, results):
                tags.update(zip(record.token_lines, result["tags"]))
            for index, line in enumerate(lines):
                line = line.rstrip(" \t")
                if not line or (layout is not None and layout.is_comment(line)):
                    f.write(f"{line}\n")
                    continue
                delimiter = "\t" if "\t" in line else " "
                tag = tags.get(index, "O")  # -DOCSTART- lines get O, like their other columns
                f.write(f"{line}{delimiter}{tag}\n")
            return
        for result in results:
            if not result["words"]:
                continue  # an empty text has no line to write; JSONL output keeps its position
            f.writelines(f"{word}\t{tag}\n" for word, tag in zip(result["words"], result["tags"]))
            f.write("\n")


def run_prediction(model_dir: str | Path, input_path: str | Path, output_path: str | Path,
                   input_format: str | None = None, output_format: str | None = None, batch_size: int = 32,
                   device: str | None = None, precision: str = "auto", documents: bool = False,
                   token_column: int | None = None, comment_prefix: str | None = None,
                   encoding: str = "utf-8") -> int:
    """Predict every record of a text, JSONL or CoNLL file and write JSONL or CoNLL; returns the count.

    Formats default from the file names (input: .jsonl/.json, .conll/.tsv/.bio..., else text; output:
    .jsonl/.json, .conll/.tsv/.bio..., or .txt for CoNLL input). JSONL output has one line per input
    record, in order, with its `id` when the input has one.
    Documents (context for a model trained with `context_size`): CoNLL `-DOCSTART-` lines, the JSONL
    `document_id` field, or, for text with `documents=True`, blocks of lines separated by blank lines.
    Text and CoNLL input are read in `encoding` (output is always UTF-8). CoNLL input is read with the
    training recipe's token column, delimiter and comment prefix unless
    `token_column`/`comment_prefix` say otherwise; comment lines are copied to CoNLL output unchanged.
    """
    from tqdm.auto import tqdm

    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"input file not found: {input_path}")
    if output_path.resolve() == input_path.resolve():
        raise ValueError(f"--output {output_path} would overwrite the input")
    input_format = _input_format(input_path, input_format)
    output_format = _output_format(output_path, output_format, input_format)
    if input_format not in INPUT_FORMATS or output_format not in OUTPUT_FORMATS:
        raise ValueError(f"unknown format: input {input_format!r} (one of {INPUT_FORMATS}), "
                         f"output {output_format!r} (one of {OUTPUT_FORMATS})")
    if documents and input_format != "text":
        raise ValueError(f"--documents is for text input; {input_format} input marks documents itself "
                         "(CoNLL: -DOCSTART- lines, JSONL: a document_id field)")
    # Read and check the whole input before loading the model: a bad line fails in a second.
    if encoding != "utf-8" and input_format == "jsonl":
        raise ValueError("--encoding is for text and CoNLL input; JSON is UTF-8 by its standard")
    conll_lines = _read_lines(input_path, encoding) if input_format == "conll" else None
    layout = _conll_layout(Path(model_dir), token_column, comment_prefix) if input_format == "conll" else None
    if input_format == "text":
        records = read_text_records(input_path, documents, encoding)
    elif input_format == "jsonl":
        records = read_jsonl_records(input_path)
    else:
        records = read_conll_records(input_path, conll_lines, layout)

    predictor = NerPredictor.from_pretrained(model_dir, device=device, batch_size=batch_size, precision=precision)
    results: list = [None] * len(records)
    chunks = _document_chunks(records, max(1, batch_size) * 16)  # bounds memory on huge files, keeps batches full
    with tqdm(total=len(records), unit="record", desc="predict", disable=len(chunks) <= 1) as progress:
        for chunk in chunks:
            for i, result in zip(chunk, _predict_records(predictor, [records[i] for i in chunk])):
                results[i] = result
            progress.update(len(chunk))

    output_path.parent.mkdir(parents=True, exist_ok=True)
    if output_format == "conll":
        _write_conll(output_path, records, results, conll_lines, layout)
    else:
        with open(output_path, "w", encoding="utf-8") as f:
            for record, result in zip(records, results):
                f.write(json.dumps(_result_record(record, result, input_format), ensure_ascii=False) + "\n")
    logger.info("predicted %d records of %s -> %s (%s)", len(records), input_path, output_path, output_format)
    return len(records)


def _conll_layout(model_dir: Path, token_column: int | None, comment_prefix: str | None) -> ConllLayout:
    layout = ConllLayout()
    recipe_file = model_dir / "config.yaml"
    if recipe_file.is_file():
        try:
            data = load_recipe(recipe_file).data
            layout = ConllLayout(data.token_column, data.delimiter, data.comment_prefix)
        except RecipeError as e:
            logger.warning("%s; reading CoNLL input with the token in the first column", e)
    if token_column is not None:
        layout.token_column = token_column
    if comment_prefix is not None:
        layout.comment_prefix = comment_prefix
    return layout


def _document_chunks(records: Sequence[_Record], size: int) -> list[list[int]]:
    """Record indices in chunks of about `size` that never split a document (its sentences are each
    other's context), documents in order of their first record."""
    documents: dict[Any, list[int]] = {}
    for i, record in enumerate(records):
        documents.setdefault(record.document_id or ("no document", i), []).append(i)
    chunks: list[list[int]] = [[]]
    for indices in documents.values():
        if chunks[-1] and len(chunks[-1]) + len(indices) > size:
            chunks.append([])
        chunks[-1].extend(indices)
    return chunks if chunks[0] else []


def _predict_records(predictor: NerPredictor, records: Iterable[_Record]) -> list[dict[str, Any]]:
    """Texts and token lists of one chunk in one call (documents keep their context), in input order."""
    records = list(records)
    split = [split_words(r.text) if r.tokens is None else None for r in records]
    words = [r.tokens if s is None else [w for w, _, _ in s] for r, s in zip(records, split)]
    tagged = predictor.predict_words(words, [r.document_id for r in records])
    return [predictor.tokens_result(r.tokens, t) if s is None else predictor.text_result(r.text, s, t)
            for r, s, t in zip(records, split, tagged)]
