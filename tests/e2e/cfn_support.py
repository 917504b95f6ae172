"""Helpers the CloudFormation end-to-end tests share."""

from __future__ import annotations

import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from support import aws_cli_env, aws_client


def cfn(endpoint):
    return aws_client("cloudformation", endpoint)


def wait_status(client, stack, timeout=60.0):
    """The stack's status once no operation runs on it."""
    deadline = time.monotonic() + timeout
    while True:
        status = client.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            return status
        assert time.monotonic() < deadline, f"{stack} still {status}"
        time.sleep(0.1)


def failures(client, stack):
    """The failed events' reasons, for assertion messages."""
    events = client.describe_stack_events(StackName=stack)["StackEvents"]
    return [(e["LogicalResourceId"], e["ResourceStatus"], e.get("ResourceStatusReason")) for e in events
            if "FAILED" in e["ResourceStatus"]]


def delete(client, stack):
    stack_id = client.describe_stacks(StackName=stack)["Stacks"][0]["StackId"]
    client.delete_stack(StackName=stack)
    status = wait_status(client, stack_id)
    assert status == "DELETE_COMPLETE", failures(client, stack_id)


def wait_for(fetch, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def outputs(client, stack):
    return {o["OutputKey"]: o["OutputValue"] for o in client.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])}


def resources(client, stack):
    summaries = client.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    return {r["LogicalResourceId"]: r for r in summaries}


def deploy(endpoint, tmp_path, stack, template, *extra):
    path = tmp_path / f"{stack}-{time.monotonic_ns()}.yaml"
    path.write_text(template)
    cmd = ["aws", "cloudformation", "deploy", "--stack-name", stack, "--template-file", str(path),
           "--capabilities", "CAPABILITY_IAM", *extra]
    return subprocess.run(cmd, env=aws_cli_env(endpoint, tmp_path), capture_output=True, text=True, timeout=180)


def message_of(call):
    with pytest.raises(ClientError) as error:
        call()
    return error.value.response["Error"]["Code"], error.value.response["Error"]["Message"]
