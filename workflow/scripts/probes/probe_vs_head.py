# rule probe_vs_head (workflow/rules/probes.smk) -> optbias.probes.figures.probe_vs_head
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.fileio import load_jsons
    from optbias.probes.figures import probe_vs_head

    probe_vs_head(load_jsons(snakemake.input.probes), snakemake.params.order, snakemake.output, snakemake.params.title)
