# rule summarize_budget (workflow/rules/continual.smk) -> optbias.continual.budget.summarize_budget
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.continual.budget import summarize_budget
    from optbias.fileio import atomic_write_json, load_json, load_jsons

    summary = summarize_budget(load_jsons(snakemake.input.metrics), snakemake.params.order,
                               load_json(snakemake.input.selected))
    atomic_write_json(snakemake.output[0], summary)
