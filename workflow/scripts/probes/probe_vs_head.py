# rule probe_vs_head (workflow/rules/probes.smk) -> optbias.probes.figures.probe_vs_head
from optbias.fileio import load_jsons
from optbias.job import job
from optbias.probes.figures import probe_vs_head

with job(snakemake):
    probe_vs_head(load_jsons(snakemake.input.probes), snakemake.params.order, snakemake.output, snakemake.params.title)
