# rule probe (workflow/rules/probes.smk) -> optbias.probes.run.probe_runs
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.probes.run import probe_runs

    probe_runs(snakemake.input.metrics, snakemake.input.checkpoints, snakemake.output, snakemake.input.data,
               snakemake.params.settings)
