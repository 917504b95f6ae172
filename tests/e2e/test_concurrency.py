"""Concurrency: parallel invokes scale out to several environments; limits and keep-alive."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError
from support import (
    PY_SLEEPER,
    ROLE,
    all_gone,
    environment_processes,
    make_zip,
    payload_json,
    request_id,
    unique_name,
    wait_until,
)


def test_parallel_invokes_scale_out(client, create_fn, server):
    name = create_fn("parallel", {"app.py": PY_SLEEPER}, Timeout=30)

    def one(i):
        resp = client.invoke(FunctionName=name, Payload=json.dumps({"sleep": 0.5, "i": i}))
        assert "FunctionError" not in resp, payload_json(resp)
        return request_id(resp), payload_json(resp)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(20)))
    elapsed = time.monotonic() - started

    assert [r[1]["i"] for r in results] == list(range(20)), "each caller must get its own result"
    assert len({r[0] for r in results}) == 20, "request ids must be unique"
    tokens = {r[1]["token"] for r in results}
    assert len(tokens) > 1, "parallel invokes must start more than one environment"
    assert len(environment_processes(server.proc.pid, name)) == len(tokens), "one process per environment"
    # Serially this would take 10 s; concurrently, well under that (allow slow cold starts).
    assert elapsed < 8, f"20 parallel 0.5 s invokes took {elapsed:.1f}s"

    # Afterwards the function serves from warm environments.
    resp = payload_json(client.invoke(FunctionName=name, Payload=json.dumps({"i": 99})))
    assert resp["token"] in tokens



@pytest.fixture(scope="module")
def limited_server(server_factory):
    return server_factory(extra_args=["--max-concurrency", "2", "--keep-alive", "1"])


def test_concurrency_limit_gives_too_many_requests(limited_server):
    cl = limited_server.client()
    name = unique_name("limited")
    cl.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                       Code={"ZipFile": make_zip({"app.py": PY_SLEEPER})}, Timeout=30)
    cl.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})

    def one(i):
        try:
            resp = cl.invoke(FunctionName=name, Payload=json.dumps({"sleep": 1.5, "i": i}))
            return ("ok", payload_json(resp))
        except ClientError as e:
            return (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])

    with ThreadPoolExecutor(max_workers=5) as pool:
        outcomes = list(pool.map(one, range(5)))
    ok = [o for o in outcomes if o[0] == "ok"]
    throttled = [o for o in outcomes if o[0] == "TooManyRequestsException"]
    assert len(ok) >= 2, outcomes
    assert throttled, f"5 concurrent invokes with --max-concurrency 2 must throttle: {outcomes}"
    assert all(o[1] == 429 for o in throttled), outcomes
    assert len(ok) + len(throttled) == 5, outcomes


def test_idle_environments_stop_after_keep_alive(limited_server):
    cl = limited_server.client()
    name = unique_name("keepalive")
    cl.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                       Code={"ZipFile": make_zip({"app.py": PY_SLEEPER})})
    cl.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    first = payload_json(cl.invoke(FunctionName=name, Payload=b"{}"))
    envs = environment_processes(limited_server.proc.pid, name)
    assert envs, "the environment should be a process under nimbus"
    # --keep-alive 1: the idle environment is stopped within a few seconds.
    wait_until(lambda: all_gone(envs), timeout=6, what=f"idle environment to stop ({envs})")
    second = payload_json(cl.invoke(FunctionName=name, Payload=b"{}"))
    assert second["token"] != first["token"]
