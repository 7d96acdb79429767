# rule magnitude_histograms (workflow/rules/powerprop.smk) -> optbias.powerprop.figures.magnitude_histograms
from optbias.fileio import load_jsons
from optbias.job import job
from optbias.powerprop.figures import magnitude_histograms

with job(snakemake):
    magnitude_histograms(load_jsons(snakemake.input.results), snakemake.params.order, snakemake.output, snakemake.params.title)
