"""Probes (rule file workflow/rules/probes.smk): what the trained checkpoints hold. Representation
measures (effective rank, srank, cross-class cosine, linear probes), weight distances between
optimizers, their summaries and figures. Reads checkpoints, never trains."""
