# rule budget_select (workflow/rules/continual.smk) -> optbias.continual.budget.select_budget
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.continual.budget import describe_selection, select_budget
    from optbias.fileio import atomic_write_json, load_jsons

    p = snakemake.params
    selection = select_budget(load_jsons(snakemake.input.metrics), p.criteria, p.config_epochs, p.order)
    atomic_write_json(snakemake.output[0], selection)
    print("\n".join(describe_selection(selection)))
