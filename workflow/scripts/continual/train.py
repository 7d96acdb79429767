# rules train, train_ablation and sweep_train (workflow/rules/continual.smk) -> optbias.continual.train.train_runs
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.continual.train import train_runs

    train_runs(snakemake.params.specs, snakemake.input.data, snakemake.output.metrics,
               snakemake.output.get("checkpoints"))
