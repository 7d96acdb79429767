# rule lr_sweep (workflow/rules/continual.smk) -> optbias.continual.figures.lr_sweep
from optbias.continual.figures import lr_sweep
from optbias.fileio import load_json
from optbias.job import job

with job(snakemake):
    lr_sweep(load_json(snakemake.input.selected), snakemake.output, snakemake.params.title)
