# benchpipe: provision -> deploy -> warmup -> run -> collect -> summarize -> plot.
# Rules are thin; the logic is in the `benchpipe` package. Nothing here names an experiment.
import os
import sys

from snakemake.utils import min_version

min_version("9.0")

# Jobs run `python -m benchpipe` with the python that runs Snakemake (.venv/bin/snakemake works
# without an activated venv), never an older benchpipe of whichever python comes first on PATH.
envvars:
    "PATH",


_bin = os.path.dirname(sys.executable)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _bin:
    os.environ["PATH"] = os.pathsep.join([_bin, os.environ.get("PATH", "")])


configfile: "config/config.yaml"


# `snakemake --report report.html`: figures, summaries and manifests with captions, stage runtimes.
report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/measure.smk"
include: "rules/report.smk"
include: "rules/cluster.smk"


rule all:
    input:
        get_final_figures(),
        get_final_summaries(),
    default_target: True


onstart:
    # Before anything is launched: the provider says what is missing (credentials, key, group...).
    preflight_or_stop()


onsuccess:
    # Clusters still up go now, except those of points stopped between stages (--until deploy...),
    # which the next run continues; a no-op when every cluster's last point already took it down.
    teardown_finished()
    # The verdict per figure: unstable points and the paper's claims (after every run).
    print_verdicts()


onerror:
    teardown_everything()
    report_unfinished()
