# rule weight_distance (workflow/rules/probes.smk) -> optbias.probes.weights.weight_distances
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.fileio import atomic_write_json, load_jsons
    from optbias.probes.weights import describe, weight_distances

    result = weight_distances(load_jsons(snakemake.input.metrics), snakemake.input.checkpoints, snakemake.params.order)
    atomic_write_json(snakemake.output[0], result)
    print("\n".join(describe(result)))
