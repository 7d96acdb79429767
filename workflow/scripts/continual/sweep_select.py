# rule sweep_select (workflow/rules/continual.smk) -> optbias.continual.sweep.select
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.continual.sweep import select
    from optbias.fileio import atomic_write_json, load_jsons

    atomic_write_json(snakemake.output[0], select(load_jsons(snakemake.input.metrics), snakemake.params.config_lrs))
