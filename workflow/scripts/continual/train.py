# rules train, train_ablation, sweep_train, budget_validation and budget_train
# (workflow/rules/continual.smk) -> optbias.continual.train.train_runs
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.continual.train import train_runs

    # params.specs holds every seed's run, whatever the job granularity, so that switching
    # `seed_jobs` reruns nothing; a job of one seed (seed_jobs: separate) trains its own.
    specs = snakemake.params.specs
    if "seed" in snakemake.wildcards.keys():
        specs = [spec for spec in specs if spec["seed"] == int(snakemake.wildcards.seed)]
        assert len(specs) == 1, f"seed {snakemake.wildcards.seed}: {len(specs)} runs in the rule's params, expected 1"
    train_runs(specs, snakemake.input.data, snakemake.output.metrics, snakemake.output.get("checkpoints"))
