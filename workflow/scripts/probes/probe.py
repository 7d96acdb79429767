# rule probe (workflow/rules/probes.smk) -> optbias.probes.run.probe_runs
from optbias.job import job
from optbias.probes.run import probe_runs

with job(snakemake):
    probe_runs(snakemake.input.metrics, snakemake.input.checkpoints, snakemake.output, snakemake.input.data,
               snakemake.params.settings)
