"""Asynchronous invocation, durable: retries as the event invoke config says, destinations with
AWS's invocation record, and nothing acknowledged lost across kill -9 (issue: object storage,
queues and asynchronous invocation). Records are collected through a shared file system."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from support import ROLE, make_zip, unique_name

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="collects records through a sandbox mount (needs root)")

ACCESS_POINT = "fsap-0a0b0c0d0e0f01234"
EFS = [{"Arn": f"arn:aws:elasticfilesystem:us-east-1:000000000000:access-point/{ACCESS_POINT}",
        "LocalMountPath": "/mnt/records"}]

RECORDER = r'''
import json, os, uuid
def handler(event, context):
    name = event.get("requestContext", {}).get("requestId") or event.get("id") or uuid.uuid4().hex
    with open("/mnt/records/%s-%s.json" % (os.environ["KIND"], name), "w") as f:
        json.dump(event, f)
    return "recorded"
'''

FLAKY = r'''
import json, os, uuid
def handler(event, context):
    with open("/mnt/records/attempt-%s-%s.json" % (context.aws_request_id, uuid.uuid4().hex), "w") as f:
        f.write("{}")
    if event.get("fail"):
        raise RuntimeError("failing on purpose")
    return {"ok": event.get("id")}
'''


def records(data_dir: Path, prefix: str) -> list:
    folder = data_dir / "file-systems" / ACCESS_POINT
    if not folder.exists():
        return []
    return [json.loads(p.read_text()) for p in folder.glob(prefix + "*.json") if p.stat().st_size]


def wait_for(predicate, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def create(client, prefix, code, **kwargs):
    name = unique_name(prefix)
    client.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                           Code={"ZipFile": make_zip({"app.py": code})}, FileSystemConfigs=EFS, Timeout=10, **kwargs)
    return name


def test_retries_then_on_failure_destination_gets_aws_record(server_factory):
    srv = server_factory(extra_args=["--retry-delay-scale", "0.005"])
    client = srv.client()
    failures = create(client, "on-failure", RECORDER, Environment={"Variables": {"KIND": "failure"}})
    successes = create(client, "on-success", RECORDER, Environment={"Variables": {"KIND": "success"}})
    flaky = create(client, "flaky", FLAKY)
    arn = lambda n: f"arn:aws:lambda:us-east-1:000000000000:function:{n}"
    client.put_function_event_invoke_config(
        FunctionName=flaky, MaximumRetryAttempts=2,
        DestinationConfig={"OnFailure": {"Destination": arn(failures)}, "OnSuccess": {"Destination": arn(successes)}})
    failing = client.invoke(FunctionName=flaky, InvocationType="Event", Payload=json.dumps({"fail": True}).encode())
    assert failing["StatusCode"] == 202
    request_id = failing["ResponseMetadata"]["RequestId"]
    record = wait_for(lambda: records(srv.data_dir, f"failure-{request_id}"))[0]
    assert record["version"] == "1.0"
    assert record["requestContext"] == {"requestId": request_id, "functionArn": arn(flaky) + ":$LATEST",
                                        "condition": "RetriesExhausted", "approximateInvokeCount": 3}
    assert record["requestPayload"] == {"fail": True}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert len(records(srv.data_dir, f"attempt-{request_id}")) == 3  # the first try and two retries

    ok = client.invoke(FunctionName=flaky, InvocationType="Event", Payload=json.dumps({"id": 7}).encode())
    ok_id = ok["ResponseMetadata"]["RequestId"]
    success = wait_for(lambda: records(srv.data_dir, f"success-{ok_id}"))[0]
    assert success["requestContext"]["condition"] == "Success"
    assert success["responsePayload"] == {"ok": 7}


def test_no_acknowledged_event_is_lost_across_kill_9(server_factory):
    srv = server_factory()
    client = srv.client()
    sink = create(client, "survivor", RECORDER, Environment={"Variables": {"KIND": "kept"}})
    ids = []
    for i in range(1000):
        resp = client.invoke(FunctionName=sink, InvocationType="Event", Payload=json.dumps({"id": f"e{i:04d}"}).encode())
        assert resp["StatusCode"] == 202
        ids.append(f"e{i:04d}")
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait()
    srv.proc = None
    srv.start(port=srv.port)
    seen = lambda: {r["id"] for r in records(srv.data_dir, "kept-")}
    wait_for(lambda: seen() >= set(ids), timeout=120)
    assert seen() >= set(ids)
