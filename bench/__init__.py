"""The benchmark harness of `make bench` (scripts/bench.py): outside the installed package, never imported by
nertune or its tests."""
