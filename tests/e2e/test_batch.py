"""AWS Batch end to end: compute environments launching real EC2 instances (on demand and spot),
queues, job definitions, and jobs that run real shell commands inside those instances — with
arrays, dependencies, retries, timeouts, spot interruptions and checkpoints, cancel/terminate,
scale-out and scale-in, and a kill -9 of nimbus in the middle."""


from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError

from batch_support import (CAPACITY, admin, advance, batch, batch_server, finished, job, log_lines,  # noqa: F401
                           make_env, make_queue, queue, shell_def, until)
from support import aws_client


def test_a_job_runs_a_real_command_and_its_output_reaches_cloudwatch_logs(batch, batch_server, queue):
    name, spot, _ = queue
    definition = shell_def(
        batch, "", parameters={"greeting": "hello"},
        props={"command": ["sh", "-c", 'echo "$1 from $AWS_BATCH_JQ_NAME on $AWS_BATCH_CE_NAME attempt $AWS_BATCH_JOB_ATTEMPT $MODE"',
                           "sh", "Ref::greeting"],
               "environment": [{"name": "MODE", "value": "default"}]})
    submitted = batch.submit_job(jobName="hello", jobQueue=name, jobDefinition=definition,
                                 parameters={"greeting": "bonjour"},
                                 containerOverrides={"environment": [{"name": "MODE", "value": "override"}]})
    done = finished(batch, submitted["jobId"])
    assert done["status"] == "SUCCEEDED", done
    assert done["statusReason"] == "Essential container in task exited"
    assert done["createdAt"] <= done["startedAt"] <= done["stoppedAt"]
    [attempt] = done["attempts"]
    assert attempt["container"]["exitCode"] == 0
    stream = attempt["container"]["logStreamName"]
    assert stream.startswith(f"{definition}/default/") and len(stream.rsplit("/", 1)[1]) == 32
    assert attempt["container"]["taskArn"].startswith("arn:aws:ecs:us-east-1:")
    lines = until("the output in CloudWatch Logs", lambda: log_lines(batch_server.endpoint, stream))
    assert lines == [f"bonjour from {name} on {spot} attempt 1 override"]
    # The aws CLI sees the same job.
    out = subprocess.run(["aws", "batch", "describe-jobs", "--jobs", submitted["jobId"], "--endpoint-url",
                          batch_server.endpoint, "--region", "us-east-1", "--output", "json"],
                         capture_output=True, text=True, env={**os.environ, "AWS_ACCESS_KEY_ID": "x",
                                                              "AWS_SECRET_ACCESS_KEY": "x"}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["jobs"][0]["status"] == "SUCCEEDED"
    listed = batch.list_jobs(jobQueue=name, jobStatus="SUCCEEDED")["jobSummaryList"]
    assert submitted["jobId"] in [j["jobId"] for j in listed]


def test_an_array_of_100_with_an_n_to_n_dependant_and_a_sequential_array(batch, batch_server, queue, tmp_path):
    name = queue[0]
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    volume = {"volumes": [{"name": "shared", "host": {"sourcePath": str(shared)}}],
              "mountPoints": [{"sourceVolume": "shared", "containerPath": "/shared"}]}
    first = shell_def(batch, 'echo $AWS_BATCH_JOB_ARRAY_INDEX > /shared/a-$AWS_BATCH_JOB_ARRAY_INDEX', props=volume)
    second = shell_def(batch, 'test -f /shared/a-$AWS_BATCH_JOB_ARRAY_INDEX && touch /shared/b-$AWS_BATCH_JOB_ARRAY_INDEX',
                       props=volume)
    third = shell_def(batch, 'echo $AWS_BATCH_JOB_ARRAY_INDEX >> /shared/sequence', props=volume)
    a = batch.submit_job(jobName="a", jobQueue=name, jobDefinition=first, arrayProperties={"size": 100})["jobId"]
    b = batch.submit_job(jobName="b", jobQueue=name, jobDefinition=second, arrayProperties={"size": 100},
                         dependsOn=[{"jobId": a, "type": "N_TO_N"}])["jobId"]
    c = batch.submit_job(jobName="c", jobQueue=name, jobDefinition=third, arrayProperties={"size": 5},
                         dependsOn=[{"type": "SEQUENTIAL"}])["jobId"]
    for parent in (a, b, c):
        done = finished(batch, parent, timeout=120)
        assert done["status"] == "SUCCEEDED", done
    summary = job(batch, a)["arrayProperties"]
    assert summary["size"] == 100
    assert summary["statusSummary"] == {"SUBMITTED": 0, "PENDING": 0, "RUNNABLE": 0, "STARTING": 0, "RUNNING": 0,
                                        "SUCCEEDED": 100, "FAILED": 0}
    assert len(list(shared.glob("b-*"))) == 100
    assert (shared / "sequence").read_text().split() == ["0", "1", "2", "3", "4"]
    child = job(batch, f"{b}:7")
    assert child["arrayProperties"] == {"index": 7}
    assert child["dependsOn"] == [{"jobId": f"{a}:7", "type": "N_TO_N"}]
    # The children, a page at a time.
    page = batch.list_jobs(arrayJobId=a, jobStatus="SUCCEEDED", maxResults=60)
    rest = batch.list_jobs(arrayJobId=a, jobStatus="SUCCEEDED", maxResults=60, nextToken=page["nextToken"])
    ids = {j["jobId"] for j in page["jobSummaryList"] + rest["jobSummaryList"]}
    assert ids == {f"{a}:{i}" for i in range(100)}


def test_retries_follow_exit_codes_and_a_failed_dependency_fails_its_dependants(batch, queue):
    name = queue[0]
    strategy = {"attempts": 3, "evaluateOnExit": [{"onExitCode": "3", "action": "RETRY"},
                                                  {"onReason": "*", "action": "EXIT"}]}
    flaky = shell_def(batch, '[ "$AWS_BATCH_JOB_ATTEMPT" -ge 2 ] && exit 0; exit 3', retryStrategy=strategy)
    done = finished(batch, batch.submit_job(jobName="flaky", jobQueue=name, jobDefinition=flaky)["jobId"])
    assert done["status"] == "SUCCEEDED"
    assert [a["container"]["exitCode"] for a in done["attempts"]] == [3, 0]
    broken = shell_def(batch, "exit 4", retryStrategy=strategy)
    failed = batch.submit_job(jobName="broken", jobQueue=name, jobDefinition=broken)["jobId"]
    dependant = batch.submit_job(jobName="after", jobQueue=name, jobDefinition=flaky,
                                 dependsOn=[{"jobId": failed}])["jobId"]
    done = finished(batch, failed)
    assert done["status"] == "FAILED" and len(done["attempts"]) == 1
    assert done["attempts"][0]["container"]["exitCode"] == 4
    after = finished(batch, dependant)
    assert after["status"] == "FAILED"
    assert after["statusReason"] == "Dependent Job failed"
    assert after["attempts"] == []


def test_other_images_fail_to_start_and_bad_input_is_refused(batch, queue):
    name = queue[0]
    other = f"def-{uuid.uuid4().hex[:8]}"
    batch.register_job_definition(jobDefinitionName=other, type="container", containerProperties={
        "image": "busybox:latest", "command": ["true"], "resourceRequirements": [
            {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}]})
    done = finished(batch, batch.submit_job(jobName="img", jobQueue=name, jobDefinition=other)["jobId"])
    assert done["status"] == "FAILED"
    assert done["statusReason"] == "Task failed to start"
    assert done["attempts"][0]["container"]["reason"].startswith("CannotPullContainerError: ")
    with pytest.raises(ClientError) as refused:
        batch.register_job_definition(jobDefinitionName="priv", type="container", containerProperties={
            "image": "nimbus/host", "command": ["true"], "vcpus": 1, "memory": 128, "privileged": True})
    assert refused.value.response["Error"]["Code"] == "ClientException"
    assert "privileged" in refused.value.response["Error"]["Message"]
    with pytest.raises(batch.exceptions.ClientException):
        batch.submit_job(jobName="x", jobQueue=name, jobDefinition=other, arrayProperties={"size": 1})
    with pytest.raises(batch.exceptions.ClientException):
        batch.submit_job(jobName="x", jobQueue="nope", jobDefinition=other)
    with pytest.raises(batch.exceptions.ClientException):
        batch.create_compute_environment(computeEnvironmentName=queue[1], type="MANAGED", computeResources={
            "type": "EC2", "maxvCpus": 4, "instanceTypes": ["optimal"]})


def test_a_spot_interruption_retries_the_job_elsewhere_and_it_resumes_from_its_checkpoint(batch, batch_server):
    spot = make_env(batch, f"spot-{uuid.uuid4().hex[:6]}", kind="SPOT", max_vcpus=8, types=("c6i.large",))
    name = make_queue(batch, spot)
    script = (
        'D=$NIMBUS_CHECKPOINT_DIR; '
        'if [ -f $D/state ]; then echo "resumed from $(cat $D/state) on attempt $AWS_BATCH_JOB_ATTEMPT"; exit 0; fi; '
        "trap 'echo got SIGTERM; echo step-1 > $D/state; exit 143' TERM; "
        'echo working; while :; do sleep 0.1; done'
    )
    strategy = {"attempts": 2, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "RETRY"},
                                                  {"onReason": "*", "action": "EXIT"}]}
    definition = shell_def(batch, script, retryStrategy=strategy)
    job_id = batch.submit_job(jobName="ckpt", jobQueue=name, jobDefinition=definition)["jobId"]
    running = until("running", lambda: (lambda j: j if j["status"] == "RUNNING" else None)(job(batch, job_id)))
    instance = "i-" + running["container"]["containerInstanceArn"].rsplit("/", 1)[1]
    # Its trap is set once it says so.
    until("working", lambda: log_lines(batch_server.endpoint, running["container"]["logStreamName"]))
    admin(batch_server.endpoint, f"/_nimbus/ec2/interrupt?instance={instance}", method="POST")
    done = finished(batch, job_id)
    assert done["status"] == "SUCCEEDED", done
    first, second = done["attempts"]
    assert first["statusReason"] == f"Host EC2 (instance {instance}) terminated."
    assert second["container"]["containerInstanceArn"] != first["container"]["containerInstanceArn"]
    assert log_lines(batch_server.endpoint, first["container"]["logStreamName"]) == ["working", "got SIGTERM"]
    assert log_lines(batch_server.endpoint, second["container"]["logStreamName"]) == [
        "resumed from step-1 on attempt 2"]


