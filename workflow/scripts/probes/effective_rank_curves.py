# rule effective_rank_curves (workflow/rules/probes.smk) -> optbias.probes.figures.effective_rank_curves
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.fileio import load_jsons
    from optbias.probes.figures import effective_rank_curves

    effective_rank_curves(load_jsons(snakemake.input.probes), snakemake.params.order, snakemake.output, snakemake.params.title)
