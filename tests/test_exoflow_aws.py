"""ExoFlow's real path under --profile aws, as far as no cloud is needed: the Ray cluster-launcher
YAMLs rendered per figure, the `ray` commands, the head's job and restart scripts, the per-target
experiment files, and the dry-run plan with its costs. Expected values are typed from the artifact
(suquark/ExoFlow @ 179e1fb: clusters/*.yaml, restart_ray.sh, setup/patch.sh, setup/init.sh) and the
fact sheet (reference/seed-exoflow.md), not read back from the renderer."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchpipe.cloud import ray_yaml
from benchpipe.deployers.ray_cluster import job_result, job_script, parse_result_lines
from benchpipe.errors import ConfigError
from benchpipe.experiment import experiment_files, load_experiment
from benchpipe.pointspec import point_spec
from benchpipe.providers.ray_cluster import RayClusterProvider

REPO = Path(__file__).resolve().parent.parent
EXPERIMENTS = REPO / "config" / "experiments"
# The authors' hard-coded identifiers (clusters/*.yaml, restart_ray.sh): none may be rendered.
AUTHORS_IDS = [
    "ami-0bc093c9b91f2c0e2",
    "ami-0cb5541034051e50b",
    "sg-3463e565",
    "sg-092b10044bcf1f37e",
    "fs-0d0c1e4b4ddb1a2b3",
    "fs-d416cc55",
    "s3://exoflow/",
    "siyuan-workflow",
    "hoplite-group",
    "~/.aws",
    "0.0.0.0/0",
]
SETTINGS = {
    "region": "ap-southeast-1",
    "zones": ["ap-southeast-1a", "ap-southeast-1b"],
    "ami": "ami-0123456789abcdef0",
    "security_group_id": "sg-0fedcba9876543210",
    "key_name": "benchpipe",
    "key_path": "/home/me/.ssh/benchpipe-ap-southeast-1.pem",
    "placement_group": "benchpipe-experiments",
    "ssh_user": "ubuntu",
    "owner": "tester",
    "ttl_minutes": 240,
}


@functools.cache
def exoflow(name: str, target: str = "aws"):
    return load_experiment(experiment_files(EXPERIMENTS)[name], {"paper": True}, 1, target)


def exp_baseline(name: str) -> str:
    return exoflow(name).baselines[0]


def remote_experiments() -> list[str]:
    """Every ExoFlow experiment that has a Ray cluster under --profile aws."""
    names = [n for n, p in experiment_files(EXPERIMENTS).items() if p.parent.name == "exoflow"]
    return [n for n in names if exoflow(n).data["targets"].get("aws", {}).get("provider")]


def rendered(name: str, baseline: str | None = None) -> tuple[dict, str]:
    exp = exoflow(name)
    baseline = baseline or exp.baselines[0]
    own = exp.data["targets"]["aws"]["provider"]
    # The AMI is the user's to give (config/experiments/exoflow/_aws.yaml leaves it empty).
    settings = {**SETTINGS, **own["settings"], "ami": SETTINGS["ami"], "results_dir": "/tmp/nowhere"}
    prov = RayClusterProvider({**settings, "instance_profile": f"benchpipe-a1b2c3d4-{name}-{baseline}"})
    doc, tags, bucket = prov.render(
        exp.machines(exp.baseline(baseline)["cluster"]),
        name=f"{name}-{baseline}",
        run_id="a1b2c3d4",
        experiment=name,
        baseline=baseline,
    )
    assert tags["project"] == "benchpipe" and tags["run-id"] == "a1b2c3d4"
    return doc, bucket


# Per figure, the artifact's cluster (clusters/*.yaml; restart_ray.sh for Figure 6's --num-cpus 32):
# head type, worker type and count, head and worker resources, the experiment's PYTHONPATH.
ARTIFACT = {
    "exoflow_fig6_left": ("g4dn.12xlarge", "r3.2xlarge", 1, '{"machine": 1, "tag:gpu": 1}',
                          '{"machine": 1, "tag:data": 1}', "experiments/distributed_training", 32),
    "exoflow_fig6_right": ("g4dn.12xlarge", "r3.2xlarge", 1, '{"machine": 1, "tag:gpu": 1}',
                           '{"machine": 1, "tag:data": 1}', "experiments/distributed_training", 32),
    "exoflow_fig7a": ("m5.16xlarge", None, 0, '{"machine": 1}', None, "experiments/stateful_serverless", None),
    "exoflow_fig7b": ("m5.16xlarge", None, 0, '{"machine": 1}', None, "experiments/stateful_serverless", None),
    "exoflow_fig7c": ("r3.8xlarge", "r3.8xlarge", 2, '{"machine": 1, "tag:online": 1}', '{"machine": 1}',
                      "experiments/graph_streaming", None),
    "exoflow_fig8a": ("m5.8xlarge", None, 0, '{"machine": 1}', None, "experiments/microbenchmarks", None),
    "exoflow_fig8b": ("m5.8xlarge", None, 0, '{"machine": 1}', None, "experiments/microbenchmarks", None),
    "exoflow_fig8c": ("m5.16xlarge", None, 0, '{"machine": 1}', None, "experiments/microbenchmarks", None),
}  # fmt: skip


def test_every_remote_figure_has_the_artifacts_cluster():
    names = remote_experiments()
    assert set(names) == set(ARTIFACT)  # every ExoFlow figure has its Ray cluster under --profile aws
    for name in names:
        head_t, worker_t, n_workers, head_res, worker_res, pythonpath, cpus = ARTIFACT[name]
        doc, bucket = rendered(name)
        nodes = doc["available_node_types"]
        head = nodes["ray.head.default"]["node_config"]
        assert doc["head_node_type"] == "ray.head.default"
        assert head["InstanceType"] == head_t, name
        assert head["BlockDeviceMappings"] == [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 200}}]
        assert doc["max_workers"] == n_workers
        if n_workers:
            w = nodes["ray.worker.default"]
            assert (w["min_workers"], w["max_workers"]) == (n_workers, n_workers)
            assert w["node_config"]["InstanceType"] == worker_t
        else:
            assert "ray.worker.default" not in nodes
        # The project's settings instead of the authors' ids.
        for cfg in (n["node_config"] for n in nodes.values()):
            assert cfg["ImageId"] == "ami-0123456789abcdef0"
            assert cfg["SecurityGroupIds"] == ["sg-0fedcba9876543210"]
            assert cfg["KeyName"] == "benchpipe"
            assert cfg["InstanceInitiatedShutdownBehavior"] == "terminate"
            # The cluster's own role on every node (no untagged ray-autoscaler-v1, workers reach S3).
            assert cfg["IamInstanceProfile"] == {"Name": f"benchpipe-a1b2c3d4-{name}-{exp_baseline(name)}"}
            assert "/etc/benchpipe-expires" in cfg["UserData"]  # the dead-man timer
            for spec in cfg["TagSpecifications"]:
                tags = {t["Key"]: t["Value"] for t in spec["Tags"]}
                assert tags["project"] == "benchpipe" and tags["experiment"] == name and tags["expires"]
            assert {s["ResourceType"] for s in cfg["TagSpecifications"]} == {"instance", "volume"}
        assert doc["provider"] == {
            "type": "aws",
            "region": "ap-southeast-1",
            "cache_stopped_nodes": False,
            "availability_zone": "ap-southeast-1a,ap-southeast-1b",
        }
        assert doc["auth"] == {"ssh_user": "ubuntu", "ssh_private_key": "/home/me/.ssh/benchpipe-ap-southeast-1.pem"}
        assert doc["file_mounts"] == {}
        text = yaml.safe_dump(doc)
        for leaked in AUTHORS_IDS:
            assert leaked not in text, (name, leaked)
        # Ray started as the artifact starts it, with the run's bucket as workflow storage.
        storage = f"--storage=s3://{bucket}/{name}/"
        head_start = doc["head_start_ray_commands"]
        assert head_start[0] == "ray stop"
        assert head_start[1].startswith(f"ulimit -n 65536; PYTHONPATH=~/ExoFlow/{pythonpath} ray start --head ")
        for flag in ("--port=6379", "--object-manager-port=8076", "--autoscaling-config=~/ray_bootstrap_config.yaml",
                     f"--resources='{head_res}'", storage):  # fmt: skip
            assert flag in head_start[1], (name, flag)
        assert ("--num-cpus=32" in head_start[1]) == (cpus == 32)
        if worker_res:
            worker_start = doc["worker_start_ray_commands"][1]
            assert "--address=$RAY_HEAD_IP:6379" in worker_start and f"--resources='{worker_res}'" in worker_start
        assert len(bucket) <= 63 and bucket == bucket.lower() and bucket.startswith("benchpipe-a1b2c3d4-")


def test_graph_streaming_workers_share_a_placement_group_and_others_none():
    doc, _ = rendered("exoflow_fig7c")
    worker = doc["available_node_types"]["ray.worker.default"]["node_config"]
    assert worker["Placement"] == {"GroupName": "benchpipe-experiments"}  # the artifact's hoplite-group
    assert "Placement" not in doc["available_node_types"]["ray.head.default"]["node_config"]


def test_nodes_get_exoflow_as_the_artifact_installs_it():
    doc, bucket = rendered("exoflow_fig7c")
    setup = doc["setup_commands"]
    joined = "\n".join(setup)
    assert "conda create -y -q -n exoflow-dev python=3.9" in joined
    assert "pip install -q 'ray[default]==2.0.1' boto3" in joined
    assert "git clone -q https://github.com/suquark/ExoFlow ~/ExoFlow" in joined
    assert "checkout -q -f 179e1fb754ee42ddbb73db1b7b89d31d8a263b37" in joined
    assert "install -q -r ~/ExoFlow/setup/requirements.txt" in joined
    assert "bash ~/ExoFlow/setup/patch.sh" in joined
    # In that order: requirements and ExoFlow before the patch into the installed Ray.
    order = [next(i for i, c in enumerate(setup) if key in c) for key in ("ray[default]", "checkout", "patch.sh")]
    assert order == sorted(order)
    # The artifact's bucket name is replaced by the run's (s3://exoflow-dataset, its data, is kept).
    sed = next(c for c in setup if "sed -i" in c)
    assert f"s3://{bucket}" in sed and "exoflow-dataset" not in sed
    assert setup[-1].startswith("test -d ~/spark-3.3.0-bin-hadoop3")  # the experiment's own extra step


def test_bucket_substitution_keeps_the_dataset_bucket(tmp_path):
    """The setup's search-and-replace, run by bash/sed here on a file shaped like the artifact's."""
    doc, bucket = rendered("exoflow_fig8b")
    sed = next(c for c in doc["setup_commands"] if "sed -i" in c).replace("~/ExoFlow", str(tmp_path))
    f = tmp_path / "experiments" / "x" / "run.py"
    f.parent.mkdir(parents=True)
    f.write_text('storage = "s3://exoflow"\nprefix = "s3://exoflow/exp1"\ndata = "s3://exoflow-dataset/tacodata.zip"\n')
    subprocess.run(["bash", "-c", sed], check=True)
    assert f.read_text() == (
        f'storage = "s3://{bucket}"\nprefix = "s3://{bucket}/exp1"\ndata = "s3://exoflow-dataset/tacodata.zip"\n'
    )


def test_ray_commands():
    y = "/r/.clusters/exoflow_fig7c/async.ray.yaml"
    assert ray_yaml.up_argv("ray", y) == ["ray", "up", "-y", "--disable-usage-stats", "--no-config-cache", y]
    assert ray_yaml.down_argv("/opt/ray201/bin/ray", y) == ["/opt/ray201/bin/ray", "down", "-y", y]
    assert ray_yaml.exec_argv("ray", y, "ray status") == ["ray", "exec", y, "ray status"]
    assert ray_yaml.rsync_down_argv("ray", y, "/tmp/a/", "/x/") == ["ray", "rsync-down", y, "/tmp/a/", "/x/"]
    assert ray_yaml.cluster_name("a1b2c3d4", "exoflow_fig7c", "async") == "benchpipe-a1b2c3d4-exoflow-fig7c-async"


def test_restart_script_is_restart_ray_sh_and_valid_bash(tmp_path):
    ray = exoflow("exoflow_fig7c").data["targets"]["aws"]["provider"]["settings"]["ray"]
    script = ray_yaml.restart_script(ray, "s3://b/exoflow_fig7c/async", n_workers=2)
    lines = script.splitlines()
    stop = lines.index("ray stop --force")
    head = next(i for i, s in enumerate(lines) if "ray start --head" in s)
    worker = next(i for i, s in enumerate(lines) if "ray start --address=$RAY_HEAD_IP:6379" in s)
    assert stop < head < worker  # stop everywhere, then the head, then the workers
    assert "ray get-worker-ips ~/ray_bootstrap_config.yaml" in script
    assert "-i ~/ray_bootstrap_key.pem" in script
    assert ">= 3 else 1" in script  # polled until the 3 nodes are back, not slept for
    p = tmp_path / "restart.sh"
    p.write_text(script)
    assert subprocess.run(["bash", "-n", str(p)], capture_output=True).returncode == 0


def test_job_script_runs_a_driver_and_keeps_only_its_result_lines(tmp_path):
    """The head's side of a job, run by bash here: an earlier line of results.txt is not this run's."""
    work = tmp_path / "experiments" / "distributed_training"
    (work / "result").mkdir(parents=True)
    (work / "result" / "results.txt").write_text('duration = 1.0s | config = {"checkpoint": "old"} | then\n')
    driver = (
        "import os, json\n"
        "open('result/results.txt', 'a').write('duration = 612.5s | config = ' + json.dumps("
        "{'checkpoint': os.environ['MODE'], 'enhance_dataset_multiplier': 2}) + ' | 2026-12-03 | version=abc\\n')\n"
        "print('trained')\n"
    )
    argv = [sys.executable, "-c", driver]
    job = tmp_path / "job"
    script = job_script(argv, {"MODE": "hybrid"}, 60, str(work), str(job), ("result/results.txt",))
    (tmp_path / "run.sh").write_text(script)
    subprocess.run(["bash", str(tmp_path / "run.sh")], check=True, timeout=60)
    res = job_result(job)
    assert res.returncode == 0 and res.ended >= res.started and res.crashed_at is None
    assert res.stdout.read_text() == "trained\n"
    assert json.loads(res.result.read_text()) == {
        "duration_s": 612.5,
        "config": {"checkpoint": "hybrid", "enhance_dataset_multiplier": 2},
        "datetime": "2026-12-03",
        "version": "abc",
        "source": "result line",
    }


def test_a_driver_without_result_line_is_timed_by_the_wall_clock_and_keeps_its_files(tmp_path):
    work = tmp_path / "microbenchmarks"
    work.mkdir()
    driver = (
        "import json, os; os.makedirs('result', exist_ok=True); json.dump([0.5, 0.6], open('result/ray_4.json', 'w'))"
    )
    job = tmp_path / "job"
    (tmp_path / "run.sh").write_text(job_script([sys.executable, "-c", driver], {}, 60, str(work), str(job), ()))
    subprocess.run(["bash", str(tmp_path / "run.sh")], check=True, timeout=60)
    res = job_result(job)
    body = json.loads(res.result.read_text())
    assert body["source"] == "wall clock" and 0 < body["duration_s"] < 60
    assert body["files"] == ["result/ray_4.json"]
    assert json.loads((job / "result" / "ray_4.json").read_text()) == [0.5, 0.6]


def test_job_script_times_out_and_records_the_exit(tmp_path):
    job = tmp_path / "job"
    script = job_script(["sleep", "30"], {}, 1, str(tmp_path), str(job), ())
    (tmp_path / "run.sh").write_text(script)
    subprocess.run(["bash", str(tmp_path / "run.sh")], check=True, timeout=60)
    res = job_result(job)
    assert res.returncode is None and res.result is None  # killed at the limit (timeout(1) exit 124)
    assert res.ended - res.started < 10


def test_result_lines_parser_skips_other_lines():
    text = 'noise\nduration = 3.25s | config = {"a": 1} | 2026-01-01 00:00:00\n'
    row = {"duration_s": 3.25, "config": {"a": 1}, "datetime": "2026-01-01 00:00:00", "version": ""}
    assert parse_result_lines(text) == [row]


def test_remote_only_figures_are_refused_locally_naming_file_and_key():
    from benchpipe.targets import refuse_unsupported

    for name in ("exoflow_fig7a", "exoflow_fig7b", "exoflow_fig7c", "exoflow_fig8b"):
        exp = exoflow(name, target="local")
        with pytest.raises(ConfigError) as e:
            refuse_unsupported({"target": "local"}, [exp])
        assert f"config/experiments/exoflow/{name}.yaml: targets.local.unsupported" in str(e.value)


def test_point_spec_carries_the_own_provider_only_for_exoflow():
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg = {**cfg, "target": "aws", "provider": {"name": "aws", "settings": {"region": "ap-southeast-1"}}}
    cfg["measure"] = {**cfg.get("measure", {}), "max_send_lag_ms": 50, "min_achieved_fraction": 0.95,
                      "ready_timeout_s": 600}  # fmt: skip
    exp = exoflow("exoflow_fig7c")
    spec = point_spec(cfg, exp, exp.all_points()[0])
    assert spec["provider"]["name"] == "ray-cluster"
    assert spec["deployer"]["name"] == "ray-cluster"
    hotel = load_experiment(EXPERIMENTS / "halfmoon" / "hotel.yaml", {"paper": True}, 1, "aws")
    assert "provider" not in point_spec(cfg, hotel, hotel.all_points()[0])


def test_target_file_mistakes_name_the_file_and_key(tmp_path):
    suite = tmp_path / "exoflow"
    suite.mkdir()
    shutil.copy(EXPERIMENTS / "exoflow" / "exoflow_fig8b.yaml", suite)
    (suite / "_aws.yaml").write_text("experiments: [exoflow_fig8b]\n")
    with pytest.raises(ConfigError, match=r"_aws.yaml: experiments: expected a mapping"):
        load_experiment(suite / "exoflow_fig8b.yaml", None, 1, "aws")
    (suite / "_aws.yaml").write_text("experiments:\n  exoflow_fig8b:\n    provider: {name: nope}\n")
    with pytest.raises(ConfigError, match=r"targets"):
        load_experiment(suite / "exoflow_fig8b.yaml", None, 1, "aws")


# The paper's runs per figure (fact sheet sections 3 and 5; seed README durations), as the plan must
# price them: on-demand, `ray up` 1200 s + per point (duration + 60 s) + 60 s teardown per cluster.
PRICE = {"m5.16xlarge": 3.84, "m5.8xlarge": 1.92, "r3.8xlarge": 3.192, "g4dn.12xlarge": 5.474, "r3.2xlarge": 0.798}


def cluster_cost(points: int, point_s: float, machines: dict[str, int]) -> tuple[float, float]:
    hours = (1200 + points * (point_s + 60) + 60) / 3600
    return hours, sum(hours * n * PRICE[t] for t, n in machines.items())


@pytest.mark.slow
def test_dry_run_plans_every_exoflow_figure_with_machines_hours_and_dollars(tmp_path):
    shutil.copytree(REPO / "config", tmp_path / "config")
    profile = tmp_path / "aws"
    shutil.copytree(REPO / "profiles" / "aws", profile)
    conf = yaml.safe_load((profile / "aws.yaml").read_text())
    conf["provider"]["settings"]["endpoint_url"] = "http://127.0.0.1:9"  # any AWS call would fail
    (profile / "aws.yaml").write_text(yaml.safe_dump(conf))
    figures = [f"figures/{n}.png" for n in remote_experiments()]
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-c2", "-n",
           "--profile", str(profile), *figures]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    # Figure 7(a): 3 series x 10 rates of 420 s on one m5.16xlarge each.
    assert "exoflow_fig7a/beldi: 10 to run, 0 done  [cluster server: 1 x m5.16xlarge; provider ray-cluster" in text
    h, d = cluster_cost(10, 420, {"m5.16xlarge": 1})
    assert f"exoflow_fig7a-exoflow: 1 machines x {h:.2f} h = {h:.1f} instance-hours, ${d:.2f}" in text
    # Figure 7(c): 3 modes x one ~2 h run on 3 x r3.8xlarge.
    h, d = cluster_cost(1, 7200, {"r3.8xlarge": 3})
    assert "exoflow_fig7c/sync: 1 to run, 0 done  [cluster graph: 3 x r3.8xlarge" in text
    assert f"exoflow_fig7c-sync: 3 machines x {h:.2f} h = {3 * h:.1f} instance-hours, ${d:.2f}" in text
    # Figure 7(b): five bars, one 420 s run each.
    h, d = cluster_cost(1, 420, {"m5.16xlarge": 1})
    assert f"exoflow_fig7b-reserve-overlapckpt: 1 machines x {h:.2f} h = {h:.1f} instance-hours, ${d:.2f}" in text
    # Figure 6 (left): 5 configurations x 4 sizes x 3 rounds, ~700 s a run, on g4dn.12xlarge + r3.2xlarge.
    h, d = cluster_cost(12, 700, {"g4dn.12xlarge": 1, "r3.2xlarge": 1})
    shape = "[cluster node: 1 x g4dn.12xlarge, 1 x r3.2xlarge"
    assert f"exoflow_fig6_left/workflow-tasks: 12 to run, 0 done (3 repetitions each)  {shape}" in text
    assert f"exoflow_fig6_left-hybrid: 2 machines x {h:.2f} h = {2 * h:.1f} instance-hours, ${d:.2f}" in text
    # Figure 6 (right): 3 modes x (no failure + 5 failure types) at 4x x 3 rounds, ~30 min a run.
    h, d = cluster_cost(18, 1800, {"g4dn.12xlarge": 1, "r3.2xlarge": 1})
    assert f"exoflow_fig6_right-sync: 2 machines x {h:.2f} h = {2 * h:.1f} instance-hours, ${d:.2f}" in text
    # Figure 8(c): controllers / CPUs 1..12 for ExoFlow (both series in one run) and Ray.
    h, d = cluster_cost(12, 120, {"m5.16xlarge": 1})
    assert "exoflow_fig8c/exoflow: 12 to run, 0 done  [" in text  # the scripts repeat themselves
    assert f"exoflow_fig8c-ray: 1 machines x {h:.2f} h = {h:.1f} instance-hours, ${d:.2f}" in text
    # Figure 8(a): one run of latency/run.py measures every series.
    assert "exoflow_fig8a/all: 1 to run, 0 done  [cluster node: 1 x m5.8xlarge" in text
    assert "machines (on-demand):" in text
    assert "total:" in text and "vCPU:" in text
    assert not (tmp_path / "results-aws").exists()


@pytest.mark.slow
def test_suite_exoflow_under_the_aws_profile_plans_its_own_experiments(tmp_path):
    # profiles/aws chooses Halfmoon's experiments for rule all; --config suite=exoflow must not
    # inherit them (it failed on 'singleop'), and the Halfmoon default must stay as it was.
    shutil.copytree(REPO / "config", tmp_path / "config")
    profile = tmp_path / "aws"
    shutil.copytree(REPO / "profiles" / "aws", profile)
    conf = yaml.safe_load((profile / "aws.yaml").read_text())
    conf["provider"]["settings"]["endpoint_url"] = "http://127.0.0.1:9"  # any AWS call would fail
    (profile / "aws.yaml").write_text(yaml.safe_dump(conf))
    base = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-c2", "-n",
            "--profile", str(profile)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def plan(*args: str) -> str:
        out = subprocess.run([*base, *args], capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
        return out.stdout + out.stderr

    assert "exoflow_fig7a/exoflow: 10 to run" in plan("figures/exoflow_fig7a.png", "--config", "suite=exoflow")
    halfmoon = plan()  # rule all: Halfmoon's evaluation, as before
    assert "figures/hotel.png" in halfmoon and "figures/exoflow_" not in halfmoon
