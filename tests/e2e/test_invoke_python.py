"""Invoking Python functions: invocation types, logs, errors, timeouts, environment, context."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest
from support import (
    PY_IMPORT_ERROR,
    PY_MULTI,
    PY_SYNTAX_ERROR,
    all_gone,
    environment_processes,
    function_arn,
    payload_json,
    request_id,
    unique_name,
    wait_until,
)


def invoke(client, name, event=None, **kwargs):
    if event is not None:
        kwargs["Payload"] = json.dumps(event)
    return client.invoke(FunctionName=name, **kwargs)


def test_request_response_returns_payload(client, py_fn):
    event = {"op": "echo", "value": {"hello": "world", "n": [1, 2, 3], "unicode": "żółw ☁"}}
    resp = invoke(client, py_fn, event)
    assert resp["StatusCode"] == 200
    assert resp["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in resp
    assert payload_json(resp) == event["value"]


def test_empty_payload_is_empty_object(client, py_fn):
    resp = client.invoke(FunctionName=py_fn)
    assert "FunctionError" not in resp, payload_json(resp)
    assert payload_json(resp) == {}


def test_explicit_request_response_and_qualifier(client, py_fn):
    resp = invoke(client, py_fn, {"op": "echo", "value": 42}, InvocationType="RequestResponse", Qualifier="$LATEST")
    assert resp["StatusCode"] == 200
    assert payload_json(resp) == 42


def test_invoke_by_arn(client, py_fn):
    resp = invoke(client, function_arn(py_fn), {"op": "echo", "value": "by-arn"})
    assert payload_json(resp) == "by-arn"


def _mark(client, name):
    """The description of the marker function a handler's "mark" op created, or None."""
    try:
        return client.get_function_configuration(FunctionName=name)["Description"]
    except client.exceptions.ResourceNotFoundException:
        return None


def test_event_invocation_runs_in_background(client, py_fn):
    marker = unique_name("mark-event")
    resp = invoke(client, py_fn, {"op": "mark", "name": marker, "content": "ran"}, InvocationType="Event")
    assert resp["StatusCode"] == 202
    assert resp["Payload"].read() == b""
    wait_until(lambda: _mark(client, marker) == "ran", timeout=15, what="the event invoke to run")


def test_event_invocation_of_missing_function_is_not_found(client):
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="no-such-function-for-event", InvocationType="Event", Payload=b"{}")


def test_dry_run_returns_204_without_running(client, py_fn):
    marker = unique_name("mark-dry")
    resp = invoke(client, py_fn, {"op": "mark", "name": marker, "content": "ran"}, InvocationType="DryRun")
    assert resp["StatusCode"] == 204
    time.sleep(1)
    assert _mark(client, marker) is None, "DryRun must not run the function"


def test_log_type_tail(client, py_fn):
    resp = invoke(client, py_fn, {"op": "print", "text": "hello from the handler"}, LogType="Tail")
    assert resp["StatusCode"] == 200
    log = base64.b64decode(resp["LogResult"]).decode()
    rid = request_id(resp)
    assert f"START RequestId: {rid}" in log, log
    assert "hello from the handler" in log, log
    assert f"END RequestId: {rid}" in log, log
    assert f"REPORT RequestId: {rid}" in log, log
    assert "Duration:" in log and "Max Memory Used:" in log, log
    assert log.index("START") < log.index("hello from the handler") < log.index("END RequestId")
    # Without LogType, no log comes back.
    assert "LogResult" not in invoke(client, py_fn, {"op": "print", "text": "quiet"})


def test_log_tail_is_at_most_4kb(client, py_fn):
    resp = invoke(client, py_fn, {"op": "print", "text": "y" * 20000}, LogType="Tail")
    log = base64.b64decode(resp["LogResult"])
    assert 0 < len(log) <= 4096
    assert b"REPORT RequestId:" in log  # the tail keeps the end


def test_logging_and_stderr_in_tail(client, py_fn):
    resp = invoke(client, py_fn, {"op": "logging"}, LogType="Tail")
    log = base64.b64decode(resp["LogResult"]).decode()
    assert "warned via logging" in log, log
    assert "written to stderr" in log, log
    line = next(line for line in log.splitlines() if "warned via logging" in line)
    assert request_id(resp) in line and "WARNING" in line, line  # AWS's format: [WARNING] time id message


def test_unserializable_result_is_marshal_error(client, py_fn):
    resp = invoke(client, py_fn, {"op": "unserializable"})
    assert resp["FunctionError"] == "Unhandled"
    body = payload_json(resp)
    assert body["errorType"] == "Runtime.MarshalError", body


def test_raised_error_is_unhandled_function_error(client, py_fn):
    resp = invoke(client, py_fn, {"op": "raise", "message": "it broke"})
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert resp["ResponseMetadata"]["HTTPHeaders"]["x-amz-function-error"] == "Unhandled"
    body = payload_json(resp)
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "it broke"
    assert isinstance(body["stackTrace"], list) and body["stackTrace"], body
    assert any("app.py" in line for line in body["stackTrace"]), body
    # The environment survives a handled exception.
    assert payload_json(invoke(client, py_fn, {"op": "echo", "value": "still here"})) == "still here"


