"""The data-loop commands of `nertune`: what to annotate next, annotation-tool round trips and retraining behind
a gate."""

from __future__ import annotations

import argparse

from nertune.cli.commands import MODEL_HELP, OVERRIDES_HELP, Command, _renamed

# `inference.select`'s STRATEGIES, MEASURES, UNITS (importing it here would load torch for `nertune --help`;
# tests/test_select.py checks they agree).
STRATEGIES = ("uncertainty", "random", "diverse")
MEASURES = ("least-confidence", "margin")
UNITS = ("sentence", "document")


def _select_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Choose what to annotate next: score every record of an unlabelled pool (text, JSONL or CoNLL, as for "
        "predict) with the model and write the --count most informative as JSONL, with the model's entities as "
        "pre-annotations and a score (ready for export-annotations)."
    )
    parser.epilog = (
        "Every record's score is kept in <output stem>.scored.jsonl beside --output; --resume continues an "
        "interrupted scoring."
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
        help="document: select --count whole documents (CoNLL -DOCSTART-, JSONL document_id, text --documents); "
        "not with --strategy diverse",
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
    _renamed(parser, "--rows-per-pass", "--batch-size", "rows of packed windows per pass", type=int, default=32)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--documents", action="store_true", help="text pool: blank lines separate documents")
    parser.add_argument("--encoding", default="utf-8", help="text and CoNLL pools: the file's encoding")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted scoring of the pool")


def _select(args: argparse.Namespace) -> int:
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
        batch_size=args.rows_per_pass,
        device=args.device,
        documents=args.documents,
        encoding=args.encoding,
    )
    return 0


def _export_annotations_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Turn predictions (the JSONL of `nertune predict` or `nertune select`) into an annotation tool's import "
        "with the entities as pre-annotations: a Label Studio task list (JSON) or Doccano JSONL. Document and "
        "sentence ids travel with each task; the corrected export reads back as training data "
        "(data.train_file=export.json, or nertune retrain --new export.json)."
    )
    parser.add_argument("predictions", help="predict/select output JSONL (text + entities with character offsets)")
    parser.add_argument("--tool", choices=("label-studio", "doccano"), required=True, help="the annotation tool")
    parser.add_argument("--output", required=True, help="the file to write (.json: Label Studio, .jsonl: Doccano)")
    parser.add_argument("--model-version", default="nertune", help="Label Studio: the predictions' model_version")
    parser.add_argument("--from-name", default="label", help="Label Studio: the name of the config's <Labels> tag")
    parser.add_argument("--to-name", default="text", help="Label Studio: the name of the config's <Text> tag")


def _export_annotations(args: argparse.Namespace) -> int:
    from nertune.data.annotation_export import export_annotations

    n = export_annotations(
        args.predictions,
        args.output,
        args.tool,
        model_version=args.model_version,
        from_name=args.from_name,
        to_name=args.to_name,
    )
    print(f"{n} records -> {args.output}")
    return 0


def _retrain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Continue a run on new data (old data rehearsed), score the candidate and the current model on one fixed "
        "test set, and promote the candidate (PROMOTE_DIR/current -> its dir) only if micro F1 drops by at most "
        "--tolerance points and no entity type by more than --per-type-tolerance. Writes report.md and "
        "comparison.json in the candidate dir either way. Exit 0: promoted, 3: not promoted."
    )
    parser.add_argument("run_dir", help=f"the run to continue (the current model): {MODEL_HELP}")
    parser.add_argument("overrides", nargs="*", help=f"for the candidate (max_steps=200); {OVERRIDES_HELP}")
    parser.add_argument("--new", action="append", required=True, metavar="FILE", help="new training data (repeat)")
    parser.add_argument("--output-dir", default=None, help="the candidate dir (default: RUN-retrain-<time> beside RUN)")
    parser.add_argument("--test-file", default=None, help="the fixed test set (default: the run's test split)")
    parser.add_argument("--tolerance", type=float, default=0.5, help="largest micro F1 drop allowed, in points")
    parser.add_argument("--per-type-tolerance", type=float, default=2.0, help="largest per-type F1 drop, in points")
    parser.add_argument("--promote-dir", default=None, help="where the `current` symlink lives (default: RUN's parent)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the F1 CIs (0: none)")


def _retrain(args: argparse.Namespace) -> int:
    from nertune.training.retrain import run_retrain

    comparison = run_retrain(
        args.run_dir,
        args.new,
        args.overrides,
        output_dir=args.output_dir,
        test_file=args.test_file,
        tolerance=args.tolerance,
        per_type_tolerance=args.per_type_tolerance,
        promote_dir=args.promote_dir,
        bootstrap=args.bootstrap,
    )
    return 0 if comparison["promote"] else 3


LOOP_COMMANDS: dict[str, Command] = {
    "select": (
        "choose the pool records to annotate next (uncertainty, random or diverse), with pre-annotations",
        _select_arguments,
        _select,
    ),
    "export-annotations": (
        "write predictions as Label Studio tasks or Doccano JSONL, for correction",
        _export_annotations_arguments,
        _export_annotations,
    ),
    "retrain": (
        "continue a run on new data and promote it only if it is not worse (a gate)",
        _retrain_arguments,
        _retrain,
    ),
}
