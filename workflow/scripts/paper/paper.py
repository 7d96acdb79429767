# rule paper (workflow/rules/paper.smk) -> optbias.paper.render.build
from optbias.fileio import atomic_write_bytes
from optbias.job import job
from optbias.paper.render import build

with job(snakemake):
    page = build(snakemake.input.source, snakemake.input.variables, snakemake.input.audit_json, snakemake.input.audit_md,
                 snakemake.params.config)
    atomic_write_bytes(snakemake.output[0], page.encode())