def test_timeout_is_reported_and_environment_replaced(client, create_fn, server):
    name = create_fn("timeout", {"app.py": PY_MULTI}, Timeout=1)
    first = payload_json(invoke(client, name, {"op": "whoami"}))
    first_env = environment_processes(server.proc.pid, name)
    assert first_env, "the environment should be a process under nimbus"
    started = time.monotonic()
    resp = invoke(client, name, {"op": "sleep", "seconds": 3})
    elapsed = time.monotonic() - started
    assert resp["StatusCode"] == 200
    assert resp.get("FunctionError") == "Unhandled"
    body = payload_json(resp)
    assert "Task timed out after 1.00 seconds" in body["errorMessage"], body
    assert elapsed < 2.8, f"invoke took {elapsed:.2f}s; the 1 s timeout was not enforced"
    # The next invoke works, in a new environment.
    resp = invoke(client, name, {"op": "whoami"})
    assert "FunctionError" not in resp, payload_json(resp)
    after = payload_json(resp)
    assert after["token"] != first["token"], "the timed-out environment must be recycled"
    wait_until(lambda: all_gone(first_env), timeout=5, what=f"timed-out environment to die ({first_env})")



def test_import_error(client, create_fn):
    name = create_fn("import-err", {"app.py": PY_IMPORT_ERROR})
    resp = invoke(client, name, {})
    assert resp["FunctionError"] == "Unhandled"
    body = payload_json(resp)
    assert body["errorType"] == "Runtime.ImportModuleError", body
    assert "Unable to import module 'app'" in body["errorMessage"], body
    assert "nimbus_module_that_does_not_exist" in body["errorMessage"], body
    # A second invoke fails the same way (no hang, no crash of nimbus).
    assert payload_json(invoke(client, name, {}))["errorType"] == "Runtime.ImportModuleError"


