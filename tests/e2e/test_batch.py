"""AWS Batch end to end: compute environments launching real EC2 instances (on demand and spot),
queues, job definitions, and jobs that run real shell commands inside those instances — with
arrays, dependencies, retries, timeouts, spot interruptions and checkpoints, cancel/terminate,
scale-out and scale-in, and a kill -9 of nimbus in the middle."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

from support import aws_client

NOTICE_SECONDS = 2
# Instances hold a sixteenth of their type: a queue of many instances fits the test machine.
CAPACITY = ["--capacity", "vcpus=256,memory=256,scale=16", "--spot-notice-seconds", str(NOTICE_SECONDS)]


def until(what, check, timeout=30.0, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def admin(endpoint, path, method="GET"):
    request = urllib.request.Request(endpoint + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def advance(endpoint, seconds):
    admin(endpoint, f"/_nimbus/clock/advance?seconds={seconds}", method="POST")


@pytest.fixture(scope="module")
def batch_server(server_factory):
    return server_factory(extra_args=[*CAPACITY, "--clock", "virtual"])


@pytest.fixture(scope="module")
def batch(batch_server):
    return aws_client("batch", batch_server.endpoint)


def make_env(batch, name, kind="EC2", min_vcpus=0, max_vcpus=16, types=("optimal",), state="ENABLED", **extra):
    resources = {"type": kind, "minvCpus": min_vcpus, "maxvCpus": max_vcpus, "instanceTypes": list(types),
                 "subnets": ["subnet-1"], "securityGroupIds": ["sg-1"], "instanceRole": "ecsInstanceRole", **extra}
    batch.create_compute_environment(computeEnvironmentName=name, type="MANAGED", state=state,
                                     computeResources=resources)
    until(f"{name} VALID", lambda: batch.describe_compute_environments(computeEnvironments=[name])
          ["computeEnvironments"][0]["status"] == "VALID")
    return name


def make_queue(batch, *envs, priority=1):
    name = f"q-{uuid.uuid4().hex[:8]}"
    order = [{"order": i + 1, "computeEnvironment": env} for i, env in enumerate(envs)]
    batch.create_job_queue(jobQueueName=name, priority=priority, computeEnvironmentOrder=order)
    until("queue VALID", lambda: batch.describe_job_queues(jobQueues=[name])["jobQueues"][0]["status"] == "VALID")
    return name


def shell_def(batch, script, vcpus=1, memory=256, **extra):
    name = f"def-{uuid.uuid4().hex[:8]}"
    props = {"image": "nimbus/host", "command": ["sh", "-c", script], "vcpus": vcpus, "memory": memory}
    props.update(extra.pop("props", {}))
    batch.register_job_definition(jobDefinitionName=name, type="container", containerProperties=props, **extra)
    return name


def job(batch, job_id):
    return batch.describe_jobs(jobs=[job_id])["jobs"][0]


def finished(batch, job_id, timeout=60.0):
    return until(f"job {job_id} finished",
                 lambda: (lambda j: j if j["status"] in ("SUCCEEDED", "FAILED") else None)(job(batch, job_id)),
                 timeout=timeout)


def log_lines(endpoint, stream):
    logs = aws_client("logs", endpoint)
    try:
        events = logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=stream, startFromHead=True)["events"]
    except ClientError as error:  # not written yet
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        return []
    return [e["message"] for e in events]


@pytest.fixture(scope="module")
def queue(batch):
    spot = make_env(batch, f"spot-{uuid.uuid4().hex[:6]}", kind="SPOT", max_vcpus=32,
                    allocationStrategy="SPOT_PRICE_CAPACITY_OPTIMIZED", bidPercentage=100)
    on_demand = make_env(batch, f"od-{uuid.uuid4().hex[:6]}", max_vcpus=32)
    return make_queue(batch, spot, on_demand), spot, on_demand


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
    srv.kill()
    srv.start()
    batch = aws_client("batch", srv.endpoint)
    done = finished(batch, running)
    assert done["status"] == "SUCCEEDED", done
    assert done["attempts"][0]["statusReason"].startswith("Host EC2 (instance i-")
    assert finished(batch, queued)["status"] == "SUCCEEDED"


def test_a_nightly_rule_submits_a_job_and_its_state_changes_reach_eventbridge(batch, batch_server, queue):
    name = queue[0]
    events = aws_client("events", batch_server.endpoint)
    sqs = aws_client("sqs", batch_server.endpoint)
    url = sqs.create_queue(QueueName=f"changes-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    watcher = f"batch-{uuid.uuid4().hex[:8]}"
    events.put_rule(Name=watcher, EventPattern=json.dumps({"source": ["aws.batch"],
                                                           "detail-type": ["Batch Job State Change"]}))
    events.put_targets(Rule=watcher, Targets=[{"Id": "q", "Arn": queue_arn}])
    definition = shell_def(batch, "", props={"command": ["echo", "Ref::who"]}, parameters={"who": "day"})
    nightly = f"nightly-{uuid.uuid4().hex[:8]}"
    job_queue_arn = batch.describe_job_queues(jobQueues=[name])["jobQueues"][0]["jobQueueArn"]
    events.put_rule(Name=nightly, ScheduleExpression="cron(0 2 * * ? *)")
    events.put_targets(Rule=nightly, Targets=[{
        "Id": "job", "Arn": job_queue_arn, "RoleArn": "arn:aws:iam::000000000000:role/events",
        "BatchParameters": {"JobDefinition": definition, "JobName": nightly},
        "Input": json.dumps({"Parameters": {"who": "night"}})}])
    advance(batch_server.endpoint, 24 * 3600)
    listed = until("the nightly job", lambda: batch.list_jobs(
        jobQueue=name, filters=[{"name": "JOB_NAME", "values": [nightly]}])["jobSummaryList"])
    done = finished(batch, listed[0]["jobId"])
    assert done["status"] == "SUCCEEDED"
    stream = done["attempts"][0]["container"]["logStreamName"]
    assert until("output", lambda: log_lines(batch_server.endpoint, stream)) == ["night"]
    seen = []

    def changes():
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            event = json.loads(message["Body"])
            if event["detail"]["jobId"] == done["jobId"]:
                assert event["source"] == "aws.batch" and event["resources"] == [done["jobArn"]]
                seen.append(event["detail"]["status"])
        return "SUCCEEDED" in seen

    until("the state changes", changes)
    assert seen == ["RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]


def test_a_schedule_submits_a_job_through_the_universal_target(batch, batch_server, queue):
    name = queue[0]
    scheduler = aws_client("scheduler", batch_server.endpoint)
    definition = shell_def(batch, "echo scheduled")
    job_name = f"sched-{uuid.uuid4().hex[:8]}"
    scheduler.create_schedule(
        Name=job_name, ScheduleExpression="rate(1 hour)", FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": "arn:aws:scheduler:::aws-sdk:batch:submitJob", "RoleArn": "arn:aws:iam::000000000000:role/s",
                "Input": json.dumps({"JobName": job_name, "JobQueue": name, "JobDefinition": definition,
                                     "ArrayProperties": {"Size": 2}})})
    advance(batch_server.endpoint, 3601)
    listed = until("the scheduled job", lambda: batch.list_jobs(
        jobQueue=name, filters=[{"name": "JOB_NAME", "values": [job_name]}])["jobSummaryList"])
    done = finished(batch, listed[0]["jobId"])
    assert done["status"] == "SUCCEEDED" and done["arrayProperties"]["size"] == 2
    scheduler.delete_schedule(Name=job_name)


def test_the_nimbus_cli_shows_queues_and_a_jobs_logs(batch, batch_server, queue, nimbus_bin):
    name = queue[0]
    definition = shell_def(batch, "echo line one; echo line two")
    job_id = batch.submit_job(jobName="cli", jobQueue=name, jobDefinition=definition)["jobId"]
    finished(batch, job_id)

    def nimbus(*args):
        out = subprocess.run([str(nimbus_bin), *args, "--endpoint", batch_server.endpoint],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout

    listing = nimbus("jobs")
    assert name in listing and job_id in listing
    overview = json.loads(nimbus("jobs", "--json"))
    assert overview["queues"][name]["SUCCEEDED"] >= 1
    assert until("logs", lambda: nimbus("jobs", "logs", job_id) == "line one\nline two\n")


def test_definitions_revisions_queues_and_environments_follow_aws_rules(batch):
    name = f"rev-{uuid.uuid4().hex[:8]}"
    props = {"image": "nimbus/host", "command": ["true"], "vcpus": 1, "memory": 64}
    first = batch.register_job_definition(jobDefinitionName=name, type="container", containerProperties=props)
    second = batch.register_job_definition(jobDefinitionName=name, type="container", containerProperties=props)
    assert (first["revision"], second["revision"]) == (1, 2)
    batch.deregister_job_definition(jobDefinition=f"{name}:1")
    described = batch.describe_job_definitions(jobDefinitionName=name)["jobDefinitions"]
    assert {(d["revision"], d["status"]) for d in described} == {(1, "INACTIVE"), (2, "ACTIVE")}
    env = make_env(batch, f"rules-{uuid.uuid4().hex[:6]}")
    queue_name = make_queue(batch, env)
    queue_arn = batch.describe_job_queues(jobQueues=[queue_name])["jobQueues"][0]["jobQueueArn"]
    batch.tag_resource(resourceArn=queue_arn, tags={"team": "data", "env": "test"})
    batch.untag_resource(resourceArn=queue_arn, tagKeys=["env"])
    assert batch.list_tags_for_resource(resourceArn=queue_arn)["tags"] == {"team": "data"}
    assert batch.list_tags_for_resource(resourceArn=second["jobDefinitionArn"])["tags"] == {}
    with pytest.raises(batch.exceptions.ClientException):
        batch.list_tags_for_resource(resourceArn=queue_arn + "-nope")
    with pytest.raises(batch.exceptions.ClientException):
        batch.delete_compute_environment(computeEnvironment=env)
    with pytest.raises(batch.exceptions.ClientException):
        batch.delete_job_queue(jobQueue=queue_name)
    with pytest.raises(batch.exceptions.ClientException):
        batch.update_compute_environment(computeEnvironment=env, computeResources={"minvCpus": 4, "maxvCpus": 2})
    batch.update_job_queue(jobQueue=queue_name, state="DISABLED", priority=5)
    until("queue updated", lambda: batch.describe_job_queues(jobQueues=[queue_name])["jobQueues"][0]["status"] == "VALID")
    assert batch.describe_job_queues(jobQueues=[queue_name])["jobQueues"][0]["priority"] == 5
    batch.delete_job_queue(jobQueue=queue_name)
    until("queue gone", lambda: batch.describe_job_queues(jobQueues=[queue_name])["jobQueues"] == [])
    batch.update_compute_environment(computeEnvironment=env, state="DISABLED")
    batch.delete_compute_environment(computeEnvironment=env)
    until("environment gone",
          lambda: batch.describe_compute_environments(computeEnvironments=[env])["computeEnvironments"] == [])
    bad = f"bad-{uuid.uuid4().hex[:6]}"
    batch.create_compute_environment(computeEnvironmentName=bad, type="MANAGED", computeResources={
        "type": "EC2", "maxvCpus": 4, "instanceTypes": ["x9z.large"]})
    invalid = until("INVALID", lambda: (lambda ce: ce if ce["status"] == "INVALID" else None)(
        batch.describe_compute_environments(computeEnvironments=[bad])["computeEnvironments"][0]))
    assert invalid["statusReason"] == "CLIENT_ERROR - Instance type x9z.large is not supported"


def test_fair_share_takes_turns_between_share_identifiers(batch):
    policy = batch.create_scheduling_policy(name=f"fair-{uuid.uuid4().hex[:6]}", fairsharePolicy={
        "shareDecaySeconds": 3600, "shareDistribution": [{"shareIdentifier": "alpha", "weightFactor": 1.0},
                                                         {"shareIdentifier": "beta*", "weightFactor": 1.0}]})["arn"]
    assert batch.describe_scheduling_policies(arns=[policy])["schedulingPolicies"][0]["fairsharePolicy"][
        "shareDecaySeconds"] == 3600
    env = make_env(batch, f"fair-{uuid.uuid4().hex[:6]}", max_vcpus=2, types=("c6i.large",))
    name = f"fq-{uuid.uuid4().hex[:6]}"
    batch.create_job_queue(jobQueueName=name, priority=1, schedulingPolicyArn=policy,
                           computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}])
    until("queue VALID", lambda: batch.describe_job_queues(jobQueues=[name])["jobQueues"][0]["status"] == "VALID")
    definition = shell_def(batch, "sleep 0.3", vcpus=2, memory=512)
    with pytest.raises(batch.exceptions.ClientException):
        batch.submit_job(jobName="noshare", jobQueue=name, jobDefinition=definition)
    alpha = [batch.submit_job(jobName=f"a{i}", jobQueue=name, jobDefinition=definition,
                              shareIdentifier="alpha")["jobId"] for i in range(3)]
    beta = [batch.submit_job(jobName=f"b{i}", jobQueue=name, jobDefinition=definition,
                             shareIdentifier="beta1")["jobId"] for i in range(2)]
    done = {i: finished(batch, i) for i in alpha + beta}
    order = sorted(done, key=lambda i: done[i]["startedAt"])
    # After alpha's first job has used the capacity, beta goes before alpha's second.
    assert order.index(beta[0]) < order.index(alpha[1]), [done[i]["jobName"] for i in order]
    assert all(j["status"] == "SUCCEEDED" for j in done.values())


def test_a_blocked_job_says_why_and_the_queues_time_limit_cancels_it(batch, batch_server):
    small = make_env(batch, f"small-{uuid.uuid4().hex[:6]}", max_vcpus=2)
    name = f"tl-{uuid.uuid4().hex[:6]}"
    reason = "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"
    batch.create_job_queue(jobQueueName=name, priority=1, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": small}],
                           jobStateTimeLimitActions=[{"reason": reason, "state": "RUNNABLE", "maxTimeSeconds": 600,
                                                      "action": "CANCEL"}])
    until("queue VALID", lambda: batch.describe_job_queues(jobQueues=[name])["jobQueues"][0]["status"] == "VALID")
    definition = shell_def(batch, "true", vcpus=4, memory=512)
    job_id = batch.submit_job(jobName="big", jobQueue=name, jobDefinition=definition)["jobId"]
    blocked = until("blocked", lambda: (lambda j: j if (j.get("statusReason") or "").startswith(reason) else None)(
        job(batch, job_id)))
    assert blocked["status"] == "RUNNABLE"
    advance(batch_server.endpoint, 601)
    done = finished(batch, job_id)
    assert done["status"] == "FAILED"
    assert done["statusReason"] == f"Canceled by JobStateTimeLimit action due to reason: {reason}"
    with pytest.raises(batch.exceptions.ClientException):
        batch.update_job_queue(jobQueue=name, jobStateTimeLimitActions=[
            {"reason": reason, "state": "RUNNABLE", "maxTimeSeconds": 10, "action": "CANCEL"}])


def test_a_job_is_held_to_its_memory_and_fargate_runs_a_job_on_its_own_capacity(batch, queue):
    name = queue[0]
    # 256 MiB for the job, a sixteenth of it on this host (`scale=16`): 64 MiB is past it.
    hungry = shell_def(batch, "", memory=256, props={"command": ["python3", "-c", "x = bytearray(64 << 20); print(len(x))"]})
    done = finished(batch, batch.submit_job(jobName="hungry", jobQueue=name, jobDefinition=hungry)["jobId"])
    assert done["status"] == "FAILED"
    assert done["attempts"][0]["container"]["reason"] == "OutOfMemoryError: Container killed due to memory usage"
    assert done["attempts"][0]["container"]["exitCode"] == 137
    fargate = f"fg-{uuid.uuid4().hex[:6]}"
    batch.create_compute_environment(computeEnvironmentName=fargate, type="MANAGED",
                                     computeResources={"type": "FARGATE", "maxvCpus": 4, "subnets": ["subnet-1"]})
    until("VALID", lambda: batch.describe_compute_environments(computeEnvironments=[fargate])
          ["computeEnvironments"][0]["status"] == "VALID")
    fargate_queue = make_queue(batch, fargate)
    definition = f"fgdef-{uuid.uuid4().hex[:6]}"
    batch.register_job_definition(jobDefinitionName=definition, type="container", platformCapabilities=["FARGATE"],
                                  containerProperties={"image": "nimbus/host", "command": ["echo", "serverless"],
                                                       "resourceRequirements": [{"type": "VCPU", "value": "0.5"},
                                                                                {"type": "MEMORY", "value": "1024"}]})
    done = finished(batch, batch.submit_job(jobName="fg", jobQueue=fargate_queue, jobDefinition=definition)["jobId"])
    assert done["status"] == "SUCCEEDED", done
    with pytest.raises(batch.exceptions.ClientException):
        batch.register_job_definition(jobDefinitionName=definition, type="container", platformCapabilities=["FARGATE"],
                                      containerProperties={"image": "nimbus/host", "command": ["true"], "resourceRequirements": [
                                          {"type": "VCPU", "value": "3"}, {"type": "MEMORY", "value": "1024"}]})


@pytest.mark.skipif(not os.environ.get("NIMBUS_TEST_DATABASE"), reason="several nodes need PostgreSQL")
def test_two_nodes_one_scheduler_and_a_killed_leaders_jobs_are_retried(server_factory, tmp_path_factory):
    import conftest
    url = conftest.fresh_database_url("batchnodes")
    shared = tmp_path_factory.mktemp("shared")
    args = lambda name: [*CAPACITY, "--database", url, "--shared-dir", str(shared), "--node", name,
                         "--node-expiry", "2"]
    a, b = server_factory(extra_args=args("a")), server_factory(extra_args=args("b"))
    batch_a, batch_b = aws_client("batch", a.endpoint), aws_client("batch", b.endpoint)
    env = make_env(batch_a, "shared-ce", max_vcpus=8, types=("c6i.large",))
    name = make_queue(batch_a, env)
    definition = shell_def(batch_a, '[ "$AWS_BATCH_JOB_ATTEMPT" -ge 2 ] || sleep 600', retryStrategy={"attempts": 2})
    job_id = batch_b.submit_job(jobName="across", jobQueue=name, jobDefinition=definition)["jobId"]
    until("running", lambda: job(batch_b, job_id)["status"] == "RUNNING")
    leader, survivor = (a, batch_b) if admin(a.endpoint, "/_nimbus/batch/jobs")["instances"] else (b, batch_a)
    leader.kill()
    done = finished(survivor, job_id, timeout=90)
    assert done["status"] == "SUCCEEDED", done
    assert done["attempts"][0]["statusReason"].startswith("Host EC2 (instance i-")


def test_any_output_reaches_the_logs_and_never_blocks_the_job(batch, batch_server, queue):
    name = queue[0]
    definition = shell_def(batch, r"printf '\377 bin\n'; head -c 300000 /dev/zero | tr '\0' a; echo; "
                                  r"head -c 100000 /dev/urandom > /dev/stderr; echo; echo end")
    done = finished(batch, batch.submit_job(jobName="noisy", jobQueue=name, jobDefinition=definition)["jobId"])
    assert done["status"] == "SUCCEEDED", done
    # stdout and stderr are read side by side: their lines interleave.
    lines = until("output", lambda: (lambda ls: ls if "end" in ls else None)(
        log_lines(batch_server.endpoint, done["attempts"][0]["container"]["logStreamName"])))
    assert "\ufffd bin" in lines
    assert all(len(line.encode()) <= 256 * 1024 - 26 for line in lines)
