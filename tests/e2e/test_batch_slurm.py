"""Batch on Slurm: an UNMANAGED compute environment bound to a one-node Slurm cluster (slurmctld +
slurmd on this host, munge) runs the same job definitions as EC2 capacity does — parameters,
environment, exit codes, retries, arrays, logs in CloudWatch Logs, TerminateJob reaching the Slurm
job, timeouts — and an attempt outlives a kill -9 of nimbus."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from batch_support import advance, finished, job, log_lines, shell_def, until
from slurm_support import SlurmCluster, skip_reason
from support import aws_cli_env, aws_client

REASON = skip_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.fixture(scope="module")
def cluster():
    if REASON:
        print(f"Slurm tests skipped: {REASON}")
        pytest.skip(REASON)
    # Not under pytest's temp dirs, which are private to root: a job running as another user
    # reads its script in slurmd's spool and writes its output in nimbus's.
    root = Path(tempfile.mkdtemp(prefix="nimbus-slurm-"))
    root.chmod(0o755)
    slurm = SlurmCluster(root / "cluster")
    # Jobs' output on a directory the "nodes" share, outside nimbus's data directory.
    slurm.spool = root / "spool"
    slurm.spool.mkdir(mode=0o755)
    try:
        slurm.start()
        yield slurm
    finally:
        slurm.stop()
        shutil.rmtree(root, ignore_errors=True)


def slurm_args(cluster):
    return ["--slurm", f"conf={cluster.conf},spool={cluster.spool}"]


@pytest.fixture(scope="module")
def slurm_server(server_factory, cluster):
    return server_factory(extra_args=[*slurm_args(cluster), "--clock", "virtual"])


@pytest.fixture(scope="module")
def batch(slurm_server):
    return aws_client("batch", slurm_server.endpoint)


def slurm_queue(batch, partition):
    env = f"slurm-{uuid.uuid4().hex[:6]}"
    batch.create_compute_environment(computeEnvironmentName=env, type="UNMANAGED", state="ENABLED",
                                     tags={"nimbus:slurm-partition": partition})
    until("environment VALID", lambda: batch.describe_compute_environments(computeEnvironments=[env])
          ["computeEnvironments"][0]["status"] == "VALID")
    name = f"q-{uuid.uuid4().hex[:8]}"
    batch.create_job_queue(jobQueueName=name, priority=1,
                           computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}])
    until("queue VALID", lambda: batch.describe_job_queues(jobQueues=[name])["jobQueues"][0]["status"] == "VALID")
    return name


@pytest.fixture(scope="module")
def queue(batch, cluster):
    return slurm_queue(batch, cluster.partition)


def slurm_state(cluster, slurm_job_name):
    return [line.split("|")[1] for line in cluster.jobs() if line.split("|")[2] == slurm_job_name]


def test_the_same_job_definitions_run_through_slurm(batch, queue, slurm_server, cluster):
    script = ('echo "hello $WHO from slurm job $SLURM_JOB_ID batch job $AWS_BATCH_JOB_ID attempt '
              '$AWS_BATCH_JOB_ATTEMPT queue $AWS_BATCH_JQ_NAME"; echo "$1"; exit "$2"')
    definition = shell_def(
        batch, "", parameters={"word": "default-word", "code": "0"},
        props={"environment": [{"name": "WHO", "value": "batch"}],
               "command": ["sh", "-c", script, "sh", "Ref::word", "Ref::code"]})
    name = f"slurm-{uuid.uuid4().hex[:6]}"
    submitted = batch.submit_job(jobName=name, jobQueue=queue, jobDefinition=definition,
                                 parameters={"word": "given-word"})
    done = finished(batch, submitted["jobId"], timeout=90)
    assert done["status"] == "SUCCEEDED", json.dumps(done, indent=1)
    assert done["container"]["exitCode"] == 0
    assert done["statusReason"] == "Essential container in task exited"
    assert len(done["attempts"]) == 1 and done["startedAt"] <= done["stoppedAt"]
    stream = done["container"]["logStreamName"]
    lines = until("log lines", lambda: (lambda l: l if len(l) >= 2 else None)(
        log_lines(slurm_server.endpoint, stream)))
    assert lines[0].startswith("hello batch from slurm job "), lines
    assert f"batch job {submitted['jobId']} attempt 1 queue {queue}" in lines[0]
    assert lines[1] == "given-word"
    # It was a Slurm job, under the Batch job's name.
    assert slurm_state(cluster, name) == ["COMPLETED"]


def test_exit_codes_and_retries_map_back(batch, queue):
    definition = shell_def(batch, "echo failing; exit 3",
                           retryStrategy={"attempts": 2, "evaluateOnExit": [
                               {"onExitCode": "3", "action": "RETRY"}, {"onReason": "*", "action": "EXIT"}]})
    submitted = batch.submit_job(jobName="fails", jobQueue=queue, jobDefinition=definition)
    done = finished(batch, submitted["jobId"], timeout=90)
    assert done["status"] == "FAILED", done
    assert [a["container"]["exitCode"] for a in done["attempts"]] == [3, 3]
    assert done["container"]["exitCode"] == 3
    assert done["statusReason"] == "Essential container in task exited"


def test_an_array_becomes_one_slurm_job_per_child_with_its_index(batch, queue, slurm_server):
    definition = shell_def(batch, 'echo "index=$AWS_BATCH_JOB_ARRAY_INDEX size=$AWS_BATCH_JOB_ARRAY_SIZE"')
    parent = batch.submit_job(jobName="arr", jobQueue=queue, jobDefinition=definition,
                              arrayProperties={"size": 3})["jobId"]
    done = finished(batch, parent, timeout=120)
    assert done["status"] == "SUCCEEDED", json.dumps(done, indent=1)
    assert done["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 3
    for index in range(3):
        child = job(batch, f"{parent}:{index}")
        lines = until("child's log", lambda: log_lines(slurm_server.endpoint, child["container"]["logStreamName"]))
        assert lines == [f"index={index} size=3"]


def test_terminate_reaches_the_slurm_job(batch, queue, cluster):
    definition = shell_def(batch, "echo started; sleep 120")
    name = f"term-{uuid.uuid4().hex[:6]}"
    running = batch.submit_job(jobName=name, jobQueue=queue, jobDefinition=definition)["jobId"]
    until("RUNNING", lambda: job(batch, running)["status"] == "RUNNING", timeout=60)
    assert slurm_state(cluster, name) == ["RUNNING"]
    batch.terminate_job(jobId=running, reason="stopped by the test")
    done = finished(batch, running, timeout=60)
    assert done["status"] == "FAILED" and done["statusReason"] == "stopped by the test"
    assert done["isTerminated"] is True
    until("the Slurm job ended", lambda: slurm_state(cluster, name) and
          slurm_state(cluster, name)[0] not in ("RUNNING", "PENDING", "COMPLETING"), timeout=30)


def test_an_unknown_partition_fails_the_attempt_to_start(batch, cluster):
    # A partition that does not exist takes nothing: sbatch refuses, the attempt fails to start.
    missing = slurm_queue(batch, "no-such-partition")
    definition = shell_def(batch, "true")
    refused = batch.submit_job(jobName="nowhere", jobQueue=missing, jobDefinition=definition)["jobId"]
    done = finished(batch, refused, timeout=60)
    assert done["status"] == "FAILED" and done["statusReason"] == "Task failed to start"
    assert done["container"]["reason"].startswith("CannotStartContainerError: sbatch: "), done
    assert "partition" in done["container"]["reason"].lower()


def test_a_timeout_stops_the_slurm_job(batch, queue, slurm_server, cluster):
    definition = shell_def(batch, "sleep 300", timeout={"attemptDurationSeconds": 60})
    name = f"slow-{uuid.uuid4().hex[:6]}"
    slow = batch.submit_job(jobName=name, jobQueue=queue, jobDefinition=definition)["jobId"]
    until("RUNNING", lambda: job(batch, slow)["status"] == "RUNNING", timeout=60)
    advance(slurm_server.endpoint, 61)
    done = finished(batch, slow, timeout=60)
    assert done["status"] == "FAILED" and done["statusReason"] == "Job attempt duration exceeded timeout"
    until("the Slurm job ended", lambda: slurm_state(cluster, name) and
          slurm_state(cluster, name)[0] not in ("RUNNING", "PENDING", "COMPLETING"), timeout=30)


def test_image_jobs_are_refused_on_slurm_and_secrets_fail_by_name(batch, queue):
    image = shell_def(batch, "true", props={"image": "busybox:latest"})
    refused = finished(batch, batch.submit_job(jobName="img", jobQueue=queue, jobDefinition=image)["jobId"])
    assert refused["status"] == "FAILED"
    assert "only the image nimbus/host" in refused["container"]["reason"]
    secret = shell_def(batch, "true", props={"secrets": [
        {"name": "TOKEN", "valueFrom": "arn:aws:secretsmanager:us-east-1:000000000000:secret:token-AbCdEf"}]})
    failed = finished(batch, batch.submit_job(jobName="sec", jobQueue=queue, jobDefinition=secret)["jobId"])
    assert failed["status"] == "FAILED" and failed["statusReason"] == "Task failed to start"
    assert failed["container"]["reason"].startswith(
        "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
        "failed: unable to retrieve secret from asm: nimbus does not implement AWS Secrets Manager"), failed


def test_the_aws_cli_submits_to_slurm(queue, slurm_server, tmp_path):
    env = aws_cli_env(slurm_server.endpoint, tmp_path)
    batch = aws_client("batch", slurm_server.endpoint)
    definition = shell_def(batch, "echo from-cli")

    def cli(*args):
        out = subprocess.run(["aws", "batch", *args, "--output", "json"], env=env, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    submitted = cli("submit-job", "--job-name", "cli", "--job-queue", queue, "--job-definition", definition)
    until("SUCCEEDED", lambda: cli("describe-jobs", "--jobs", submitted["jobId"])["jobs"][0]["status"]
          == "SUCCEEDED", timeout=90)


def test_a_slurm_job_outlives_a_kill_9_of_nimbus(server_factory, cluster):
    srv = server_factory(extra_args=slurm_args(cluster))
    batch = aws_client("batch", srv.endpoint)
    queue = slurm_queue(batch, cluster.partition)
    definition = shell_def(batch, "echo before; sleep 4; echo after")
    name = f"survivor-{uuid.uuid4().hex[:6]}"
    survivor = batch.submit_job(jobName=name, jobQueue=queue, jobDefinition=definition)["jobId"]
    until("RUNNING", lambda: job(batch, survivor)["status"] == "RUNNING", timeout=60)
    until("first line forwarded", lambda: log_lines(srv.endpoint, job(batch, survivor)["container"]["logStreamName"]))
    srv.kill()
    srv.start()
    batch = aws_client("batch", srv.endpoint)
    done = finished(batch, survivor, timeout=60)
    assert done["status"] == "SUCCEEDED", json.dumps(done, indent=1)
    assert len(done["attempts"]) == 1
    lines = until("both lines", lambda: (lambda l: l if len(l) >= 2 else None)(
        log_lines(srv.endpoint, done["container"]["logStreamName"])))
    assert lines == ["before", "after"]
    assert slurm_state(cluster, name) == ["COMPLETED"]


def test_user_and_ulimits_reach_the_slurm_job(batch, queue, slurm_server):
    definition = shell_def(batch, 'echo "$(id -un) $(ulimit -n)/$(ulimit -Hn)"', props={
        "user": "nobody", "ulimits": [{"name": "nofile", "softLimit": 321, "hardLimit": 654}]})
    done = finished(batch, batch.submit_job(jobName="who", jobQueue=queue, jobDefinition=definition)["jobId"],
                    timeout=90)
    assert done["status"] == "SUCCEEDED", json.dumps(done, indent=1)
    lines = until("log", lambda: log_lines(slurm_server.endpoint, done["container"]["logStreamName"]))
    assert lines == ["nobody 321/654"]


def test_terminate_while_slurm_still_queues_it_cancels_it_there(batch, queue, cluster):
    # A job holding all eight CPUs of the node keeps the next one in Slurm's queue.
    hog = shell_def(batch, "sleep 120", vcpus=8)
    waiting_def = shell_def(batch, "echo never")
    hog_name, waiting_name = f"hog-{uuid.uuid4().hex[:6]}", f"queued-{uuid.uuid4().hex[:6]}"
    holding = batch.submit_job(jobName=hog_name, jobQueue=queue, jobDefinition=hog)["jobId"]
    until("the hog RUNNING", lambda: job(batch, holding)["status"] == "RUNNING", timeout=60)
    waiting = batch.submit_job(jobName=waiting_name, jobQueue=queue, jobDefinition=waiting_def)["jobId"]
    until("queued in Slurm", lambda: slurm_state(cluster, waiting_name) == ["PENDING"], timeout=60)
    assert job(batch, waiting)["status"] == "STARTING"
    batch.terminate_job(jobId=waiting, reason="not needed")
    done = finished(batch, waiting, timeout=60)
    assert done["status"] == "FAILED" and done["statusReason"] == "not needed"
    assert "startedAt" not in done
    until("cancelled in Slurm", lambda: slurm_state(cluster, waiting_name) == ["CANCELLED"], timeout=30)
    batch.terminate_job(jobId=holding, reason="done")
    assert finished(batch, holding, timeout=60)["status"] == "FAILED"
