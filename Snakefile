# optbias: fetch data -> lr sweep -> train every optimizer -> Shampoo ablation -> figures -> claims audit -> paper. Run: snakemake --cores all
# The rules live in workflow/rules/; the logic lives in src/optbias/ (called as `python -m optbias`).

configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sweep.smk"
include: "workflow/rules/ablation.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/powerprop.smk"
include: "workflow/rules/dvc.smk"
include: "workflow/rules/probes.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/paper.smk"


rule all:
    input:
        all_outputs(),
    default_target: True
