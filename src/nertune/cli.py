"""`nertune train RECIPE.yaml [key=value ...]`, `nertune evaluate MODEL_DIR [key=value ...]`,
`nertune predict MODEL_DIR --input FILE --output FILE`, `nertune serve MODEL_DIR [--port N]`,
`nertune hpo RECIPE.yaml [key=value ...]`, `nertune select MODEL_DIR --pool FILE --count N --output FILE`."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback

from nertune.errors import MissingDependencyError, NertuneError


def _setup_logging() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def train_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="nertune train", description="Fine-tune a token-classification model.")
    parser.add_argument("recipe", help="recipe YAML file (recipes/*.yaml)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, dotted for nesting (data.train_file=...)")
    args = parser.parse_args(argv)
    from nertune.recipe.schema import load_recipe
    from nertune.training.run import run_training

    run_training(load_recipe(args.recipe, args.overrides))
    return 0


MODEL_HELP = (
    "a run directory written by `nertune train`, or a Hub id owner/name[@revision] "
    "(through the Hugging Face cache; offline with HF_HUB_OFFLINE=1)"
)


def evaluate_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="nertune evaluate", description="Evaluate a trained model directory.")
    parser.add_argument("model_dir", help=MODEL_HELP)
    parser.add_argument("overrides", nargs="*", help="key=value overrides (data.test_file=..., split=test)")
    args = parser.parse_args(argv)
    from nertune.evaluation.run import run_evaluation

    run_evaluation(args.model_dir, args.overrides)
    return 0


def predict_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="nertune predict",
        description="Tag a text, JSONL or CoNLL file with a trained model.",
        epilog="text: one text per line (--documents: one sentence per line, blank lines between documents). "
        'JSONL: {"text": ...} or {"tokens": [...]} per line, optional "id" and "document_id". '
        "CoNLL: the first column is the word, -DOCSTART- lines start documents; CoNLL output repeats each "
        "line with the predicted tag appended. The input is streamed and results are written as they come; "
        "under `accelerate launch --num_processes N -m nertune.cli predict ...` N processes share the work.",
    )
    parser.add_argument("model_dir", help=MODEL_HELP)
    parser.add_argument("--input", required=True, help="file to tag")
    parser.add_argument("--output", required=True, help="where to write the predictions")
    parser.add_argument(
        "--format",
        choices=("text", "jsonl", "conll"),
        default=None,
        help="input format (default: from the extension; .jsonl/.json, .conll/.tsv/.bio, else text)",
    )
    parser.add_argument(
        "--output-format",
        choices=("jsonl", "conll"),
        default=None,
        help="output format (default: from the extension; .txt means conll for CoNLL input)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="windows (or rows of packed windows) per forward pass"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16", "int8"), default="auto")
    parser.add_argument(
        "--token-column",
        type=int,
        default=None,
        help="CoNLL input: the column of the word (default: the training recipe's data.token_column)",
    )
    parser.add_argument(
        "--comment-prefix",
        default=None,
        help="CoNLL input: lines starting with it are comments, copied to CoNLL output unchanged "
        "(default: the training recipe's data.comment_prefix)",
    )
    parser.add_argument(
        "--encoding", default="utf-8", help="text and CoNLL input: the file's encoding, e.g. latin-1 (output is UTF-8)"
    )
    parser.add_argument(
        "--documents",
        action="store_true",
        help="text input: lines are sentences, blank lines separate documents (document context "
        "for models trained with context_size)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted --output: keep its complete records (a partly written last "
        "one is cut off) and predict the rest of the input (default: overwrite --output)",
    )
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="TYPE=SCORE",
        help="drop entities of TYPE scored below SCORE (0-1; repeatable, e.g. --threshold PER=0.6)",
    )
    args = parser.parse_args(argv)
    from nertune.inference.files import run_prediction

    run_prediction(
        args.model_dir,
        args.input,
        args.output,
        input_format=args.format,
        output_format=args.output_format,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        documents=args.documents,
        token_column=args.token_column,
        comment_prefix=args.comment_prefix,
        encoding=args.encoding,
        resume=args.resume,
        thresholds=args.threshold,
    )
    return 0


def serve_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="nertune serve",
        description="Serve a trained model over HTTP: "
        'POST /predict {"text": ...} or {"texts": [...]}, GET /health, GET /info, '
        "GET /metrics (Prometheus). Concurrent requests are batched into one model call.",
    )
    parser.add_argument("model_dir", help=MODEL_HELP)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-batch", type=int, default=32, help="most texts in one request (else 413)")
    parser.add_argument("--max-chars", type=int, default=10000, help="longest text in characters (else 413)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="windows per forward pass; windows of concurrent requests are packed several to a row of "
        "max_length sub-tokens, so one pass holds this many rows",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16", "int8"), default="auto")
    parser.add_argument(
        "--max-batch-sentences",
        type=int,
        default=64,
        help="most sentences of concurrent requests gathered into one model call",
    )
    parser.add_argument(
        "--max-wait-ms", type=float, default=2.0, help="longest wait for more requests before a model call"
    )
    parser.add_argument(
        "--max-queue-sentences",
        type=int,
        default=1024,
        help="most sentences waiting for the model; beyond, 503 with Retry-After",
    )
    parser.add_argument(
        "--api-key-file",
        default=None,
        help="file holding the API key (default: $NERTUNE_API_KEY; neither: no key). Every "
        "endpoint but /health then needs 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="log a line per request (off by default: it costs the event loop time, and /metrics already "
        "counts requests by endpoint, status and latency)",
    )
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="TYPE=SCORE",
        help="drop entities of TYPE scored below SCORE (0-1; repeatable, e.g. --threshold PER=0.6)",
    )
    args = parser.parse_args(argv)
    try:
        from nertune.serving.app import run_server
    except ModuleNotFoundError as e:  # fastapi and uvicorn are the optional `serve` extra
        if e.name not in ("fastapi", "uvicorn", "starlette", "pydantic", "prometheus_client"):
            raise
        raise MissingDependencyError(f"nertune serve needs {e.name}: pip install 'nertune[serve]'") from None

    run_server(
        args.model_dir,
        host=args.host,
        port=args.port,
        max_batch=args.max_batch,
        max_chars=args.max_chars,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        max_batch_sentences=args.max_batch_sentences,
        max_wait_ms=args.max_wait_ms,
        max_queue_sentences=args.max_queue_sentences,
        api_key_file=args.api_key_file,
        access_log=args.access_log,
        thresholds=args.threshold,
    )
    return 0


def hpo_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="nertune hpo",
        description="Search the recipe's `hpo` space with optuna "
        "(objective: validation entity F1); writes <output_dir>/hpo/trials.csv and "
        "best_recipe.yaml.",
    )
    parser.add_argument("recipe", help="recipe YAML file with an `hpo` section")
    parser.add_argument(
        "overrides", nargs="*", help="key=value overrides (hpo.n_trials=10, hpo.storage=sqlite:///hpo.db)"
    )
    args = parser.parse_args(argv)
    from nertune.recipe.schema import load_recipe
    from nertune.training.hpo import run_hpo

    run_hpo(load_recipe(args.recipe, args.overrides))
    return 0


def push_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="nertune push", description="Push a finished run directory to the Hub.")
    parser.add_argument("run_dir", help="a run directory written by `nertune train`")
    parser.add_argument("--repo-id", required=True, help="owner/name on the Hugging Face Hub")
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args(argv)
    from nertune.hub.push import push_run

    print(push_run(args.run_dir, args.repo_id, private=args.private))
    return 0


def export_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="nertune export",
        description="Export a run dir to ONNX: a run dir whose weights are model.onnx, "
        "which `nertune predict` and `nertune serve` run with ONNX Runtime. Checks entities and logits against "
        "PyTorch on the run's test split (else built-in sentences) and writes DIR/export_report.json.",
    )
    parser.add_argument("run_dir", help="a run directory written by `nertune train` (a LoRA adapter dir is merged)")
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="export format")
    parser.add_argument("--output", required=True, help="the new directory to write")
    parser.add_argument(
        "--quantize",
        choices=("int8",),
        default=None,
        help="dynamic int8 quantization (ONNX Runtime): smaller and faster on CPUs; the report "
        "says how many sentences changed",
    )
    parser.add_argument("--parity-sentences", type=int, default=1000, help="most test sentences the parity check reads")
    args = parser.parse_args(argv)
    from nertune.inference.export import export_run, format_report

    report = export_run(
        args.run_dir,
        args.output,
        export_format=args.format,
        quantize=args.quantize,
        max_parity_sentences=args.parity_sentences,
    )
    print(format_report(report))
    return 0


def select_main(argv: list[str]) -> int:
    from nertune.inference.select import MEASURES, STRATEGIES, UNITS

    parser = argparse.ArgumentParser(
        prog="nertune select",
        description="Choose what to annotate next: score every record of an unlabelled pool (text, JSONL or "
        "CoNLL, as for predict) with the model and write the --count most informative as JSONL, with the "
        "model's entities as pre-annotations and a score.",
        epilog="Every record's score is kept in <output stem>.scored.jsonl beside --output; --resume continues "
        "an interrupted scoring.",
    )
    parser.add_argument("model_dir", help=MODEL_HELP)
    parser.add_argument("--pool", required=True, help="the unlabelled records to choose from")
    parser.add_argument("--count", type=int, required=True, help="how many records to select")
    parser.add_argument("--output", required=True, help="where to write the selected records (JSONL)")
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="uncertainty",
        help="uncertainty: the least sure sentences; random: a seeded draw (the control); diverse: uncertainty "
        "without near-duplicates (default: uncertainty)",
    )
    parser.add_argument(
        "--measure",
        choices=MEASURES,
        default="least-confidence",
        help="the per-word uncertainty, averaged per sentence",
    )
    parser.add_argument(
        "--unit",
        choices=UNITS,
        default="sentence",
        help="document: select --count whole documents (CoNLL -DOCSTART-, JSONL document_id, text --documents)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the random strategy's seed")
    parser.add_argument(
        "--max-similarity",
        type=float,
        default=0.7,
        help="diverse: skip a record whose character 3-gram Jaccard similarity with a selected one is this or more",
    )
    parser.add_argument(
        "--format", choices=("text", "jsonl", "conll"), default=None, help="pool format (default: guessed)"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--documents", action="store_true", help="text pool: blank lines separate documents")
    parser.add_argument("--encoding", default="utf-8", help="text and CoNLL pools: the file's encoding")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted scoring of the pool")
    args = parser.parse_args(argv)
    from nertune.inference.select import select_examples

    select_examples(
        args.model_dir,
        args.pool,
        args.output,
        args.count,
        strategy=args.strategy,
        measure=args.measure,
        seed=args.seed,
        max_similarity=args.max_similarity,
        resume=args.resume,
        unit=args.unit,
        input_format=args.format,
        batch_size=args.batch_size,
        device=args.device,
        documents=args.documents,
        encoding=args.encoding,
    )
    return 0


COMMANDS = {
    "train": train_main,
    "evaluate": evaluate_main,
    "predict": predict_main,
    "serve": serve_main,
    "push": push_main,
    "hpo": hpo_main,
    "export": export_main,
    "select": select_main,
}


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit codes: 0 done, 2 bad input (a NertuneError, or bad arguments: one `error:` line),
    1 a bug (anything else: the traceback is printed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        names = "|".join(COMMANDS)
        print(
            f"usage: nertune {{{names}}} ...",
            file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout,
        )
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    _setup_logging()
    try:
        return COMMANDS[argv[0]](argv[1:])
    except NertuneError as e:  # bad input: one clear line, no traceback
        logging.getLogger("nertune").error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception:  # a bug: the traceback is what its report needs
        traceback.print_exc()
        print(
            "error: an unexpected error (a bug in nertune or a library it uses); the traceback is above",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
