"""`batch:submitJob.sync` orchestrating a real Batch job: the state waits for the job, succeeds
with its DescribeJobs document, and fails with `States.TaskFailed` and the job's reason when the
job fails; `batch:submitJob` (no .sync) answers as soon as the job is submitted."""

from __future__ import annotations

import json
import uuid

import pytest

from sfn_support import finished, machine, sfn_client
from support import aws_client
from batch_support import CAPACITY, make_env, make_queue, shell_def


@pytest.fixture(scope="module")
def world(server_factory):
    server = server_factory(extra_args=[*CAPACITY])
    batch = aws_client("batch", server.endpoint)
    env = make_env(batch, f"sfn-od-{uuid.uuid4().hex[:6]}", max_vcpus=8)
    return sfn_client(server.endpoint), batch, make_queue(batch, env)


def submit_machine(sfn, queue: str, definition: str, sync: bool = True) -> str:
    resource = "arn:aws:states:::batch:submitJob" + (".sync" if sync else "")
    return machine(sfn, {"StartAt": "Job", "States": {"Job": {
        "Type": "Task", "Resource": resource, "End": True,
        "Parameters": {"JobName": "from-sfn", "JobQueue": queue, "JobDefinition": definition,
                       "ContainerOverrides": {"Environment": [{"Name": "WHO", "Value.$": "$.who"}]}}}}})


def test_submit_job_sync_waits_for_the_job_and_returns_it(world):
    sfn, batch, queue = world
    definition = shell_def(batch, 'echo "hello $WHO"; exit 0')
    arn = submit_machine(sfn, queue, definition)
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"who": "sfn"}))["executionArn"]
    done = finished(sfn, execution, timeout=120)
    assert done["status"] == "SUCCEEDED", (done.get("error"), done.get("cause"))
    output = json.loads(done["output"])
    assert output["Status"] == "SUCCEEDED" and output["JobName"] == "from-sfn"
    job = batch.describe_jobs(jobs=[output["JobId"]])["jobs"][0]
    assert job["status"] == "SUCCEEDED"


def test_a_failed_job_fails_the_state_with_its_reason(world):
    sfn, batch, queue = world
    definition = shell_def(batch, "exit 3")
    arn = submit_machine(sfn, queue, definition)
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"who": "x"}))["executionArn"]
    done = finished(sfn, execution, timeout=120)
    assert done["status"] == "FAILED"
    assert done["error"] == "States.TaskFailed"
    assert "exit code: 3" in done.get("cause", "") or '"ExitCode":3' in done.get("cause", "").replace(" ", ""), done


def test_submit_job_without_sync_answers_on_submission(world):
    sfn, batch, queue = world
    definition = shell_def(batch, "sleep 1; exit 0")
    arn = submit_machine(sfn, queue, definition, sync=False)
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"who": "y"}))["executionArn"]
    done = finished(sfn, execution, timeout=60)
    assert done["status"] == "SUCCEEDED"
    output = json.loads(done["output"])
    assert set(output) >= {"JobId", "JobName", "JobArn"}
