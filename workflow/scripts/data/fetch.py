# rule fetch (workflow/rules/data.smk) -> optbias.data.fetch
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    import json
    from optbias.data import fetch

    print(json.dumps(fetch(snakemake.wildcards.dataset, snakemake.output.data, snakemake.params.cfg), indent=2))
