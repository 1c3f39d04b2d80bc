"""`nertune serve`: the HTTP app (`app.py`), the dynamic batcher that groups requests into model calls
(`batcher.py`) and reading a request body (`request.py`).

May import: foundations, `nertune.data`, `nertune.model`, `nertune.inference`. Never training or publishing.
"""
