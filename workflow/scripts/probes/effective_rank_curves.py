# rule effective_rank_curves (workflow/rules/probes.smk) -> optbias.probes.figures.effective_rank_curves
from optbias.fileio import load_jsons
from optbias.job import job
from optbias.probes.figures import effective_rank_curves

with job(snakemake):
    effective_rank_curves(load_jsons(snakemake.input.probes), snakemake.params.order, snakemake.output, snakemake.params.title)
