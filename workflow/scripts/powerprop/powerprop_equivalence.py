# rule powerprop_equivalence (workflow/rules/powerprop.smk) -> optbias.powerprop.equivalence.study_dataset
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.fileio import atomic_write_json
    from optbias.powerprop.equivalence import study_dataset

    atomic_write_json(snakemake.output[0], study_dataset(snakemake.input.data, snakemake.params.model_cfg,
                                                         snakemake.params.cfg))
