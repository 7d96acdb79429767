# rule cosine_heatmaps (workflow/rules/probes.smk) -> optbias.probes.figures.cosine_heatmaps
from optbias.fileio import load_jsons
from optbias.job import job
from optbias.probes.figures import cosine_heatmaps

with job(snakemake):
    cosine_heatmaps(load_jsons(snakemake.input.probes), snakemake.params.order, snakemake.output, snakemake.params.title)
