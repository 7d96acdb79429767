# rule summarize_ablation (workflow/rules/continual.smk) -> optbias.continual.summary.summarize_by_benchmark
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.continual.summary import ablation_table, summarize_by_benchmark
    from optbias.fileio import atomic_write_bytes, atomic_write_json, load_jsons

    result = summarize_by_benchmark(load_jsons(snakemake.input.metrics), snakemake.params.order)
    atomic_write_json(snakemake.output.json, result)
    atomic_write_bytes(snakemake.output.table, ablation_table(result).encode())
