"""The server's own lifecycle: health, start-up line, restart durability, clean shutdown."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest
from support import (
    NODE_CJS,
    PY_MULTI,
    ROLE,
    all_gone,
    code_sha256,
    environment_processes,
    make_zip,
    payload_json,
    unique_name,
    wait_until,
)

SLOW = r'''
import time
def handler(event, context):
    time.sleep(event["sleep"])
    return {"slept": event["sleep"]}
'''


def _wait_running(srv, name):
    """Wait until `name` has an environment process, then a little longer so the handler runs."""
    envs = wait_until(lambda: environment_processes(srv.proc.pid, name), timeout=10, what="the handler to start")
    time.sleep(0.5)
    return envs


def test_health(server):
    body = server.health()
    assert body["status"] == "ready"
    assert isinstance(body["version"], str) and body["version"]
    assert "lambda" in body["services"]


def test_startup_line_names_address_and_data_dir(server):
    text = server.log_text()
    lines = [line for line in text.splitlines() if str(server.port) in line]
    assert lines, text[-2000:]
    assert any(str(server.data_dir) in line for line in lines), \
        f"the line announcing the address should name the data dir {server.data_dir}: {lines}"


def test_port_in_use_fails_clearly(server_factory):
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        srv = server_factory(start=False)
        with pytest.raises(AssertionError, match="exited with"):
            srv.start(port=port)
        assert str(port) in srv.log_text(), srv.log_text()


def _create(cl, runtime, files, handler, **kwargs):
    name = unique_name("durable")
    zip_bytes = make_zip(files)
    cl.create_function(FunctionName=name, Runtime=runtime, Role=ROLE, Handler=handler,
                       Code={"ZipFile": zip_bytes}, **kwargs)
    cl.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    return name, zip_bytes


def test_restart_keeps_functions(server_factory):
    srv = server_factory()
    cl = srv.client()
    py, py_zip = _create(cl, "python3.12", {"app.py": PY_MULTI}, "app.handler", MemorySize=384, Timeout=9,
                         Environment={"Variables": {"KEEP": "me"}}, Description="survives restarts")
    node, _ = _create(cl, "nodejs20.x", {"index.js": NODE_CJS}, "index.handler")
    cl.update_function_configuration(FunctionName=py, Description="updated before restart")
    cl.get_waiter("function_updated_v2").wait(FunctionName=py, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    before = cl.get_function_configuration(FunctionName=py)
    assert payload_json(cl.invoke(FunctionName=py, Payload=json.dumps({"op": "echo", "value": 1}))) == 1

    srv.stop()  # asserts that no environment outlives the server
    old_port = srv.port
    srv.start(port=old_port)  # same data dir, same port, right away (the everyday restart)
    cl = srv.client()
    assert payload_json(cl.invoke(FunctionName=py, Payload=json.dumps({"op": "echo", "value": 2}))) == 2

    srv.stop()
    srv.start()  # same data dir, new port
    assert srv.port != old_port
    cl = srv.client()

    names = [f["FunctionName"] for p in cl.get_paginator("list_functions").paginate() for f in p["Functions"]]
    assert py in names and node in names
    after = cl.get_function_configuration(FunctionName=py)
    for key in ("FunctionArn", "Runtime", "Handler", "MemorySize", "Timeout", "Environment", "Description",
                "CodeSha256", "CodeSize", "RevisionId", "LastModified", "State"):
        assert after.get(key) == before.get(key), key
    assert after["CodeSha256"] == code_sha256(py_zip)
    assert after["Description"] == "updated before restart"

    resp = cl.invoke(FunctionName=py, Payload=json.dumps({"op": "env"}))
    assert "FunctionError" not in resp, payload_json(resp)
    env = payload_json(resp)["env"]
    assert env["KEEP"] == "me"
    assert env["AWS_ENDPOINT_URL"].rstrip("/") == srv.endpoint, "functions must point at the restarted server"
    resp = cl.invoke(FunctionName=node, Payload=b'{"n": 1}')
    assert payload_json(resp)["event"] == {"n": 1}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_lets_a_short_running_invoke_finish(server_factory, sig):
    srv = server_factory(extra_args=["--grace", "5"])
    cl = srv.client()
    name, _ = _create(cl, "python3.12", {"app.py": SLOW}, "app.handler", Timeout=30)
    result = {}

    def call():
        try:
            result["resp"] = payload_json(cl.invoke(FunctionName=name, Payload=json.dumps({"sleep": 2})))
        except Exception as e:
            result["error"] = repr(e)

    t = threading.Thread(target=call)
    t.start()
    _wait_running(srv, name)
    started = time.monotonic()
    code = srv.stop(sig=sig)  # asserts no leftover children
    took = time.monotonic() - started
    t.join(10)
    assert result.get("resp") == {"slept": 2}, f"the running invoke should finish within the grace period: {result}"
    assert took < 5 + 3, took
    assert code in (0, 128 + sig, -sig), code


def test_stop_cuts_a_long_invoke_after_grace(server_factory):
    srv = server_factory(extra_args=["--grace", "1"])
    cl = srv.client()
    name, _ = _create(cl, "python3.12", {"app.py": SLOW}, "app.handler", Timeout=60)
    result = {}

    def call():
        try:
            result["resp"] = cl.invoke(FunctionName=name, Payload=json.dumps({"sleep": 30}))
        except Exception as e:
            result["error"] = repr(e)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    envs = _wait_running(srv, name)
    started = time.monotonic()
    srv.stop()  # asserts nimbus exits (no SIGKILL needed) and no environment outlives it
    took = time.monotonic() - started
    assert took < 1 + 4, f"stop took {took:.1f}s with --grace 1"
    assert all_gone(envs), envs
    t.join(5)
    assert not t.is_alive(), "the client of a cut invoke must get an answer or a closed connection"

