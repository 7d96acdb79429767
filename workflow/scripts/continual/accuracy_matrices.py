# rule accuracy_matrices (workflow/rules/continual.smk) -> optbias.continual.figures.accuracy_matrices
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.continual.figures import accuracy_matrices
    from optbias.fileio import load_jsons

    accuracy_matrices(load_jsons(snakemake.input.metrics), snakemake.params.order, snakemake.output, snakemake.params.title)
