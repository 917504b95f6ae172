"""Invoking Node.js functions: CommonJS, ES modules, async and callback handlers, errors."""

from __future__ import annotations

import base64
import json

import pytest
from support import (
    NODE_CALLBACK,
    NODE_CJS,
    NODE_ESM,
    NODE_IMPORT_ERROR,
    function_arn,
    payload_json,
    request_id,
)


def invoke(client, name, event=None, **kwargs):
    if event is not None:
        kwargs["Payload"] = json.dumps(event)
    return client.invoke(FunctionName=name, **kwargs)


@pytest.fixture(scope="module")
def cjs_fn(create_fn):
    return create_fn("node-cjs", {"index.js": NODE_CJS}, runtime="nodejs20.x", handler="index.handler",
                     MemorySize=192, Timeout=10, Environment={"Variables": {"MY_VAR": "node-value"}})


def test_commonjs_async_handler(client, cjs_fn):
    resp = invoke(client, cjs_fn, {"a": 1, "b": [True, None]})
    assert resp["StatusCode"] == 200
    assert resp["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in resp, payload_json(resp)
    out = payload_json(resp)
    assert out["kind"] == "cjs"
    assert out["event"] == {"a": 1, "b": [True, None]}
    assert out["requestId"] == request_id(resp)
    assert 0 < out["remaining"] <= 10_000
    assert out["functionName"] == cjs_fn
    assert out["functionVersion"] == "$LATEST"
    assert out["memoryLimitInMB"] == "192"
    assert out["invokedFunctionArn"] == function_arn(cjs_fn)
    assert out["logGroupName"] == f"/aws/lambda/{cjs_fn}"
    env = out["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == cjs_fn
    assert env["AWS_REGION"] == "us-east-1"
    assert env["_HANDLER"] == "index.handler"
    assert env["LAMBDA_TASK_ROOT"]
    assert env["AWS_LAMBDA_RUNTIME_API"]
    assert env["MY_VAR"] == "node-value"


def test_node_warm_reuse(client, cjs_fn):
    a = payload_json(invoke(client, cjs_fn, {}))
    b = payload_json(invoke(client, cjs_fn, {}))
    assert a["token"] == b["token"]


def test_node_thrown_error_shape(client, cjs_fn):
    resp = invoke(client, cjs_fn, {"op": "throw", "message": "node broke"})
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    body = payload_json(resp)
    assert body["errorType"] == "NimbusTestError", body
    assert body["errorMessage"] == "node broke", body
    assert isinstance(body.get("trace"), list) and body["trace"], body
    assert body["trace"][0].startswith("NimbusTestError: node broke"), body


def test_node_console_log_in_tail(client, cjs_fn):
    resp = invoke(client, cjs_fn, {"op": "log", "text": "node says hi"}, LogType="Tail")
    log = base64.b64decode(resp["LogResult"]).decode()
    rid = request_id(resp)
    assert f"START RequestId: {rid}" in log, log
    assert "node says hi" in log, log
    assert f"REPORT RequestId: {rid}" in log, log
    line = next(line for line in log.splitlines() if "node says hi" in line)
    assert rid in line and "INFO" in line, line  # Node's console format: time, request id, level, message


@pytest.mark.parametrize(
    "runtime, files, handler",
    [
        ("nodejs20.x", {"index.mjs": NODE_ESM}, "index.handler"),
        ("nodejs22.x", {"index.mjs": NODE_ESM}, "index.handler"),
        ("nodejs20.x", {"index.js": NODE_ESM, "package.json": '{"type": "module"}'}, "index.handler"),
        ("nodejs20.x", {"src/handlers/main.mjs": NODE_ESM}, "src/handlers/main.handler"),
    ],
    ids=["mjs-node20", "mjs-node22", "type-module", "nested-path"],
)
def test_es_module_handlers(client, create_fn, runtime, files, handler):
    name = create_fn("node-esm", files, runtime=runtime, handler=handler)
    resp = invoke(client, name, {"x": "y"})
    assert "FunctionError" not in resp, payload_json(resp)
    out = payload_json(resp)
    assert out["kind"] == "esm"
    assert out["event"] == {"x": "y"}
    assert out["started"] == "top-level-await-ok"
    assert out["requestId"] == request_id(resp)


def test_callback_handler(client, create_fn):
    name = create_fn("node-cb", {"index.js": NODE_CALLBACK}, runtime="nodejs20.x", handler="index.handler")
    resp = invoke(client, name, {"v": 1})
    assert "FunctionError" not in resp, payload_json(resp)
    out = payload_json(resp)
    assert out["kind"] == "callback"
    assert out["event"] == {"v": 1}
    assert out["requestId"] == request_id(resp)
    resp = invoke(client, name, {"fail": "nope"})
    assert resp["FunctionError"] == "Unhandled"
    body = payload_json(resp)
    assert body["errorType"] == "Error"
    assert body["errorMessage"] == "callback failed: nope"


def test_node_import_error(client, create_fn):
    name = create_fn("node-imp", {"index.js": NODE_IMPORT_ERROR}, runtime="nodejs20.x", handler="index.handler")
    resp = invoke(client, name, {})
    assert resp["FunctionError"] == "Unhandled"
    body = payload_json(resp)
    assert body["errorType"] == "Runtime.ImportModuleError", body


def test_node_handler_not_found(client, create_fn):
    name = create_fn("node-nohandler", {"index.js": NODE_CJS}, runtime="nodejs20.x", handler="index.nope")
    resp = invoke(client, name, {})
    assert resp["FunctionError"] == "Unhandled"
    assert payload_json(resp)["errorType"] == "Runtime.HandlerNotFound"


def test_node_timeout(client, create_fn):
    src = "exports.handler = async () => { await new Promise(r => setTimeout(r, 3000)); return 'late'; };\n"
    name = create_fn("node-timeout", {"index.js": src}, runtime="nodejs20.x", handler="index.handler", Timeout=1)
    resp = invoke(client, name, {})
    assert resp.get("FunctionError") == "Unhandled"
    assert "Task timed out after 1.00 seconds" in payload_json(resp)["errorMessage"]
