# Per experiment: one summary table; per figure: PNG and interactive HTML.


rule summarize:
    input:
        get_experiment_manifests,
    output:
        parquet=f"{R}/{{exp}}/summary.parquet",
        csv=report(
            f"{R}/{{exp}}/summary.csv",
            caption="../report/summary.rst",
            category="Summaries",
            labels={"experiment": "{exp}"},
        ),
    conda:
        "../environment.yml"
    log:
        f"{R}/logs/{{exp}}/summarize.log",
    params:
        config=get_config_json,
        stale=get_stale_mark,
        caption=get_summary_caption,
    shell:
        "python -m benchpipe summarize --config-json {params.config:q} --experiment {wildcards.exp}"
        " --parquet {output.parquet} --csv {output.csv} > {log} 2>&1"


# A figure's own summary of the points it draws of an experiment (when it draws only some).
rule summarize_drawn:
    input:
        get_drawn_manifests,
    output:
        f"{R}/{{exp}}/drawn-{{figure}}.parquet",
    conda:
        "../environment.yml"
    log:
        f"{R}/logs/{{exp}}/drawn-{{figure}}.log",
    params:
        config=get_config_json,
        owner=get_figure_owner,
        stale=get_drawn_stale_mark,
    shell:
        "python -m benchpipe summarize --config-json {params.config:q} --experiment {wildcards.exp}"
        " --figure {wildcards.figure} --owner {params.owner} --parquet {output} > {log} 2>&1"


rule plot:
    input:
        summaries=get_figure_summary,
        # Not read: it makes a figure's target judge the paper's claims about it too.
        claims=get_figure_claims,
    output:
        png=report(
            f"{F}/{{figure}}.png",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{figure}"},
        ),
        html=f"{F}/{{figure}}.html",
    conda:
        "../environment.yml"
    log:
        f"{R}/logs/plot/{{figure}}.log",
    params:
        config=get_config_json,
        experiment=get_figure_experiment,
        caption=get_figure_caption,
    shell:
        "python -m benchpipe plot --config-json {params.config:q} --experiment {params.experiment}"
        " --summary {input.summaries} --figure {wildcards.figure} --png {output.png} --html {output.html} > {log} 2>&1"


# Per figure: the paper's claims about it (its experiment file's `claims:`), judged with the
# intervals of the summaries the figure draws.
rule claims:
    input:
        get_claims_summaries,
    output:
        report(
            f"{R}/{{exp}}/claims-{{figure}}.csv",
            caption="../report/claims.rst",
            category="Claims",
            labels={"figure": "{figure}"},
        ),
    conda:
        "../environment.yml"
    log:
        f"{R}/logs/{{exp}}/claims-{{figure}}.log",
    params:
        config=get_config_json,
        claims=get_claims_json,
    shell:
        "python -m benchpipe claims --config-json {params.config:q} --experiment {wildcards.exp}"
        " --figure {wildcards.figure} --summary {input} --out {output} > {log} 2>&1"


# `snakemake compare --config compare_with=<other results folder>`: every experiment summarized in
# both runs, point by point (benchstat's model), and figures overlaying both runs.
rule compare:
    input:
        get_compare_summaries,
    output:
        directory(f"{R}/compare"),
    conda:
        "../environment.yml"
    log:
        f"{R}/logs/compare.log",
    params:
        other=get_compare_other,
        new=get_results_dir,
        stamp=get_compare_stamp,
        experiments=config["experiments_dir"],
    shell:
        "python -m benchpipe compare {params.other:q} {params.new:q} --out {output} --experiments-dir {params.experiments:q}"
        " > {log} 2>&1 && cat {output}/compare.txt"
