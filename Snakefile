# optbias: fetch data -> lr sweep -> train every optimizer -> Shampoo ablation -> probes ->
# Powerprop -> figures -> claims audit -> paper. Run: snakemake --cores all (or: make reproduce)
#
# One rule file per stage, one library subpackage per rule file:
#   workflow/rules/<stage>.smk -> workflow/scripts/<stage>/<rule>.py -> src/optbias/<stage>/
# common.smk holds the config checks and helpers every rule file uses.

DEFAULT_CONFIG = "config/config.yaml"  # relative to the working directory; a --configfile merges on top


configfile: DEFAULT_CONFIG


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/continual.smk"
include: "workflow/rules/probes.smk"
include: "workflow/rules/powerprop.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/versioning.smk"


rule all:
    input:
        all_outputs(),
    message:
        "every output of the config is up to date"
    default_target: True