def test_a_job_past_its_timeout_is_stopped_and_not_retried(batch, batch_server, queue):
    name = queue[0]
    definition = shell_def(batch, "trap 'exit 143' TERM; while :; do sleep 0.1; done",
                           timeout={"attemptDurationSeconds": 60}, retryStrategy={"attempts": 3})
    job_id = batch.submit_job(jobName="slow", jobQueue=name, jobDefinition=definition)["jobId"]
    until("running", lambda: job(batch, job_id)["status"] == "RUNNING")
    advance(batch_server.endpoint, 61)
    done = finished(batch, job_id)
    assert done["status"] == "FAILED"
    assert done["statusReason"] == "Job attempt duration exceeded timeout"
    assert len(done["attempts"]) == 1


def test_cancel_and_terminate(batch, batch_server, queue):
    name = queue[0]
    # A queue whose only environment is disabled holds its jobs RUNNABLE.
    held = make_env(batch, f"off-{uuid.uuid4().hex[:6]}", state="DISABLED")
    parked = make_queue(batch, held)
    definition = shell_def(batch, "trap 'exit 143' TERM; echo ready; while :; do sleep 0.1; done")
    waiting = batch.submit_job(jobName="waiting", jobQueue=parked, jobDefinition=definition)["jobId"]
    until("runnable", lambda: job(batch, waiting)["status"] == "RUNNABLE")
    batch.cancel_job(jobId=waiting, reason="not needed")
    cancelled = job(batch, waiting)
    assert (cancelled["status"], cancelled["statusReason"], cancelled["isCancelled"]) == ("FAILED", "not needed", True)
    running = batch.submit_job(jobName="running", jobQueue=name, jobDefinition=definition)["jobId"]
    started = until("running", lambda: (lambda j: j if j["status"] == "RUNNING" else None)(job(batch, running)))
    until("ready", lambda: log_lines(batch_server.endpoint, started["container"]["logStreamName"]))
    batch.cancel_job(jobId=running, reason="too late to cancel")
    assert job(batch, running)["status"] == "RUNNING"
    batch.terminate_job(jobId=running, reason="stop it")
    done = finished(batch, running)
    assert (done["status"], done["statusReason"], done["isTerminated"]) == ("FAILED", "stop it", True)
    assert done["attempts"][0]["container"]["exitCode"] == 143


