# Data (src/optbias/data.py): fetch the dataset once and freeze it with a checksum manifest.


rule fetch:
    """Freeze the dataset as one tensor file plus a manifest of SHA-256 checksums."""
    output:
        data="data/raw/{dataset}.pt",
        manifest="data/raw/{dataset}.pt.manifest.json",
    params:
        cfg=config["data"],
    message:
        "fetch {wildcards.dataset}"
    log:
        "logs/fetch/{dataset}.log",
    benchmark:
        "benchmarks/fetch/{dataset}.tsv"
    conda:
        ENV
    script:
        "../scripts/data/fetch.py"
