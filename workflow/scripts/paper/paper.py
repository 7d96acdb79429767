# rule paper (workflow/rules/paper.smk) -> optbias.paper.render.build
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.fileio import atomic_write_bytes
    from optbias.paper.render import build

    datasets = dict(zip(snakemake.params.datasets, snakemake.input.datasets))  # display name -> verdicts file
    page = build(snakemake.input.source, snakemake.input.variables, snakemake.input.audit_json, snakemake.input.audit_md,
                 snakemake.params.config, datasets=datasets)
    atomic_write_bytes(snakemake.output[0], page.encode())
