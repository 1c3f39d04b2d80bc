"""Using a trained model: `NerPredictor` (one `predict` entry point), its backends (PyTorch, ONNX Runtime),
file prediction (streamed, resumable, sharded over processes) and export.

May import: foundations, `nertune.data`, `nertune.recipe`, `nertune.heads`, `nertune.model`. Nothing about
training, HTTP or publishing.
"""
