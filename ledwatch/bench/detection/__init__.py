"""`ledwatch bench detection`: a labelled fleet month (generator.py), replayed through
`ledwatch replay` and scored (scorer.py) by the runner (runner.py).
See docs/detection-bench.md."""
