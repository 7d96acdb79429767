# rule shampoo_ablation (workflow/rules/continual.smk) -> optbias.continual.figures.shampoo_ablation
from optbias.continual.figures import shampoo_ablation
from optbias.fileio import load_json
from optbias.job import job

with job(snakemake):
    shampoo_ablation(load_json(snakemake.input.summary), snakemake.output, snakemake.params.title)
