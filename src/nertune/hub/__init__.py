"""Publishing to the Hugging Face Hub: checking access before training, pushing a run dir of any kind, and its
model card. Finding a model by Hub id is `nertune.model.references`, so loading never imports this package.

May import: foundations, `nertune.data`, `nertune.recipe`, `nertune.heads`, `nertune.model`.
"""
