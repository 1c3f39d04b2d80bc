"""nertune: fine-tune BERT-family encoders for named-entity recognition."""

__version__ = "0.1.0"
