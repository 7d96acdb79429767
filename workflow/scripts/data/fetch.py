# rule fetch (workflow/rules/data.smk) -> optbias.data.fetch
import json

from optbias.data import fetch
from optbias.job import job

with job(snakemake):
    print(json.dumps(fetch(snakemake.wildcards.dataset, snakemake.output.data, snakemake.params.cfg), indent=2))
