# Commands without files: `snakemake teardown` tears down every live cluster of this profile.


rule teardown:
    conda:
        "../environment.yml"
    log:
        f"{R}/logs/teardown.log",
    params:
        config=CLUSTER_CONFIG_JSON,
    shell:
        "python -m benchpipe teardown --config-json {params.config:q} 2>&1 | tee {log}"
