# rule knob_select (workflow/rules/continual.smk) -> optbias.continual.knobs.select and second_protocol
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.continual.knobs import second_protocol, select
    from optbias.fileio import atomic_write_json, load_json, load_jsons

    lrs = {name: entry["selected_lr"] for name, entry in load_json(snakemake.input.selected_lrs).items()}
    atomic_write_json(snakemake.output[0], {
        "knobs": select(load_jsons(snakemake.input.metrics), snakemake.params.knobs, snakemake.params.config_values),
        "second_protocol": second_protocol(load_jsons(snakemake.input.sweep), lrs),
    })
