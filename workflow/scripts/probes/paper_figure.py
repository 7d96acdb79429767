# rule paper_figure (workflow/rules/probes.smk) -> optbias.probes.figures.paper_figure
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.fileio import load_jsons
    from optbias.probes.figures import paper_figure

    paper_figure(load_jsons(snakemake.input.probes), load_jsons(snakemake.input.metrics), snakemake.params.order,
                 snakemake.output, snakemake.params.title)
