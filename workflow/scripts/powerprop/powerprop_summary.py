# rule powerprop_summary (workflow/rules/powerprop.smk) -> optbias.powerprop.summary.summarize
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.fileio import atomic_write_json, load_jsons
    from optbias.powerprop.summary import summarize

    summary = summarize(load_jsons(snakemake.input.results), load_jsons(snakemake.input.selected), snakemake.params.order)
    atomic_write_json(snakemake.output[0], summary)
