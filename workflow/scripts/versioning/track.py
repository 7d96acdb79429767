# rule track (workflow/rules/versioning.smk) -> optbias.versioning.tracking.write
from optbias.fileio import load_jsons
from optbias.job import job
from optbias.versioning.tracking import write

with job(snakemake):
    write(load_jsons(snakemake.input.summaries), load_jsons(snakemake.input.metrics), snakemake.output.headline,
          snakemake.output.curves)
