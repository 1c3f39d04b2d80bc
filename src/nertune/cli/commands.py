"""The commands of `nertune`: for each, the arguments it takes (`*_arguments(parser)`) and what it runs."""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable

from nertune.errors import MissingDependencyError

MODEL_HELP = (
    "a run directory written by `nertune train`, or a Hub id owner/name[@revision] "
    "(through the Hugging Face cache; offline with HF_HUB_OFFLINE=1)"
)
OVERRIDES_HELP = "key=value recipe overrides, dotted for nesting (data.train_file=...); see `nertune recipes --keys`"


class _Option(argparse.Action):
    """Stores an option's value; its old names (`deprecated`) still work for one release, with a warning."""

    def __init__(self, option_strings: list[str], dest: str, deprecated: tuple[str, ...] = (), **kwargs) -> None:
        self.deprecated = deprecated
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if option_string in self.deprecated:
            warnings.warn(f"{option_string} is deprecated; use {self.option_strings[0]}", FutureWarning, stacklevel=2)
        setattr(namespace, self.dest, values)


def _renamed(parser: argparse.ArgumentParser, new: str, old: str, help: str, **kwargs) -> None:
    parser.add_argument(new, old, action=_Option, deprecated=(old,), help=f"{help} ({old}: deprecated name)", **kwargs)


# ----------------------------------------------------------------------------------------------- train, hpo


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe YAML file (`nertune recipes` lists the shipped ones)")
    parser.add_argument("overrides", nargs="*", help=OVERRIDES_HELP)
    parser.add_argument(
        "--print-recipe", action="store_true", help="print the resolved recipe as YAML and exit (trains nothing)"
    )


def _train(args: argparse.Namespace) -> int:
    from nertune.recipe.schema import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    if args.print_recipe:
        import yaml

        from nertune.recipe.schema import recipe_to_dict

        print(yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False, allow_unicode=True), end="")
        return 0
    from nertune.training.run import run_training

    run_training(recipe)
    return 0


def _hpo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe YAML file with an `hpo` section")
    parser.add_argument("overrides", nargs="*", help=f"{OVERRIDES_HELP}; hpo.n_trials=10, hpo.storage=sqlite:///hpo.db")


def _hpo(args: argparse.Namespace) -> int:
    from nertune.recipe.schema import load_recipe
    from nertune.training.hpo import run_hpo

    run_hpo(load_recipe(args.recipe, args.overrides))
    return 0


# ----------------------------------------------------------------------------------------------- evaluate


def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", help=MODEL_HELP)
    parser.add_argument("overrides", nargs="*", help=f"{OVERRIDES_HELP}; e.g. data.test_file=other.conll")
    parser.add_argument("--split", choices=("train", "validation", "test"), default="test", help="the split scored")
    parser.add_argument("--name", default=None, help="output folder under MODEL_DIR/eval/ (default: from the data)")
    parser.add_argument(
        "--bootstrap", type=int, default=1000, help="sentence-bootstrap resamples of the F1 95%% CI (0: none)"
    )
    parser.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap resamples")


def _evaluate(args: argparse.Namespace) -> int:
    from nertune.evaluation.run import run_evaluation

    run_evaluation(
        args.model_dir,
        args.overrides,
        split=args.split,
        name=args.name,
        bootstrap=args.bootstrap,
        bootstrap_seed=args.bootstrap_seed,
    )
    return 0


# ----------------------------------------------------------------------------------------------- predict


