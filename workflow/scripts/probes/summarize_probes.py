# rule summarize_probes (workflow/rules/probes.smk) -> optbias.probes.summary.summarize_probes
from optbias.fileio import atomic_write_json, load_jsons
from optbias.job import job
from optbias.probes.summary import summarize_probes

with job(snakemake):
    atomic_write_json(snakemake.output[0], summarize_probes(load_jsons(snakemake.input.probes), snakemake.params.order))
