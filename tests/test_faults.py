"""Rows of the fault matrix (README): what happens, what is left, and the command that resumes."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError

from benchpipe.cloud import dynamo, session
from tests.conftest import harness_processes, stack_processes
from tests.test_pipeline_e2e import job_counts, make_workdir, snakemake

REPO = Path(__file__).resolve().parent.parent


def checksums(root: Path, exp: str = "hotel") -> dict[str, str]:
    """The files of the finished points (those with a manifest)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for point in sorted(root.glob(f"{exp}/*/*/manifest.json"))
        for p in sorted(point.parent.glob("**/*"))
        if p.is_file()
    }


def start(wd: Path, *args: str, target: str = "figures/hotel.png") -> subprocess.Popen[bytes]:
    """`snakemake <target> [args]` in the background, in a process group of its own."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(wd), "-c2", target]
    return subprocess.Popen(
        [*cmd, *args],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_for(cond: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not cond():
        time.sleep(0.1)
    assert cond(), f"timed out after {timeout_s:g} s waiting for {what}"


def wait_for_stack(timeout_s: float = 60) -> None:
    wait_for(lambda: stack_processes(mine_only=True), timeout_s, "the stack to start")


def unchanged(root: Path, before: dict[str, str], exp: str = "hotel") -> bool:
    """Every file of `before` is still there with the same checksum."""
    now = checksums(root, exp)
    return {k: now.get(k) for k in before} == before


def assert_resumes(
    wd: Path, before: dict[str, str], points: int, run: Callable[..., Any] = snakemake, exp: str = "hotel"
) -> None:
    """Finished points are unchanged; the same command measures exactly `points` more and leaves them so."""
    assert unchanged(wd / "results", before, exp)
    out = run(wd, f"figures/{exp}.png")
    assert job_counts(out.stdout + out.stderr).get("run", 0) == points
    assert unchanged(wd / "results", before, exp)


@pytest.mark.slow
def test_sigterm_finishes_the_running_point_and_resumes(tmp_path):
    wd = make_workdir(tmp_path, baselines=("unsafe", "boki"), rates=(20,))
    proc = start(wd)
    wait_for_stack()
    os.killpg(proc.pid, signal.SIGTERM)  # "exit after finishing the running jobs"
    proc.wait(timeout=120)
    time.sleep(0.5)
    assert not stack_processes(mine_only=True)
    assert not list((wd / "results" / ".clusters").glob("*/*.json"))
    done = {p.parent.name for p in (wd / "results" / "hotel").glob("*/*/manifest.json")}
    # Resume: the same command runs only what is missing; finished points are untouched.
    assert_resumes(wd, checksums(wd / "results"), 2 - len(done))


@pytest.mark.slow
def test_sigterm_to_snakemake_alone_stops_a_deploy_waiting_for_the_cluster(tmp_path):
    """`kill <snakemake pid>` (not the group): Snakemake finishes its running jobs and starts no
    new one, so a deploy waiting for the cluster lease would wait for ever for a holder whose next
    stage never comes. It gives up; the run ends, its stacks and clusters taken down."""
    wd = make_workdir(tmp_path, baselines=("unsafe", "boki"), rates=(20,))
    proc = start(wd)
    wait_for_stack()
    deploys = ("-m benchpipe deploy",)
    wait_for(lambda: harness_processes(mine_only=True, patterns=deploys), 60, "the second point's deploy to wait")
    os.kill(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=120)  # without the give-up: for ever
    logs = [f.read_text() for f in (wd / "results/logs/hotel").glob("*/qps20/deploy.log")]
    assert any("is stopping (SIGTERM); stopped waiting" in t for t in logs), logs
    time.sleep(0.5)
    assert not harness_processes(mine_only=True, patterns=deploys)
    assert not stack_processes(mine_only=True)
    assert not list((wd / "results" / ".clusters").glob("*/*.json"))


@pytest.mark.slow
def test_sigkill_leaves_a_lock_whose_message_says_how_to_go_on(tmp_path):
    wd = make_workdir(tmp_path, baselines=("unsafe",), rates=(20, 40))
    proc = start(wd)
    wait_for_stack()
    os.kill(proc.pid, signal.SIGKILL)  # the controller only: its running job is orphaned and finishes
    proc.wait(timeout=30)
    # The orphaned stage job ends; the point's stack may stay up under its lease for the resume.
    jobs = ("-m benchpipe",)
    wait_for(lambda: not harness_processes(mine_only=True, patterns=jobs), 60, "the orphaned job to finish")
    again = snakemake(wd, "figures/hotel.png", check=False)
    assert again.returncode != 0 and "--unlock" in again.stdout + again.stderr
    snakemake(wd, "--unlock")
    final = snakemake(wd, "figures/hotel.png")
    assert (wd / "figures" / "hotel.png").exists()
    assert job_counts(final.stdout + final.stderr).get("run", 0) <= 2


@pytest.mark.slow
def test_corrupt_raw_file_fails_that_point_naming_the_file(tmp_path):
    wd = make_workdir(tmp_path, baselines=("unsafe",), rates=(20, 40))
    snakemake(wd, "results/hotel/unsafe/qps20/manifest.json")
    snakemake(wd, "--until", "run")  # the other point measured; its stack holds the records
    assert not (wd / "results/hotel/unsafe/qps40/raw").exists()
    stack = json.loads((wd / "results/hotel/unsafe/qps40/deploy.json").read_text())["stack"]
    records = Path(stack["results_path"])  # the stack's own file, which collect fetches
    truncated = records.read_bytes()[:-40]  # cut mid-line
    records.write_bytes(truncated)
    proc = snakemake(wd, "--until", "collect", check=False)
    assert proc.returncode != 0
    log = (wd / "results/logs/hotel/unsafe/qps40/collect.log").read_text()
    assert str(Path("results/hotel/unsafe/qps40/raw/async_results")) in log and "not JSON" in log
    assert "run the same command again" in log
    assert (wd / "results/hotel/unsafe/qps20/manifest.json").exists()
    assert not (wd / "results/hotel/unsafe/qps40/manifest.json").exists()
    # The unusable files are kept beside the point's logs, not in a folder that looks measured.
    kept = list((wd / "results/logs/hotel/unsafe/qps40").glob("rejected-raw-*/async_results"))
    assert len(kept) == 1 and kept[0].read_bytes() == truncated
    assert not (wd / "results/hotel/unsafe/qps40/raw").exists()
    assert_resumes(wd, checksums(wd / "results"), 1)


@pytest.mark.aws
def test_dynamodb_throttling_is_retried_then_reported(aws, inject):
    calls = {"n": 0}

    def throttle_twice(params):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "CreateTable")

    inject("dynamodb.CreateTable", throttle_twice)
    ddb = session.client(aws, "dynamodb")  # the injected client
    slept = []
    assert dynamo.with_backoff(
        "create",
        lambda: ddb.create_table(
            TableName="benchpipe-r-t",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "K", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "K", "KeyType": "HASH"}],
        ),
        sleep=slept.append,
    )
    assert calls["n"] == 3 and slept == [0.5, 1.0]

    def always(params):
        raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "gone"}}, "DeleteTable")

    inject("dynamodb.DeleteTable", always)
    ddb = session.client(aws, "dynamodb")  # the injected client
    with pytest.raises(dynamo.TableError, match="delete benchpipe-r-t: ResourceNotFoundException after 6 attempt"):
        dynamo.with_backoff(
            "delete benchpipe-r-t", lambda: ddb.delete_table(TableName="benchpipe-r-t"), sleep=lambda s: None
        )


@pytest.mark.aws
def test_point_tables_are_gone_after_the_point_even_when_it_fails(aws):
    ddb = session.client(aws, "dynamodb")
    with (
        pytest.raises(RuntimeError),
        dynamo.point_tables(ddb, "benchpipe-r1-abc-", ["geo", "rate"], {"project": "benchpipe"}),
    ):
        names = ddb.list_tables()["TableNames"]
        assert sorted(names) == ["benchpipe-r1-abc-geo", "benchpipe-r1-abc-rate"]
        assert ddb.describe_table(TableName="benchpipe-r1-abc-geo")["Table"]["TableStatus"] == "ACTIVE"
        raise RuntimeError("the point failed")
    assert ddb.list_tables()["TableNames"] == []


@pytest.mark.aws
def test_preflight_names_what_is_wrong_before_anything_launches(aws, tmp_path):
    from benchpipe.cloud.setup import preflight, setup

    ec2 = session.client(aws, "ec2")
    good_ami = ec2.describe_images()["Images"][0]["ImageId"]
    settings = {**aws, "ami": good_ami, "key_path": str(tmp_path / "k.pem")}
    problems = preflight(settings)
    assert any("key pair benchpipe missing" in p for p in problems)
    assert any("security group missing" in p for p in problems)
    setup(settings)
    assert preflight(settings) == []
    # A wrong AMI, a key file others can read, a group opened to the world: each named.
    (tmp_path / "k.pem").chmod(0o644)
    gid = ec2.describe_security_groups(GroupNames=["benchpipe"])["SecurityGroups"][0]["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=gid,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    problems = preflight({**settings, "ami": "ami-00000000000000000"})
    assert any("provider.settings.ami" in p for p in problems)
    assert any("readable by others" in p for p in problems)
    assert any("0.0.0.0/0" in p for p in problems)
    # A region that does not exist is named as such (not as "credentials do not work").
    wrong = preflight({**settings, "region": "ap-southeast-9"})
    assert len(wrong) == 1 and "provider.settings.region: 'ap-southeast-9' is not an EC2 region" in wrong[0]
    # Credentials that do not work stop everything with one clear sentence.
    bad = preflight({**settings, "endpoint_url": "http://127.0.0.1:9"})
    assert len(bad) == 1 and "credentials" in bad[0]


@pytest.mark.aws
def test_ctrl_c_twice_during_teardown_does_not_cut_it_short(aws, inject):
    from benchpipe.clusters import cluster_file, teardown_all
    from benchpipe.experiment import load_experiment
    from benchpipe.providers.aws import AwsProvider
    from tests.aws_fixtures import NOTHING_LEFT, count_live

    exp = load_experiment(REPO / "config/experiments/halfmoon/hotel.yaml")
    cluster = AwsProvider(aws).provision(
        {"machines": exp.machines("baseline")}, name="hotel-unsafe", run_id="r9", experiment="hotel", baseline="unsafe"
    )
    path = cluster_file(Path(aws["results_dir"]), "hotel", "unsafe")
    cluster.save(path)
    assert count_live(aws)["instances"] == 10

    pressed = []

    def two_ctrl_c(params):  # the user presses Ctrl-C twice while instances are being terminated
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        pressed.append(2)

    inject("ec2.TerminateInstances", two_ctrl_c)
    config = {"provider": {"name": "aws", "settings": aws}, "results_dir": aws["results_dir"]}
    assert teardown_all(config) == [str(path)]
    assert pressed, "the Ctrl-C presses never happened"
    assert count_live(aws) == NOTHING_LEFT
    assert not path.exists()


@pytest.mark.aws
def test_each_cluster_role_reaches_only_its_runs_tables_and_goes_with_it(aws, inject):
    from benchpipe.cloud.iam import POLICY, create_cluster_role, project_roles, table_policy
    from benchpipe.experiment import load_experiment
    from benchpipe.providers.aws import AwsProvider, janitor
    from tests.aws_fixtures import NOTHING_LEFT, count_live

    # The first launch call finds the new profile not yet visible to EC2 (IAM is eventually consistent).
    # moto keeps no profile on spot instances, so what each launch call sends is recorded here.
    sent = []

    def profile_not_yet_visible(params):
        sent.append(params["LaunchSpecification"]["IamInstanceProfile"]["Name"])
        if len(sent) == 1:
            raise ClientError(
                {"Error": {"Code": "InvalidParameterValue", "Message": "Invalid IAM Instance Profile name"}},
                "RequestSpotInstances",
            )

    inject("ec2.RequestSpotInstances", profile_not_yet_visible)
    exp = load_experiment(REPO / "config/experiments/halfmoon/hotel.yaml")
    provider = AwsProvider(aws)
    iam = session.client(aws, "iam")
    # A role left by a provisioning of this same cluster that was killed: replaced, not an error.
    leftover = table_policy("ap-southeast-1", "123456789012", "benchpipe-r7-")
    create_cluster_role(iam, "benchpipe-r7-hotel-unsafe", leftover, {"run-id": "r7"})
    cluster = provider.provision(
        {"machines": exp.machines("baseline")}, name="hotel-unsafe", run_id="r7", experiment="hotel", baseline="unsafe"
    )
    roles = project_roles(iam)
    assert list(roles) == ["benchpipe-r7-hotel-unsafe"]
    assert set(sent) == {"benchpipe-r7-hotel-unsafe"} and len(sent) == len(cluster.hosts) + 1  # one retried
    assert roles["benchpipe-r7-hotel-unsafe"]["run-id"] == "r7"
    doc = iam.get_role_policy(RoleName="benchpipe-r7-hotel-unsafe", PolicyName=POLICY)["PolicyDocument"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    resources = [r for st in doc["Statement"] for r in st["Resource"]]
    assert resources and all(r.startswith("arn:aws:dynamodb:ap-southeast-1:") for r in resources)
    assert all(":table/benchpipe-r7-*" in r for r in resources), "only this run's tables"
    assert iam.list_attached_role_policies(RoleName="benchpipe-r7-hotel-unsafe")["AttachedPolicies"] == []
    provider.teardown(cluster)
    assert count_live(aws) == NOTHING_LEFT
    # A role whose run is over and whose cluster was never torn down: the janitor removes it.
    provider.provision(
        {"machines": exp.machines("baseline")}, name="hotel-boki", run_id="r8", experiment="hotel", baseline="boki"
    )
    assert "role benchpipe-r8-hotel-boki" in janitor(aws, live_runs=set())
    assert count_live(aws)["roles"] == 0


def slow_start(wd: Path, seconds: float) -> None:
    """The stand-in starts `seconds` late: the point stays in its deployment that long."""
    common_path = wd / "config/experiments/halfmoon/_halfmoon.yaml"
    common = yaml.safe_load(common_path.read_text())
    svc = common["stack"]["process"][0]
    svc["argv"] = ["sh", "-c", f'sleep {seconds}; exec "$0" "$@"', *svc["argv"]]
    common_path.write_text(yaml.safe_dump(common))


def manifests(wd: Path) -> list[str]:
    return sorted(str(p.relative_to(wd)) for p in (wd / "results" / "hotel").glob("*/*/manifest.json"))


@pytest.mark.slow
def test_ctrl_c_during_deployment_stops_the_stack_and_resumes(tmp_path):
    wd = make_workdir(tmp_path, baselines=("unsafe",), rates=(20, 40))
    slow_start(wd, 5)  # before the first run: a changed stack would rightly re-measure qps20
    snakemake(wd, "results/hotel/unsafe/qps20/manifest.json")
    before = checksums(wd / "results")
    proc = start(wd)
    wait_for_stack()
    log = wd / "results/logs/hotel/unsafe/qps40/deploy.log"
    assert "stack ready" not in log.read_text(), "the point got past its deployment too soon"
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    assert not harness_processes(mine_only=True)
    assert not list((wd / "results" / ".clusters").glob("*/*.json"))
    assert not (wd / "results/hotel/unsafe/qps40/raw").exists()
    assert manifests(wd) == ["results/hotel/unsafe/qps20/manifest.json"]
    assert_resumes(wd, before, 1)


@pytest.mark.slow
def test_ctrl_c_during_measurement_stops_the_stack_and_resumes(tmp_path):
    wd = make_workdir(tmp_path, baselines=("boki",), rates=(20, 40))
    snakemake(wd, "results/hotel/boki/qps20/manifest.json")
    before = checksums(wd / "results")
    proc = start(wd)
    log = wd / "results/logs/hotel/boki/qps40/run.log"
    wait_for(log.exists, 60, "the measurement to start")
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    proc.wait(timeout=60)
    assert not harness_processes(mine_only=True)
    assert not (wd / "results/hotel/boki/qps40/raw").exists()
    assert manifests(wd) == ["results/hotel/boki/qps20/manifest.json"]
    assert_resumes(wd, before, 1)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs as the results disk needs root (CI has it)")
def test_results_disk_full_mid_point_keeps_what_was_measured(tmp_path):
    wd = make_workdir(tmp_path, baselines=("unsafe",), rates=(20, 40), extra={"results_min_free_mb": 1})
    results = wd / "results"
    results.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(results)], check=True)
    try:
        slow_start(wd, 1)
        snakemake(wd, "results/hotel/unsafe/qps20/manifest.json")
        before = checksums(results)
        proc = start(wd)
        wait_for_stack()
        ballast = fill(results / "ballast")  # the disk fills up while the point runs
        out, _ = proc.communicate(timeout=120)
        text = out.decode()
        assert proc.returncode != 0
        assert "has 0.0 MB free" in text and "results_min_free_mb" in text, text[-3000:]
        assert not harness_processes(mine_only=True)
        assert manifests(wd) == ["results/hotel/unsafe/qps20/manifest.json"]
        assert not (results / "hotel/unsafe/qps40/raw").exists()
        assert unchanged(results, before)
        # Still full: the preflight refuses before anything starts.
        again = snakemake(wd, "figures/hotel.png", check=False)
        assert again.returncode != 0 and "nothing was started" in again.stdout + again.stderr
        ballast.unlink()
        assert_resumes(wd, before, 1)
    finally:
        subprocess.run(["umount", "-l", str(results)], check=False)


def fill(path: Path) -> Path:
    """Write until the disk says it is full."""
    with open(path, "wb", buffering=0) as f:  # unbuffered: close() has nothing left to fail on
        for chunk in (1 << 20, 1 << 12):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass
    return path


@pytest.mark.aws
@pytest.mark.slow
def test_sigkill_on_aws_leaves_the_cluster_to_its_timer_and_the_resume_reuses_it(tmp_path, aws):
    from tests.aws_fixtures import NOTHING_LEFT, count_live
    from tests.test_aws_workflow import aws_workdir

    wd, _ = aws_workdir(tmp_path, aws)
    proc = start(wd)
    wait_for_stack()
    os.kill(proc.pid, signal.SIGKILL)  # the controller only; its running job is orphaned
    proc.wait(timeout=30)
    # The orphaned stage job ends; the point's stack may stay up under its lease for the resume.
    jobs = ("-m benchpipe",)
    wait_for(lambda: not harness_processes(mine_only=True, patterns=jobs), 60, "the orphaned job to finish")
    # Nobody is left to tear the cluster down: its machines power off at `expires` by themselves.
    ec2 = session.client(aws, "ec2")
    instances = [
        i
        for r in ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])[
            "Reservations"
        ]
        for i in r["Instances"]
    ]
    assert len(instances) == 10
    ud = ec2.describe_instance_attribute(InstanceId=instances[0]["InstanceId"], Attribute="userData")
    assert "shutdown -P" in base64.b64decode(ud["UserData"]["Value"]).decode()
    expires = {t["Value"] for i in instances for t in i["Tags"] if t["Key"] == "expires"}
    assert len(expires) == 1
    launched = {i["InstanceId"] for i in instances}
    # Resume: unlock, then the same command reuses the live cluster and takes it down at the end.
    snakemake(wd, "--unlock")
    out = snakemake(wd, "figures/hotel.png")
    assert job_counts(out.stdout + out.stderr).get("run", 0) <= 2
    assert count_live(aws) == NOTHING_LEFT
    used = {
        m["instance_id"]
        for p in (wd / "results/hotel/unsafe").glob("*/manifest.json")
        for m in json.loads(p.read_text())["cluster"]["machines"]
    }
    assert used == launched, "the resumed run provisioned a second cluster instead of reusing the live one"


@pytest.mark.aws
@pytest.mark.slow
def test_host_lost_during_a_point_fails_it_and_the_retry_gets_a_new_cluster(tmp_path, aws):
    from tests.aws_fixtures import NOTHING_LEFT, count_live
    from tests.test_aws_workflow import aws_workdir

    wd, _ = aws_workdir(tmp_path, aws, retries=1)
    snakemake(wd, "results/hotel/unsafe/qps20/manifest.json")
    before = checksums(wd / "results")
    first = json.loads((wd / "results/hotel/unsafe/qps20/manifest.json").read_text())["cluster"]["machines"]
    proc = start(wd)
    wait_for_stack()
    live = json.loads((wd / "results/.clusters/hotel/unsafe.json").read_text())["hosts"]
    victim = live[3]["instance_id"]
    session.client(aws, "ec2").terminate_instances(InstanceIds=[victim])  # a spot interruption
    out, _ = proc.communicate(timeout=300)
    text = out.decode()
    assert proc.returncode == 0, text[-4000:]
    assert f"({victim}) is" in text and "during the point" in text, text[-4000:]
    second = json.loads((wd / "results/hotel/unsafe/qps40/manifest.json").read_text())["cluster"]["machines"]
    assert victim not in {m["instance_id"] for m in second}
    assert len(second) == len(first) == 10
    assert count_live(aws) == NOTHING_LEFT
    assert unchanged(wd / "results", before)
