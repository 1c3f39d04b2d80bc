"""Reading NER corpora (CoNLL, JSON/JSONL, Hugging Face Hub) into datasets, validating and splitting them,
and reading `nertune predict` input.

Every training reader returns a `datasets.Dataset` with the columns of the data contract (`contract.py`,
docs/ARCHITECTURE.md). `load_splits` is what training calls: it reads the recipe's `data` section, carves
missing splits out of train, converts the tags to the training scheme and checks labels across splits.
`read_prediction_input` reads predict input. A file's format comes from one rule (`formats.py`).
Every `DataError` names the file and 1-based line (when there is one) and the offending value.

May import: `nertune.errors`, `nertune.assets`, `nertune.schemes`. Nothing that knows about models, recipes as
a whole, or training: the readers take the recipe's `data` section as plain attributes.
"""

from nertune.data.conll import DOCSTART, ConllRow, ConllSentence, iter_conll_records, parse_conll, read_conll
from nertune.data.contract import FEATURES, TAG_FIELDS
from nertune.data.errors import DataError
from nertune.data.formats import (
    CONLL_EXTENSIONS,
    JSON_EXTENSIONS,
    FileFormat,
    detect_format,
    format_from_extension,
    read_split_file,
    sniff_format,
)
from nertune.data.hub import SPLIT_ALIASES, load_hub_dataset
from nertune.data.json_records import SPAN_FIELDS, iter_json_lines, iter_jsonl_records, read_json
from nertune.data.labels import apply_label_map, rename_entity_types
from nertune.data.language import detect_language
from nertune.data.lines import check_encoding, raw_lines, read_lines, split_columns
from nertune.data.prediction_input import (
    PREDICTION_INPUT_FORMATS,
    iter_prediction_input,
    prediction_input_format,
    read_prediction_input,
)
from nertune.data.records import ConllLayout, InputRecord, iter_input_lines, iter_text_records
from nertune.data.splits import check_labels, load_split, load_splits, split_dataset, validate_splits

__all__ = [
    "DataError",
    "FEATURES",
    "read_conll",
    "read_json",
    "load_hub_dataset",
    "read_split_file",
    "split_dataset",
    "validate_splits",
    "check_labels",
    "load_splits",
    "load_split",
    "apply_label_map",
    "rename_entity_types",
    "check_encoding",
    "raw_lines",
    "read_lines",
    "split_columns",
    "CONLL_EXTENSIONS",
    "JSON_EXTENSIONS",
    "TAG_FIELDS",
    "SPAN_FIELDS",
    "SPLIT_ALIASES",
    "DOCSTART",
    "ConllRow",
    "ConllSentence",
    "parse_conll",
    "FileFormat",
    "detect_format",
    "format_from_extension",
    "sniff_format",
    "iter_json_lines",
    "PREDICTION_INPUT_FORMATS",
    "prediction_input_format",
    "read_prediction_input",
    "ConllLayout",
    "InputRecord",
    "detect_language",
    "iter_conll_records",
    "iter_jsonl_records",
    "iter_prediction_input",
    "iter_input_lines",
    "iter_text_records",
]
