"""The `nimbus` CLI's client commands (functions, invoke, logs, status) against a running server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time

import pytest
from support import PY_MULTI, free_port, wait_until

TIME_LINE = re.compile(r"^\d\d:\d\d:\d\d ")


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "NO_COLOR"}
    env.update(extra)
    return env


@pytest.fixture
def nimbus(nimbus_bin, endpoint):
    """nimbus(*args, input=None) -> CompletedProcess, run with --endpoint pointing at the server."""

    def run(*args, input: str | None = None, endpoint_arg: bool = True, env: dict | None = None):
        cmd = [str(nimbus_bin), *args, *(["--endpoint", endpoint] if endpoint_arg else [])]
        return subprocess.run(cmd, env=env or _env(), input=input, capture_output=True, text=True, timeout=60)

    return run


@pytest.fixture(scope="module")
def cli_fn(create_fn) -> str:
    return create_fn("nimbus-cli", {"app.py": PY_MULTI}, MemorySize=256, Timeout=30)


def test_status_json_and_text(nimbus, server):
    proc = nimbus("status", "--json")
    assert proc.returncode == 0, proc.stderr
    health = json.loads(proc.stdout)
    assert health["status"] == "ready"
    assert "lambda" in health["services"]
    # Live figures (environments, heartbeat ages) move between the two reads.
    assert health == server.health() | {"environments": health["environments"], "nodes": health["nodes"]}

    text = nimbus("status")
    assert text.returncode == 0, text.stderr
    assert f"at {server.endpoint}: ready" in text.stdout
    for label in ("services", "isolation", "environments", "memory"):
        assert re.search(rf"^  {label}\s+\S", text.stdout, re.M), text.stdout
    assert "\x1b[" not in text.stdout, "no colour when stdout is not a terminal"


def test_endpoint_defaults_to_aws_endpoint_url(nimbus, endpoint):
    proc = nimbus("status", "--json", endpoint_arg=False, env=_env(AWS_ENDPOINT_URL=endpoint))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "ready"


def test_not_running_is_one_clear_line_and_exit_2(nimbus_bin):
    dead = f"http://127.0.0.1:{free_port()}"
    for args in (["status"], ["functions", "--json"], ["invoke", "fn"], ["logs", "fn"]):
        proc = subprocess.run([str(nimbus_bin), *args, "--endpoint", dead], env=_env(), capture_output=True,
                              text=True, timeout=30)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stdout == ""
        assert proc.stderr == f"error: nimbus is not running at {dead} (start it with `nimbus up`)\n", args


def test_invoke_prints_payload_and_log_tail(nimbus, cli_fn, tmp_path):
    proc = nimbus("invoke", cli_fn, "--payload", json.dumps({"op": "echo", "value": {"b": 2, "a": [1]}}))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"b": 2, "a": [1]}
    assert "START RequestId:" in proc.stderr and "REPORT RequestId:" in proc.stderr, proc.stderr

    event = tmp_path / "event.json"
    event.write_text(json.dumps({"op": "print", "text": "from a file"}))
    proc = nimbus("invoke", cli_fn, "--payload", f"@{event}")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == "printed"
    assert "from a file" in proc.stderr

    proc = nimbus("invoke", cli_fn, "--payload", "@-", input=json.dumps({"op": "echo", "value": 7}))
    assert (proc.returncode, proc.stdout) == (0, "7\n"), proc.stderr


def test_invoke_json_and_qualifier(nimbus, cli_fn):
    proc = nimbus("invoke", cli_fn, "--qualifier", "$LATEST", "--json", "--payload", '{"op":"echo","value":"x"}')
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["statusCode"] == 200 and out["executedVersion"] == "$LATEST"
    assert out["functionError"] is None and out["payload"] == "x"
    assert "START RequestId:" in out["logResult"]


def test_invoke_function_error_exits_non_zero(nimbus, cli_fn):
    proc = nimbus("invoke", cli_fn, "--payload", json.dumps({"op": "raise", "message": "boom"}))
    assert proc.returncode == 1, proc
    assert json.loads(proc.stdout)["errorMessage"] == "boom"
    assert "error: ValueError: boom (Unhandled)" in proc.stderr, proc.stderr


def test_invoke_async_and_aws_errors(nimbus, cli_fn):
    proc = nimbus("invoke", cli_fn, "--async", "--payload", '{"op":"echo"}')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"queued an asynchronous invocation of {cli_fn}"), proc.stdout

    proc = nimbus("invoke", "nimbus-cli-no-such-function")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ResourceNotFoundException: "), proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr


def test_functions_table_and_json(nimbus, cli_fn):
    for _ in range(2):
        assert nimbus("invoke", cli_fn, "--payload", '{"op":"echo"}').returncode == 0

    proc = nimbus("functions", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)["functions"]}
    row = rows[cli_fn]
    assert (row["runtime"], row["memory"], row["state"]) == ("python3.12", 256, "Active")
    assert row["invocations"] >= 2 and row["warm"] >= 1

    proc = nimbus("functions")
    assert proc.returncode == 0, proc.stderr
    header, *lines = proc.stdout.splitlines()
    columns = ["NAME", "RUNTIME", "MEMORY", "STATE", "WARM", "BUSY", "INVOKES", "ERRORS", "P50"]
    # A REGION column joins when the server holds functions of several regions (other tests').
    assert header.split() in (columns, columns[:1] + ["REGION"] + columns[1:])
    mine = next(line for line in lines if line.startswith(cli_fn + " "))
    assert re.search(r"python3\.12\s+256 MB\s+Active\s+\d+\s+\d+\s+\d+\s+\d+\s+[\d.]+ m?s$", mine), mine


def test_logs_prints_short_lines_and_filters(nimbus, cli_fn):
    marker = f"cli-log-marker-{time.time_ns()}"
    assert nimbus("invoke", cli_fn, "--payload", json.dumps({"op": "print", "text": marker})).returncode == 0

    last = []

    def logged():
        last[:] = [nimbus("logs", cli_fn, "--since", "5m")]
        return last[0] if last[0].returncode == 0 and marker in last[0].stdout else None

    try:
        proc = wait_until(logged, timeout=10, interval=0.2, what="the marker in `nimbus logs`")
    except AssertionError as e:
        raise AssertionError(f"{e}; last run: {last[0]}") from None
    lines = proc.stdout.splitlines()
    assert all(TIME_LINE.match(line) for line in lines), lines
    assert any(line.endswith(" " + marker) for line in lines), lines
    assert any("START RequestId:" in line for line in lines), lines

    filtered = nimbus("logs", cli_fn, "--since", "5m", "--filter", marker)
    assert filtered.returncode == 0, filtered.stderr
    assert filtered.stdout.splitlines() and all(marker in line for line in filtered.stdout.splitlines())

    as_json = nimbus("logs", cli_fn, "--since", "5m", "--json", "--filter", marker)
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert events and all(event["message"].rstrip() == marker for event in events), events
    assert {"timestamp", "message", "eventId"} <= set(events[0])


def test_logs_follow_shows_new_invocations_once(nimbus_bin, nimbus, endpoint, cli_fn):
    follower = subprocess.Popen([str(nimbus_bin), "logs", cli_fn, "--follow", "--since", "1s", "--endpoint", endpoint],
                                env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(follower.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        markers = [f"cli-follow-{i}-{time.time_ns()}" for i in range(2)]
        for marker in markers:
            assert nimbus("invoke", cli_fn, "--payload", json.dumps({"op": "print", "text": marker})).returncode == 0
            wait_until(lambda: any(marker in line for line in lines) or follower.poll() is not None,
                       timeout=10, interval=0.1, what=f"{marker} in `nimbus logs --follow`")
            assert follower.poll() is None, f"the follower exited: {follower.stderr.read()}"
        time.sleep(1.5)  # a few more polls: nothing may be printed twice
        assert follower.poll() is None, follower.stderr.read()
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    for marker in markers:
        assert sum(marker in line for line in lines) == 1, lines
    assert all(TIME_LINE.match(line) for line in lines), lines


def test_logs_of_a_missing_group_name_it(nimbus):
    proc = nimbus("logs", "never-ran")
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr == (
        "error: log group /aws/lambda/never-ran does not exist (a function's group appears when it first runs)\n"
    )