def test_scale_out_to_max_and_in_to_min(server_factory, tmp_path):
    srv = server_factory(extra_args=[*CAPACITY, "--clock", "virtual", "--batch-idle-seconds", "120"])
    batch = aws_client("batch", srv.endpoint)
    ec2 = aws_client("ec2", srv.endpoint)
    env = make_env(batch, "scaling", min_vcpus=2, max_vcpus=8, types=("c6i.large",))

    def instances():
        found = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])
        return [i for r in found["Reservations"] for i in r["Instances"]]

    until("minvCpus launched", lambda: len(instances()) == 1)
    name = make_queue(batch, env)
    gate = tmp_path / "gate"
    gate.mkdir()
    os.chmod(gate, 0o777)
    volume = {"volumes": [{"name": "gate", "host": {"sourcePath": str(gate)}}],
              "mountPoints": [{"sourceVolume": "gate", "containerPath": "/gate"}]}
    definition = shell_def(batch, "while [ ! -f /gate/open ]; do sleep 0.05; done", vcpus=2, memory=1024, props=volume)
    ids = [batch.submit_job(jobName=f"w{i}", jobQueue=name, jobDefinition=definition)["jobId"] for i in range(6)]
    until("four running", lambda: sum(job(batch, i)["status"] == "RUNNING" for i in ids) == 4)
    assert len(instances()) == 4
    assert {i["InstanceType"] for i in instances()} == {"c6i.large"}
    ce = batch.describe_compute_environments(computeEnvironments=[env])["computeEnvironments"][0]
    assert ce["computeResources"]["desiredvCpus"] == 8
    assert sorted(job(batch, i)["status"] for i in ids)[:2] == ["RUNNABLE", "RUNNABLE"]
    (gate / "open").touch()
    for i in ids:
        assert finished(batch, i)["status"] == "SUCCEEDED"
    assert len(instances()) == 4
    advance(srv.endpoint, 121)
    until("scaled in to minvCpus", lambda: len(instances()) == 1)
    ce = batch.describe_compute_environments(computeEnvironments=[env])["computeEnvironments"][0]
    assert ce["computeResources"]["desiredvCpus"] == 2


