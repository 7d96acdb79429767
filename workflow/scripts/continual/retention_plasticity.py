# rule retention_plasticity (workflow/rules/continual.smk) -> optbias.continual.figures.retention_plasticity
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.continual.figures import retention_plasticity
    from optbias.fileio import load_json

    summaries = {b: load_json(path) for b, path in zip(snakemake.params.benchmarks, snakemake.input.summaries)}
    knobs = load_json(snakemake.input.knobs)["knobs"] if snakemake.input.get("knobs") else {}
    retention_plasticity(summaries, knobs, snakemake.params.order, snakemake.output, snakemake.params.title)
