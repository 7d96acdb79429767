# rule paper_figure (workflow/rules/probes.smk) -> optbias.probes.figures.paper_figure
from optbias.fileio import load_jsons
from optbias.job import job
from optbias.probes.figures import paper_figure

with job(snakemake):
    paper_figure(load_jsons(snakemake.input.probes), load_jsons(snakemake.input.metrics), snakemake.params.order,
                 snakemake.output, snakemake.params.title)
