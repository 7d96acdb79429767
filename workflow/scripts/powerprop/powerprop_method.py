# rule powerprop_method (workflow/rules/powerprop.smk) -> optbias.powerprop.runs.run_method
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.powerprop.runs import run_method

    run_method(**snakemake.params.spec, dataset_path=snakemake.input.data, selected_path=snakemake.output.selected,
               checkpoints=snakemake.output.checkpoints, results_path=snakemake.output.results)
