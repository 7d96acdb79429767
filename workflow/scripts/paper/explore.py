# rule explore (workflow/rules/paper.smk) -> optbias.paper.explore.execute
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    import os

    from optbias.paper.explore import execute

    execute(snakemake.input.notebook, snakemake.output.ipynb, snakemake.output.html, snakemake.params.parameters,
            cwd=os.getcwd())
