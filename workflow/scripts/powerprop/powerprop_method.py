# rule powerprop_method (workflow/rules/powerprop.smk) -> optbias.powerprop.runs.run_method
from optbias.job import job
from optbias.powerprop.runs import run_method

with job(snakemake):
    run_method(**snakemake.params.spec, dataset_path=snakemake.input.data, selected_path=snakemake.output.selected,
               checkpoints=snakemake.output.checkpoints, results_path=snakemake.output.results)