def test_import_error_log_tail(client, create_fn):
    """As on AWS, an invoke that fails in init still returns its log (the init error, START..REPORT)."""
    name = create_fn("import-err-log", {"app.py": PY_IMPORT_ERROR})
    resp = invoke(client, name, {}, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert "LogResult" in resp, "LogType=Tail must return LogResult even when init fails"
    log = base64.b64decode(resp["LogResult"]).decode()
    assert "Unable to import module 'app'" in log, log
    assert f"REPORT RequestId: {request_id(resp)}" in log, log


def test_syntax_error(client, create_fn):
    name = create_fn("syntax-err", {"app.py": PY_SYNTAX_ERROR})
    resp = invoke(client, name, {})
    assert resp["FunctionError"] == "Unhandled"
    assert payload_json(resp)["errorType"] == "Runtime.UserCodeSyntaxError"


def test_handler_not_found(client, create_fn):
    name = create_fn("no-handler", {"app.py": PY_MULTI}, handler="app.nope")
    resp = invoke(client, name, {})
    assert resp["FunctionError"] == "Unhandled"
    body = payload_json(resp)
    assert body["errorType"] == "Runtime.HandlerNotFound", body


def test_lambda_environment_variables(client, py_fn, endpoint):
    resp = invoke(client, py_fn, {"op": "env"})
    out = payload_json(resp)
    env = out["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == py_fn
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{py_fn}"
    assert env.get("AWS_LAMBDA_LOG_STREAM_NAME")
    assert env["AWS_REGION"] == "us-east-1"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert env["_HANDLER"] == "app.handler"
    assert env["TZ"] == ":UTC"
    assert env.get("LAMBDA_RUNTIME_DIR")
    assert env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY") and env.get("AWS_SESSION_TOKEN")
    host, _, port = env["AWS_LAMBDA_RUNTIME_API"].rpartition(":")
    assert host and port.isdigit(), env["AWS_LAMBDA_RUNTIME_API"]
    assert env["AWS_ENDPOINT_URL"].rstrip("/") == endpoint, env["AWS_ENDPOINT_URL"]
    assert env["MY_VAR"] == "my-value"
    assert env["OTHER"] == "x=y;z"
    assert out["task_root_has_handler"], env.get("LAMBDA_TASK_ROOT")
    assert os.path.realpath(out["cwd"]) == os.path.realpath(env["LAMBDA_TASK_ROOT"])


def test_context_object(client, py_fn):
    resp = invoke(client, py_fn, {"op": "context"})
    ctx = payload_json(resp)
    assert 0 < ctx["remaining_ms"] <= 30_000
    assert ctx["remaining_ms"] > 25_000, "deadline should be about Timeout (30 s) from the start"
    assert ctx["aws_request_id"] == request_id(resp), "x-amzn-RequestId must equal context.aws_request_id"
    assert ctx["function_name"] == py_fn
    assert ctx["function_version"] == "$LATEST"
    assert ctx["memory_limit_in_mb"] == "256"
    assert ctx["invoked_function_arn"] == function_arn(py_fn)
    assert ctx["log_group_name"] == f"/aws/lambda/{py_fn}"
    assert ctx["log_stream_name"]


def test_boto3_inside_function_talks_to_nimbus(client, py_fn):
    resp = invoke(client, py_fn, {"op": "boto3"})
    assert "FunctionError" not in resp, payload_json(resp)
    assert py_fn in payload_json(resp)["names"]


def test_missing_exact_python_version_runs_on_host_python(client, create_fn, server):
    for _ in range(2):
        name = create_fn("py314", {"app.py": PY_MULTI}, runtime="python3.14")
        resp = invoke(client, name, {"op": "env"})
        assert "FunctionError" not in resp, payload_json(resp)
        out = payload_json(resp)
        assert out["python"][0] == 3
        assert out["env"]["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.14"
    notes = [line for line in server.log_text().splitlines() if "python3.14" in line]
    assert len(notes) == 1, f"the fallback should be logged once: {notes}"


def test_large_payloads_round_trip(client, py_fn):
    value = "z" * (5 * 1024 * 1024)
    resp = invoke(client, py_fn, {"op": "echo", "value": value})
    assert "FunctionError" not in resp
    assert payload_json(resp) == value


def test_oversized_response_is_function_error(client, py_fn):
    resp = invoke(client, py_fn, {"op": "big", "n": 7 * 1024 * 1024})
    assert resp["StatusCode"] == 200
    assert resp.get("FunctionError") == "Unhandled"
    body = payload_json(resp)
    assert body["errorType"] == "Function.ResponseSizeTooLarge", body
    assert "6291556" in body["errorMessage"], body
    # The function keeps working.
    assert payload_json(invoke(client, py_fn, {"op": "echo", "value": 1})) == 1


def test_warm_reuse(client, create_fn):
    name = create_fn("warm", {"app.py": PY_MULTI})
    first = payload_json(invoke(client, name, {"op": "whoami"}))
    second = payload_json(invoke(client, name, {"op": "whoami"}))
    assert first["pid"] == second["pid"]
    assert first["token"] == second["token"]
    assert (first["count"], second["count"]) == (1, 2), "module state survives between warm invokes"
    assert first["request_id"] != second["request_id"]


def test_each_environment_gets_its_own_tmp(client, create_fn):
    name = create_fn("tmpdir", {"app.py": PY_MULTI}, Timeout=1)
    marker = unique_name("tmp-marker")
    first = payload_json(invoke(client, name, {"op": "tmp", "write": marker}))
    assert marker in payload_json(invoke(client, name, {"op": "tmp"}))["seen"], "a warm env keeps its /tmp"
    # A timeout recycles the environment; the next one starts with a /tmp of its own.
    invoke(client, name, {"op": "sleep", "seconds": 3})
    second = payload_json(invoke(client, name, {"op": "tmp"}))
    assert second["token"] != first["token"]
    assert marker not in second["seen"]


@pytest.mark.parametrize("runtime", ["python3.12", "python3.11", "python3.13"])
def test_python_runtime_names(client, create_fn, runtime):
    name = create_fn("pyrt", {"app.py": PY_MULTI}, runtime=runtime)
    resp = invoke(client, name, {"op": "echo", "value": runtime})
    assert payload_json(resp) == runtime


@pytest.mark.parametrize(
    "files, handler",
    [
        ({"pkg/__init__.py": "", "pkg/mod.py": PY_MULTI}, "pkg.mod.handler"),
        ({"src/app.py": PY_MULTI}, "src/app.handler"),
        ({"app.py": "from helper import VALUE\n\ndef handler(e, c):\n    return VALUE\n",
          "helper.py": "VALUE = {'op': 'echo', 'value': 'from helper'}\n"}, "app.handler"),
    ],
    ids=["dotted-package", "slash-path", "sibling-import"],
)
def test_python_handler_paths(client, create_fn, files, handler):
    name = create_fn("pypath", files, handler=handler)
    resp = invoke(client, name, {"op": "echo", "value": "ok"})
    assert "FunctionError" not in resp, payload_json(resp)
    assert payload_json(resp) in ("ok", {"op": "echo", "value": "from helper"})


def test_many_event_invokes_all_run(client, py_fn):
    prefix = unique_name("mark-many")
    for i in range(15):
        resp = invoke(client, py_fn, {"op": "mark", "name": f"{prefix}-{i}", "content": str(i)},
                      InvocationType="Event")
        assert resp["StatusCode"] == 202
    wait_until(lambda: all(_mark(client, f"{prefix}-{i}") is not None for i in range(15)), timeout=30,
               interval=0.3, what="all 15 event invokes to run")
    assert [_mark(client, f"{prefix}-{i}") for i in range(15)] == [str(i) for i in range(15)]


def test_unknown_qualifier_is_not_found(client, py_fn):
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName=py_fn, Qualifier="7", Payload=b"{}")


def test_delete_stops_warm_environments(client, create_fn, server):
    name = create_fn("del-warm", {"app.py": PY_MULTI})
    invoke(client, name, {"op": "whoami"})
    envs = environment_processes(server.proc.pid, name)
    assert envs, "the environment should be a process under nimbus"
    client.delete_function(FunctionName=name)
    wait_until(lambda: all_gone(envs), timeout=5, what=f"deleted function's environment to stop ({envs})")
