# rule sweep_select (workflow/rules/continual.smk) -> optbias.continual.sweep.select
from optbias.continual.sweep import select
from optbias.fileio import atomic_write_json, load_jsons
from optbias.job import job

with job(snakemake):
    atomic_write_json(snakemake.output[0], select(load_jsons(snakemake.input.metrics), snakemake.params.config_lrs))