def test_after_kill_9_queued_jobs_run_and_running_ones_are_retried(server_factory, tmp_path):
    srv = server_factory(extra_args=[*CAPACITY])
    batch = aws_client("batch", srv.endpoint)
    env = make_env(batch, "durable", max_vcpus=2, types=("c6i.large",))
    name = make_queue(batch, env)
    definition = shell_def(batch, 'echo "attempt $AWS_BATCH_JOB_ATTEMPT"; [ "$AWS_BATCH_JOB_ATTEMPT" -ge 2 ] || sleep 600',
                           vcpus=2, memory=1024, retryStrategy={"attempts": 2})
    running = batch.submit_job(jobName="running", jobQueue=name, jobDefinition=definition)["jobId"]
    until("running", lambda: job(batch, running)["status"] == "RUNNING")
    quick = shell_def(batch, "echo quick", vcpus=2, memory=1024)
    queued = batch.submit_job(jobName="queued", jobQueue=name, jobDefinition=quick)["jobId"]
    until("queued runnable", lambda: job(batch, queued)["status"] == "RUNNABLE")
    # The running job's /tmp, and its instance's next job's made ahead, on the instance's disk.
    left = until("job /tmp directories", lambda: list(srv.data_dir.glob("**/instances/i-*/tmp/*")))
    srv.kill()
    srv.start()
    batch = aws_client("batch", srv.endpoint)
    done = finished(batch, running)
    assert done["status"] == "SUCCEEDED", done
    assert done["attempts"][0]["statusReason"].startswith("Host EC2 (instance i-")
    assert finished(batch, queued)["status"] == "SUCCEEDED"
    assert not [path for path in left if path.exists()], "what the killed nimbus's jobs left in /tmp is removed"
