"""Training: the run from recipe to model dir (`run.py`), the Trainer subclass with the head's loss and
samplers (`trainer.py`), the word-embedding gradient kept in one buffer (`embedding_grad.py`), continued
fine-tuning and hyperparameter search.

May import: every lower layer (foundations, data, recipe, heads, model, inference, evaluation, hub). Never
serving, the CLI or the API.
"""
