rule fetch:
    """Freeze the dataset as one tensor file plus a manifest of SHA-256 checksums."""
    output:
        data="data/raw/{dataset}.pt",
        manifest="data/raw/{dataset}.pt.manifest.json",
    params:
        cfg=quoted_json(config.get("data", {})),
    log:
        "logs/fetch/{dataset}.log",
    benchmark:
        "benchmarks/fetch/{dataset}.tsv"
    conda:
        ENV
    shell:
        "optbias fetch --dataset {wildcards.dataset} --output {output.data} --cfg {params.cfg} > {log} 2>&1"
