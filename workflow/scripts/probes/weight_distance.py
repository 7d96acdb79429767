# rule weight_distance (workflow/rules/probes.smk) -> optbias.probes.weights.weight_distances
from optbias.fileio import atomic_write_json, load_jsons
from optbias.job import job
from optbias.probes.weights import weight_distances

with job(snakemake):
    result = weight_distances(load_jsons(snakemake.input.metrics), snakemake.input.checkpoints, snakemake.params.order)
    atomic_write_json(snakemake.output[0], result)
