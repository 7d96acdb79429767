"""Continual learning (rule file workflow/rules/continual.smk): benchmarks and their tasks, training
runs that fill the accuracy matrix R, the metrics of R, the learning-rate sweep, the summaries and
their figures."""
