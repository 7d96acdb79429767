# rule summarize_probes (workflow/rules/probes.smk) -> optbias.probes.summary.summarize_probes
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.fileio import atomic_write_json, load_jsons
    from optbias.probes.summary import summarize_probes

    atomic_write_json(snakemake.output[0], summarize_probes(load_jsons(snakemake.input.probes), snakemake.params.order))