def _predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "text: one text per line (--documents: one sentence per line, blank lines between documents). "
        'JSONL: {"text": ...} or {"tokens": [...]} per line, optional "id" and "document_id". '
        "CoNLL: the first column is the word, -DOCSTART- lines start documents; CoNLL output repeats each "
        "line with the predicted tag appended. The input is streamed and results are written as they come; "
        "under `accelerate launch --num_processes N -m nertune.cli predict ...` N processes share the work."
    )
    parser.add_argument("model_dir", help=MODEL_HELP)
    parser.add_argument("--input", required=True, help="file to tag")
    parser.add_argument("--output", required=True, help="where to write the predictions")
    parser.add_argument(
        "--format",
        choices=("text", "jsonl", "conll"),
        default=None,
        help="input format (default: by extension, .json/.jsonl as jsonl, .conll/.tsv/.bio/.iob/.iob2/.bioes/.bmes "
        "as conll; any other name, .txt included, by its content; the choice is logged)",
    )
    parser.add_argument(
        "--output-format",
        choices=("jsonl", "conll"),
        default=None,
        help="output format (default: from the extension; .txt means conll for CoNLL input)",
    )
    _renamed(parser, "--rows-per-pass", "--batch-size", "rows of packed windows per pass", type=int, default=32)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument(
        "--precision", choices=("auto", "fp32", "bf16", "fp16", "int8"), default="auto", help=PRECISION_HELP
    )
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
    _threshold_argument(parser)


def _threshold_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="TYPE=SCORE",
        help="drop entities of TYPE scored below SCORE (0-1; repeatable, e.g. --threshold PER=0.6)",
    )


def _predict(args: argparse.Namespace) -> int:
    from nertune.inference.files import run_prediction

    run_prediction(
        args.model_dir,
        args.input,
        args.output,
        input_format=args.format,
        output_format=args.output_format,
        batch_size=args.rows_per_pass,
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


# ----------------------------------------------------------------------------------------------- serve

PRECISION_HELP = "weights and compute: auto (bf16/fp16 where the GPU has it, else fp32), or int8 on CPU"


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        'Serve a trained model over HTTP: POST /predict {"text": ...} or {"texts": [...]}, GET /health, GET /info, '
        "GET /metrics (Prometheus). Concurrent requests are batched into one model call. SIGHUP or "
        "POST /admin/reload loads the model again (a 'current' symlink resolved anew) without dropping a request."
    )
    parser.add_argument("model_dir", help=MODEL_HELP)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    _renamed(
        parser, "--max-texts-per-request", "--max-batch", "most texts in one request (else 413)", type=int, default=32
    )
    parser.add_argument("--max-chars", type=int, default=10000, help="longest text in characters (else 413)")
    _renamed(
        parser,
        "--rows-per-pass",
        "--batch-size",
        "rows per forward pass; windows of concurrent requests are packed several to a row of max_length sub-tokens",
        type=int,
        default=32,
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument(
        "--precision", choices=("auto", "fp32", "bf16", "fp16", "int8"), default="auto", help=PRECISION_HELP
    )
    _renamed(
        parser,
        "--max-sentences-per-call",
        "--max-batch-sentences",
        "most sentences of concurrent requests gathered into one model call",
        type=int,
        default=64,
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
        "--admin-key-file",
        default=None,
        help="file holding the key of POST /admin/reload (default: the API key; neither: the endpoint answers "
        "403). SIGHUP reloads MODEL_DIR, resolved again, either way",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="log a line per request (off by default: it costs the event loop time, and /metrics already "
        "counts requests by endpoint, status and latency)",
    )
    _threshold_argument(parser)


def _serve(args: argparse.Namespace) -> int:
    try:
        from nertune.serving.app import run_server
    except ModuleNotFoundError as e:  # starlette and uvicorn are the optional `serve` extra
        if e.name not in ("uvicorn", "starlette", "pydantic", "prometheus_client"):
            raise
        raise MissingDependencyError(f"nertune serve needs {e.name}: pip install 'nertune[serve]'") from None

    run_server(
        args.model_dir,
        host=args.host,
        port=args.port,
        max_batch=args.max_texts_per_request,
        max_chars=args.max_chars,
        batch_size=args.rows_per_pass,
        device=args.device,
        precision=args.precision,
        max_batch_sentences=args.max_sentences_per_call,
        max_wait_ms=args.max_wait_ms,
        max_queue_sentences=args.max_queue_sentences,
        api_key_file=args.api_key_file,
        access_log=args.access_log,
        admin_key_file=args.admin_key_file,
        thresholds=args.threshold,
    )
    return 0


# ----------------------------------------------------------------------------------------------- push, export


def _push_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory written by `nertune train`")
    parser.add_argument("--repo-id", required=True, help="owner/name on the Hugging Face Hub")
    parser.add_argument("--private", action="store_true", help="create the Hub repository private")


def _push(args: argparse.Namespace) -> int:
    from nertune.hub.push import push_run

    print(push_run(args.run_dir, args.repo_id, private=args.private))
    return 0


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Export a run dir to ONNX: a run dir whose weights are model.onnx, which `nertune predict` and "
        "`nertune serve` run with ONNX Runtime. Checks entities and logits against PyTorch on the run's test "
        "split (else built-in sentences) and writes DIR/export_report.json."
    )
    parser.add_argument("run_dir", help="a run directory written by `nertune train` (a LoRA adapter dir is merged)")
    _renamed(parser, "--export-format", "--format", "export format", choices=("onnx",), default="onnx")
    parser.add_argument("--output", required=True, help="the new directory to write")
    parser.add_argument(
        "--quantize",
        choices=("int8",),
        default=None,
        help="dynamic int8 quantization (ONNX Runtime): smaller and faster on CPUs; the report "
        "says how many sentences changed",
    )
    parser.add_argument("--parity-sentences", type=int, default=1000, help="most test sentences the parity check reads")


