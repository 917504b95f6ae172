"""Custom runtimes (`provided*`): a hand-written Runtime API client, a crashing bootstrap, and
a function built with crates.io's `lambda_runtime`."""

from __future__ import annotations

import base64
import json
import time

import pytest
from support import (
    EXITING_BOOTSTRAP,
    function_arn,
    payload_json,
    python_custom_runtime_bootstrap,
    request_id,
)


def invoke(client, name, event=None, **kwargs):
    if event is not None:
        kwargs["Payload"] = json.dumps(event)
    return client.invoke(FunctionName=name, **kwargs)


@pytest.fixture(scope="module")
def custom_fn(create_fn):
    return create_fn("custom", {"bootstrap": python_custom_runtime_bootstrap()}, runtime="provided.al2023",
                     handler="my.handler", executable=("bootstrap",), Timeout=7)


def test_runtime_api_headers(client, custom_fn):
    before_ms = int(time.time() * 1000)
    resp = invoke(client, custom_fn, {"k": "v"})
    assert "FunctionError" not in resp, payload_json(resp)
    out = payload_json(resp)
    headers = {k.lower(): v for k, v in out["headers"].items()}
    assert out["event"] == {"k": "v"}
    assert headers["lambda-runtime-aws-request-id"] == request_id(resp)
    assert headers["lambda-runtime-invoked-function-arn"] == function_arn(custom_fn)
    deadline = int(headers["lambda-runtime-deadline-ms"])
    assert before_ms + 5_000 < deadline <= int(time.time() * 1000) + 7_000, (before_ms, deadline)
    assert headers.get("lambda-runtime-trace-id", "").startswith("Root=")
    assert out["handler"] == "my.handler"
    assert out["cwd"] == out["task_root"]


def test_runtime_api_client_context(client, custom_fn):
    ctx = {"custom": {"k": "v"}, "env": {}, "client": {}}
    resp = invoke(client, custom_fn, {}, ClientContext=base64.b64encode(json.dumps(ctx).encode()).decode())
    headers = {k.lower(): v for k, v in payload_json(resp)["headers"].items()}
    assert json.loads(headers["lambda-runtime-client-context"]) == ctx


def test_runtime_api_error_endpoint(client, custom_fn):
    resp = invoke(client, custom_fn, {"fail": True})
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    body = payload_json(resp)
    assert body["errorType"] == "Custom.Failure"
    assert body["errorMessage"] == "custom failure"


def test_runtime_api_init_error(client, create_fn):
    name = create_fn("custom-init", {"bootstrap": python_custom_runtime_bootstrap()}, runtime="provided.al2",
                     handler="x", executable=("bootstrap",), Environment={"Variables": {"FAIL_INIT": "1"}})
    resp = invoke(client, name, {})
    assert resp["FunctionError"] == "Unhandled"
    body = payload_json(resp)
    assert body["errorType"] == "Custom.InitFailure", body
    assert body["errorMessage"] == "init went wrong", body


def test_exiting_bootstrap_is_runtime_exit_error(client, create_fn):
    name = create_fn("exits", {"bootstrap": EXITING_BOOTSTRAP}, runtime="provided", handler="x",
                     executable=("bootstrap",))
    started = time.monotonic()
    resp = invoke(client, name, {}, LogType="Tail")
    assert time.monotonic() - started < 5
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    body = payload_json(resp)
    assert body["errorType"] == "Runtime.ExitError", body
    assert "exit status 3" in body["errorMessage"], body
    assert "LogResult" in resp, "LogType=Tail must return LogResult even when the runtime exits"
    log = base64.b64decode(resp["LogResult"]).decode()
    assert "bootstrap starting and giving up" in log, log
    assert f"REPORT RequestId: {request_id(resp)}" in log, log
    # The same again: no stuck environment.
    assert payload_json(invoke(client, name, {}))["errorType"] == "Runtime.ExitError"


def test_missing_bootstrap(client, create_fn):
    name = create_fn("nobootstrap", {"readme.txt": "no bootstrap here"}, runtime="provided.al2023", handler="x")
    resp = invoke(client, name, {})
    assert resp["FunctionError"] == "Unhandled"
    assert payload_json(resp)["errorType"].startswith("Runtime."), payload_json(resp)


@pytest.mark.parametrize("runtime", ["provided.al2023", "provided.al2", "provided"])
def test_lambda_runtime_crate_echo(client, create_fn, rust_echo_zip, runtime):
    name = create_fn("rust-echo", rust_echo_zip, runtime=runtime, handler="bootstrap")
    event = {"hello": "from rust", "nested": {"list": [1, 2.5, "three", None, True]}, "unicode": "☁"}
    resp = invoke(client, name, event)
    assert resp["StatusCode"] == 200
    assert "FunctionError" not in resp, payload_json(resp)
    assert payload_json(resp) == event
    # Warm path: many quick invokes in a row all echo.
    for i in range(20):
        assert payload_json(invoke(client, name, {"i": i})) == {"i": i}


def test_runtime_api_status_codes(client, custom_fn):
    """Runtime API: 202 for a response, 4xx for an unknown request id or a second response."""
    resp = invoke(client, custom_fn, {"probe": True})
    assert "FunctionError" not in resp, payload_json(resp)
    assert payload_json(resp) == "probed"
    statuses = payload_json(invoke(client, custom_fn, {"report": True}))  # the same warm environment
    assert statuses["first"] == 202, statuses
    assert 400 <= statuses["bogus"] < 500, statuses
    assert 400 <= statuses["second"] < 500, statuses
    # The environment is still usable.
    assert payload_json(invoke(client, custom_fn, {"k": 1}))["event"] == {"k": 1}
