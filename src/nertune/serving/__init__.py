"""`nertune serve`: the HTTP app (`app.py`), its keys and metrics (`middleware.py`), the dynamic batcher that
groups requests into model calls (`batcher.py`), hot reload of the model (`reload.py`) and reading a request
body (`request.py`).

May import: foundations, `nertune.data`, `nertune.model`, `nertune.inference`. Never training or publishing.
"""