def _export(args: argparse.Namespace) -> int:
    from nertune.inference.export import export_run, format_report

    report = export_run(
        args.run_dir,
        args.output,
        export_format=args.export_format,
        quantize=args.quantize,
        max_parity_sentences=args.parity_sentences,
    )
    print(format_report(report))
    return 0


# ----------------------------------------------------------------------------------------------- recipes


def _recipes_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keys", action="store_true", help="print every recipe key: type, default, description")
    commands = parser.add_subparsers(dest="recipes_command", metavar="cp")
    copy = commands.add_parser("cp", help="copy a shipped recipe to edit", description="Copy a shipped recipe.")
    copy.add_argument("name", help="a recipe name from `nertune recipes` (with or without .yaml)")
    copy.add_argument("dest", help="the file (or directory) to write")


def _recipes(args: argparse.Namespace) -> int:
    if args.keys:
        from nertune.recipe import recipe_key_reference

        print(recipe_key_reference(), end="")
        return 0
    from nertune.recipe.catalog import copy_recipe, describe, shipped_recipes

    if args.recipes_command == "cp":
        print(f"{args.name} -> {copy_recipe(args.name, args.dest)}")
        return 0
    shipped = shipped_recipes()
    width = max((len(name) for name in shipped), default=0)
    for name, path in shipped.items():
        print(f"{name:<{width}}  {describe(path)}")
    return 0


Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
COMMANDS: dict[str, Command] = {
    "train": ("fine-tune a token-classification model from a recipe", _train_arguments, _train),
    "evaluate": (
        "score a trained model on a split or file; writes MODEL_DIR/eval/<name>/",
        _evaluate_arguments,
        _evaluate,
    ),
    "predict": ("tag a text, JSONL or CoNLL file with a trained model", _predict_arguments, _predict),
    "serve": ("serve a trained model over HTTP", _serve_arguments, _serve),
    "push": ("push a finished run directory to the Hugging Face Hub", _push_arguments, _push),
    "hpo": ("search the recipe's `hpo` space with optuna (objective: validation entity F1)", _hpo_arguments, _hpo),
    "export": ("export a run directory to ONNX, with a parity report", _export_arguments, _export),
    "recipes": (
        "list the shipped recipes, copy one (`cp NAME DEST`), or list every recipe key (--keys)",
        _recipes_arguments,
        _recipes,
    ),
}
