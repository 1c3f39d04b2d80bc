"""The model: references to a model (`pkg://`, local dir, Hub id), loading it for training or inference
(tokenizer, labels, precision, LoRA adapters), the run dir it is saved as, and packing windows into forward
passes (shared by training and inference).

May import: foundations, `nertune.data`, `nertune.recipe`, `nertune.heads`. Nothing about files to predict,
HTTP, training loops or publishing.
"""
