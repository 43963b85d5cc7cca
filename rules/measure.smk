# Per point, one job per stage: provision (the cluster, brought up or reused) -> deploy (a fresh
# stack, ready) -> warmup -> run (measurement, drain) -> collect (fetch, checks, manifest; the stack
# stopped). The stack is exclusive to one point from deploy to collect: deploy waits for the
# cluster's lease (with no cores, so a waiting deploy never blocks the holder), collect frees it.

# Repetitions interleave: rep 1 of every point before any rep 2 (get_priority; a cluster's
# lease also serves waiting deploys in repetition order).
# A point's folder, and its log folder: its jobs' logs, stack logs of a failure, rejected raw files.
POINT = f"{R}/{{exp}}/{{baseline}}/{{point}}"
POINT_LOGS = f"{R}/logs/{{exp}}/{{baseline}}/{{point}}"
# The stages that hold a stack: retried (a retry deploys afresh); the last attempt frees the lease.
STAGE_ARGS = "--attempt {resources.attempt} --retries {params.retries} --log-dir {params.logdir}"


rule provision:
    output:
        f"{POINT}/provision.json",
    conda:
        "../environment.yml"
    priority: get_priority
    log:
        f"{POINT_LOGS}/provision.log",
    params:
        config=get_cluster_config_json,
        spec=get_point_spec,
    threads: 0
    resources:
        idle_waits=1,
    shell:
        "python -m benchpipe provision --config-json {params.config:q} --spec-json {params.spec:q}"
        " --out {output} > {log} 2>&1"


rule deploy:
    input:
        f"{POINT}/provision.json",
    output:
        f"{POINT}/deploy.json",
    conda:
        "../environment.yml"
    priority: get_priority
    log:
        f"{POINT_LOGS}/deploy.log",
    params:
        config=get_cluster_config_json,
        logdir=POINT_LOGS,
        retries=config["measure"]["retries"],
        restack=get_restack_mark,
    # Waits for the cluster's lease without holding a core; `idle_waits` caps how many such jobs
    # run at once (the profile's limit), since each still takes one of Snakemake's few spare
    # workers, which the holder's next stage needs.
    threads: 0
    resources:
        attempt=get_attempt,
        idle_waits=1,
    retries: config["measure"]["retries"]
    shell:
        "python -m benchpipe deploy --config-json {params.config:q} --provision {input}"
        f" --out {{output}} {STAGE_ARGS} > {{log}} 2>&1"


rule warmup:
    input:
        f"{POINT}/deploy.json",
    output:
        directory(f"{POINT}/warmup"),
    conda:
        "../environment.yml"
    priority: get_priority
    log:
        f"{POINT_LOGS}/warmup.log",
    params:
        config=get_cluster_config_json,
        logdir=POINT_LOGS,
        retries=config["measure"]["retries"],
    threads: get_measure_threads()
    resources:
        attempt=get_attempt,
    retries: config["measure"]["retries"]
    shell:
        "python -m benchpipe warmup --config-json {params.config:q} --deploy {input}"
        f" --out {{output}} {STAGE_ARGS} > {{log}} 2>&1"


rule run:
    input:
        deploy=f"{POINT}/deploy.json",
        warmup=f"{POINT}/warmup",
    output:
        directory(f"{POINT}/measured"),
    conda:
        "../environment.yml"
    priority: get_priority
    log:
        f"{POINT_LOGS}/run.log",
    params:
        config=get_cluster_config_json,
        logdir=POINT_LOGS,
        retries=config["measure"]["retries"],
    threads: get_measure_threads()
    resources:
        vcpus=get_point_vcpus,
        attempt=get_attempt,
    retries: config["measure"]["retries"]
    shell:
        "python -m benchpipe run --config-json {params.config:q} --deploy {input.deploy} --warmup {input.warmup}"
        f" --out {{output}} {STAGE_ARGS} > {{log}} 2>&1"


rule collect:
    input:
        deploy=f"{POINT}/deploy.json",
        measured=f"{POINT}/measured",
    output:
        # What summaries read: the generator's files and the stack's records, whole or absent.
        raw=directory(f"{POINT}/raw"),
        manifest=report(
            f"{POINT}/manifest.json",
            caption="../report/manifest.rst",
            category="Points",
            subcategory="{exp}",
            labels={"baseline": "{baseline}", "point": "{point}"},
        ),
    conda:
        "../environment.yml"
    priority: get_priority
    log:
        f"{POINT_LOGS}/collect.log",
    params:
        config=get_cluster_config_json,
        siblings=get_sibling_manifests,
        logdir=POINT_LOGS,
    shell:
        "python -m benchpipe collect --config-json {params.config:q} --deploy {input.deploy}"
        " --measured {input.measured} --raw {output.raw} --manifest {output.manifest}"
        " --log-dir {params.logdir} --siblings {params.siblings}"
        " > {log} 2>&1"
