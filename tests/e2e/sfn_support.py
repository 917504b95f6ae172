"""What the Step Functions end-to-end tests share: a nimbus on a virtual clock, a client,
a Python function, and helpers to run machines and read their histories."""

from __future__ import annotations

import json
import urllib.request

import pytest

from support import ROLE, aws_client, make_zip, unique_name, wait_until

HANDLER = r'''
class Boom(Exception):
    pass

def handler(event, context):
    if event.get("fail"):
        raise Boom(event.get("why", "boom"))
    return {"n": event.get("n", 0) * 2}
'''


@pytest.fixture(scope="module")
def virtual(server_factory):
    """A nimbus whose clock the tests move forward."""
    return server_factory(extra_args=["--clock", "virtual"])


def sfn_client(endpoint):
    # StartSyncExecution's model puts `sync-` before the host; nimbus routes by X-Amz-Target on
    # any host, and a bare IP cannot take the prefix, so it is switched off.
    return aws_client("stepfunctions", endpoint, inject_host_prefix=False)


@pytest.fixture(scope="module")
def sfn(virtual):
    return sfn_client(virtual.endpoint)


@pytest.fixture(scope="module")
def function(virtual):
    lam = aws_client("lambda", virtual.endpoint)
    name = unique_name("sfn-fn")
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": make_zip({"app.py": HANDLER})}, Timeout=10)
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]


def advance(endpoint: str, seconds: float) -> None:
    request = urllib.request.Request(f"{endpoint}/_nimbus/clock/advance?seconds={seconds}", method="POST")
    urllib.request.urlopen(request).read()


def machine(sfn, definition: dict, kind: str = "STANDARD", **kwargs) -> str:
    return sfn.create_state_machine(name=unique_name("sm"), definition=json.dumps(definition), roleArn=ROLE,
                                    type=kind, **kwargs)["stateMachineArn"]


def finished(sfn, execution: str, timeout: float = 30) -> dict:
    def done():
        described = sfn.describe_execution(executionArn=execution)
        return described if described["status"] != "RUNNING" else None

    return wait_until(done, timeout=timeout, interval=0.05, what=f"{execution} to finish")


def run(sfn, definition: dict, payload=None, timeout: float = 30) -> dict:
    arn = machine(sfn, definition)
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload or {}))["executionArn"]
    return finished(sfn, execution, timeout)


def history(sfn, execution: str, **kwargs) -> list[dict]:
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution, **kwargs)
    return [event for page in pages for event in page["events"]]


def types(events) -> list[str]:
    return [e["type"] for e in events]
