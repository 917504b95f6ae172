"""CloudWatch Logs StartLiveTail with boto3's event stream: a sessionStart, then sessionUpdates
carrying the events ingested during the session that match its streams and filter pattern.

StartLiveTail's model injects the host prefix `stream-` (`stream-127.0.0.1` does not resolve):
clients of an emulator turn injection off, as for LocalStack."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from support import aws_client


@pytest.fixture(scope="module")
def logs(server):
    return aws_client("logs", server.endpoint, inject_host_prefix=False)


def tail_in_background(logs, **request):
    """Starts a session on a thread; `result` gets its parsed events (the body arrives whole)."""
    result: dict = {}

    def run():
        try:
            response = logs.start_live_tail(**request)
            result["events"] = list(response["responseStream"])
        except Exception as error:  # noqa: BLE001 (reported by the test)
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def test_live_tail_streams_new_matching_events(logs):
    group = f"/live/{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="web-1")
    logs.create_log_stream(logGroupName=group, logStreamName="worker-1")
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName="web-1",
                        logEvents=[{"timestamp": now, "message": "ERROR 500 before the session"}])
    arn = f"arn:aws:logs:us-east-1:000000000000:log-group:{group}"
    thread, result = tail_in_background(logs, logGroupIdentifiers=[arn], logStreamNamePrefixes=["web"],
                                        logEventFilterPattern='"ERROR 500"')
    time.sleep(0.5)  # the session subscribes as it starts; events before it are not tailed
    deadline = time.time() + 3
    while thread.is_alive() and time.time() < deadline:
        stamp = int(time.time() * 1000)
        logs.put_log_events(logGroupName=group, logStreamName="web-1", logEvents=[
            {"timestamp": stamp, "message": "ERROR 500 upstream failed"},
            {"timestamp": stamp, "message": "INFO 200 fine"}])
        logs.put_log_events(logGroupName=group, logStreamName="worker-1",
                            logEvents=[{"timestamp": stamp, "message": "ERROR 500 in the worker"}])
        time.sleep(0.5)
    thread.join(20)
    assert "error" not in result, result
    events = result["events"]
    assert "sessionStart" in events[0]
    start = events[0]["sessionStart"]
    assert start["logGroupIdentifiers"] == [arn] and start["logStreamNamePrefixes"] == ["web"]
    assert start["logEventFilterPattern"] == '"ERROR 500"' and start["sessionId"]
    updates = [e["sessionUpdate"] for e in events[1:]]
    assert updates and all("sessionMetadata" in u for u in updates)
    results = [r for u in updates for r in u["sessionResults"]]
    assert results, updates
    assert {r["message"] for r in results} == {"ERROR 500 upstream failed"}
    assert all(r["logStreamName"] == "web-1" and r["logGroupIdentifier"] == arn for r in results)
    assert all(r["ingestionTime"] >= r["timestamp"] - 1000 for r in results)


def test_live_tail_refuses_what_aws_refuses(logs):
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.start_live_tail(logGroupIdentifiers=["arn:aws:logs:us-east-1:000000000000:log-group:/live/none"])
    group = f"/live/{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=group)
    with pytest.raises(ClientError) as excinfo:
        logs.start_live_tail(logGroupIdentifiers=[group], logStreamNames=["a"], logStreamNamePrefixes=["b"])
    assert excinfo.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError) as excinfo:
        logs.start_live_tail(logGroupIdentifiers=[group], logEventFilterPattern="{ $.x = ")
    assert excinfo.value.response["Error"]["Code"] == "InvalidParameterException"
