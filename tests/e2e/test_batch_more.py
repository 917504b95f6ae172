"""AWS Batch end to end, around the jobs: EventBridge rules and Scheduler schedules that submit
them and the state-change events they send, the `nimbus jobs` CLI, AWS's rules on definitions,
queues and environments, fair share, queue time limits, memory limits, Fargate, output of any
kind, and two nodes on one PostgreSQL database."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from batch_support import (CAPACITY, admin, advance, batch, batch_server, finished, job, log_lines,  # noqa: F401
                           make_env, make_queue, queue, shell_def, until)
from support import aws_client


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
