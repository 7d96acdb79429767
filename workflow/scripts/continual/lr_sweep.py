# rule lr_sweep (workflow/rules/continual.smk) -> optbias.continual.figures.lr_sweep
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.continual.figures import lr_sweep
    from optbias.fileio import load_json

    lr_sweep(load_json(snakemake.input.selected), snakemake.output, snakemake.params.title)
