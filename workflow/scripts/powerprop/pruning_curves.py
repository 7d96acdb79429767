# rule pruning_curves (workflow/rules/powerprop.smk) -> optbias.powerprop.figures.pruning_curves
from optbias.fileio import load_jsons
from optbias.job import job
from optbias.powerprop.figures import pruning_curves

with job(snakemake):
    pruning_curves(load_jsons(snakemake.input.results), snakemake.params.order, snakemake.output, snakemake.params.title)
