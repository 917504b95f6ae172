"""Helpers and fixtures shared by the Batch end-to-end tests (test_batch*.py)."""

from __future__ import annotations

import json
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
