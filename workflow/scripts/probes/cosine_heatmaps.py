# rule cosine_heatmaps (workflow/rules/probes.smk) -> optbias.probes.figures.cosine_heatmaps
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.fileio import load_jsons
    from optbias.probes.figures import cosine_heatmaps

    cosine_heatmaps(load_jsons(snakemake.input.probes), snakemake.params.order, snakemake.output, snakemake.params.title)
