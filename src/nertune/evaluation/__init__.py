"""Scoring: entity- and token-level metrics, the error analysis, bootstrap intervals, plots and reports, and
`nertune evaluate` on a model dir or Hub id.

May import: foundations, `nertune.data`, `nertune.recipe`, `nertune.heads`, `nertune.model`,
`nertune.inference`. Never training (training imports this package to score its splits).
"""
