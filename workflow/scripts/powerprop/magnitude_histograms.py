# rule magnitude_histograms (workflow/rules/powerprop.smk) -> optbias.powerprop.figures.magnitude_histograms
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.fileio import load_jsons
    from optbias.powerprop.figures import magnitude_histograms

    magnitude_histograms(load_jsons(snakemake.input.results), snakemake.params.order, snakemake.output, snakemake.params.title)
