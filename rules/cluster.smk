# Commands without files, for the clusters of the active profile:
#   snakemake setup --profile aws       key pair, security group, placement group, instance role
#   snakemake preflight --profile aws   checks all of it before anything is launched
#   snakemake teardown --profile aws    tears down every cluster this results folder still holds
#   snakemake janitor --profile aws     removes tagged leftovers whose time or run is over


rule setup:
    conda:
        "../environment.yml"
    log:
        f"{R}/logs/setup.log",
    params:
        config=get_cluster_config_json,
    shell:
        "python -m benchpipe setup --config-json {params.config:q} 2>&1 | tee {log}"


rule preflight:
    conda:
        "../environment.yml"
    log:
        f"{R}/logs/preflight.log",
    params:
        config=get_cluster_config_json,
    shell:
        "python -m benchpipe preflight --config-json {params.config:q} 2>&1 | tee {log}"


rule teardown:
    conda:
        "../environment.yml"
    log:
        f"{R}/logs/teardown.log",
    params:
        config=get_cluster_config_json,
    shell:
        "python -m benchpipe teardown --config-json {params.config:q} 2>&1 | tee {log}"


rule janitor:
    conda:
        "../environment.yml"
    log:
        f"{R}/logs/janitor.log",
    params:
        config=get_cluster_config_json,
    shell:
        "python -m benchpipe janitor --config-json {params.config:q} 2>&1 | tee {log}"
