# rule solution_distance (workflow/rules/probes.smk) -> optbias.probes.distance.solution_distances
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.fileio import atomic_write_json, load_jsons
    from optbias.probes.distance import describe, solution_distances

    result = solution_distances(load_jsons(snakemake.input.metrics), snakemake.input.checkpoints, snakemake.input.data,
                                snakemake.params.order, snakemake.params.controls, snakemake.params.settings)
    atomic_write_json(snakemake.output[0], result)
    print("\n".join(describe(result)))
