# Per point: deploy (render the stack), run (bring up or reuse the cluster, fresh stack,
# warm-up, measurement, fetch), collect (check raw files, write manifest.json).

# A point's log folder: its jobs' logs, stack logs of a failure, rejected raw files.
POINT_LOGS = f"{R}/logs/{{exp}}/{{baseline}}/{{point}}"


rule deploy:
    output:
        f"{R}/{{exp}}/{{baseline}}/{{point}}/deploy.json",
    conda:
        "../environment.yml"
    log:
        f"{POINT_LOGS}/deploy.log",
    params:
        spec=get_point_spec,
    shell:
        "python -m benchpipe render --spec-json {params.spec:q} --out {output} > {log} 2>&1"


rule run:
    input:
        deploy=f"{R}/{{exp}}/{{baseline}}/{{point}}/deploy.json",
    output:
        directory(f"{R}/{{exp}}/{{baseline}}/{{point}}/raw"),
    conda:
        "../environment.yml"
    log:
        f"{POINT_LOGS}/run.log",
    params:
        config=get_cluster_config_json,
        logdir=POINT_LOGS,
    threads: get_measure_threads()
    resources:
        vcpus=get_point_vcpus,
    retries: config["measure"]["retries"]
    shell:
        "python -m benchpipe measure --config-json {params.config:q} --deploy {input.deploy}"
        " --out {output} --log-dir {params.logdir} > {log} 2>&1"


rule collect:
    input:
        deploy=f"{R}/{{exp}}/{{baseline}}/{{point}}/deploy.json",
        raw=f"{R}/{{exp}}/{{baseline}}/{{point}}/raw",
    output:
        f"{R}/{{exp}}/{{baseline}}/{{point}}/manifest.json",
    conda:
        "../environment.yml"
    log:
        f"{POINT_LOGS}/collect.log",
    params:
        config=get_cluster_config_json,
        siblings=get_sibling_manifests,
        logdir=POINT_LOGS,
    shell:
        "python -m benchpipe collect --config-json {params.config:q} --deploy {input.deploy}"
        " --raw {input.raw} --out {output} --log-dir {params.logdir} --siblings {params.siblings}"
        " > {log} 2>&1"
