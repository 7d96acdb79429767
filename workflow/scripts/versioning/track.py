# rule track (workflow/rules/versioning.smk) -> optbias.versioning.tracking.write
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.fileio import load_jsons
    from optbias.versioning.tracking import write

    write(load_jsons(snakemake.input.summaries), load_jsons(snakemake.input.metrics), snakemake.output.headline,
          snakemake.output.curves)
