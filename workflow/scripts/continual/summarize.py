# rule summarize (workflow/rules/continual.smk) -> optbias.continual.summary.summarize_runs
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.continual.summary import summarize_runs
    from optbias.fileio import atomic_write_json, load_jsons

    atomic_write_json(snakemake.output[0], summarize_runs(load_jsons(snakemake.input.metrics), snakemake.params.order))
