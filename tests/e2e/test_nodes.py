"""Several nimbus nodes on one PostgreSQL database and one shared directory: what one node is told,
every node serves; what a node that dies leaves unfinished, another finishes."""

import json
import subprocess
import time

import pytest

import conftest
from conftest import lambda_client
from support import ROLE, aws_client, free_port, make_zip, unique_name

needs_database = pytest.mark.skipif(
    not conftest.TEST_DATABASE,
    reason="several nodes need PostgreSQL: set NIMBUS_TEST_DATABASE (scripts/test does where PostgreSQL is installed)",
)

ECHO = """
import os
def handler(event, context):
    return {"version": "VERSION", "event": event}
"""

# Each event leaves an object named after its `n`, through whichever node runs it.
MARK = """
import os, time, boto3
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    boto3.client("s3").put_object(Bucket=event["bucket"], Key=f"done/{event['n']}", Body=b"x")
    return "ok"
"""


@pytest.fixture(scope="module")
def nodes(server_factory, tmp_path_factory):
    url = conftest.fresh_database_url("nodes")
    shared = tmp_path_factory.mktemp("shared")
    args = lambda name: ["--database", url, "--shared-dir", str(shared), "--node", name, "--node-expiry", "2"]
    return [server_factory(extra_args=args(name)) for name in ("a", "b", "c")]


def invoke(endpoint: str, name: str, payload: dict) -> dict:
    response = lambda_client(endpoint).invoke(FunctionName=name, Payload=json.dumps(payload))
    assert "FunctionError" not in response, response["Payload"].read()
    return json.loads(response["Payload"].read())


@needs_database
def test_a_function_made_on_one_node_runs_on_every_node_and_follows_updates(nodes):
    a, b, c = nodes
    assert [n.health()["node"] for n in nodes] == ["a", "b", "c"]
    name = unique_name("everywhere")
    lambda_client(a.endpoint).create_function(
        FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": ECHO.replace("VERSION", "one")})},
    )
    for node in (b, c):
        assert invoke(node.endpoint, name, {"from": node.port}) == {"version": "one", "event": {"from": node.port}}
    # Warm on c, then changed on b: c runs the new code (it was told), not its warm environment.
    lambda_client(b.endpoint).update_function_code(
        FunctionName=name, ZipFile=make_zip({"app.py": ECHO.replace("VERSION", "two")}))
    deadline = time.monotonic() + 10
    while invoke(c.endpoint, name, {})["version"] != "two":
        assert time.monotonic() < deadline, "node c still runs the old code"
        time.sleep(0.1)
    lambda_client(a.endpoint).delete_function(FunctionName=name)
    deadline = time.monotonic() + 10
    while True:
        try:
            lambda_client(c.endpoint).get_function(FunctionName=name)
        except lambda_client(c.endpoint).exceptions.ResourceNotFoundException:
            break
        assert time.monotonic() < deadline, "node c still lists the deleted function"
        time.sleep(0.1)


@needs_database
def test_nimbus_status_lists_every_node_with_its_heartbeat(nodes, nimbus_bin):
    a = nodes[0]
    deadline = time.monotonic() + 10
    while [(n["name"], n["alive"]) for n in a.health()["nodes"]] != [("a", True), ("b", True), ("c", True)]:
        assert time.monotonic() < deadline, a.health()
        time.sleep(0.1)
    text = subprocess.run([str(nimbus_bin), "status", "--endpoint", a.endpoint],
                          capture_output=True, text=True, timeout=30, check=True).stdout
    assert "database      postgres://" in text, text
    lines = [line.split() for line in text.splitlines() if line.strip().startswith("node ")]
    assert [line[1] for line in lines] == ["a", "b", "c"], text
    assert lines[0][2:4] == ["(this", "one)"] and "(this" not in lines[1] + lines[2], text
    assert all("alive" in line for line in lines), text


@needs_database
def test_objects_written_through_one_node_are_read_through_another(nodes):
    a, _, c = nodes
    bucket = unique_name("shared")
    aws_client("s3", a.endpoint).create_bucket(Bucket=bucket)
    aws_client("s3", a.endpoint).put_object(Bucket=bucket, Key="k", Body=b"bytes from a")
    assert aws_client("s3", c.endpoint).get_object(Bucket=bucket, Key="k")["Body"].read() == b"bytes from a"
    listed = aws_client("s3", c.endpoint).list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["k"]


@needs_database
def test_events_a_killed_node_accepted_are_run_by_the_others(server_factory, tmp_path_factory):
    """kill -9 of the node that accepted the events: the others take them over once its heartbeat
    expires, and every event runs (at least once, as on AWS)."""
    url = conftest.fresh_database_url("takeover")
    shared = tmp_path_factory.mktemp("shared")
    args = lambda name: ["--database", url, "--shared-dir", str(shared), "--node", name, "--node-expiry", "2",
                         "--max-concurrency", "2"]
    survivor = server_factory(extra_args=args("survivor"))
    doomed = server_factory(extra_args=args("doomed"))
    bucket = unique_name("marks")
    aws_client("s3", survivor.endpoint).create_bucket(Bucket=bucket)
    name = unique_name("mark")
    lambda_client(doomed.endpoint).create_function(
        FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler", Timeout=30,
        Code={"ZipFile": make_zip({"app.py": MARK})},
    )
    client = lambda_client(doomed.endpoint)
    count = 12
    for n in range(count):
        payload = json.dumps({"bucket": bucket, "n": n, "sleep": 1})
        assert client.invoke(FunctionName=name, InvocationType="Event", Payload=payload)["StatusCode"] == 202
    doomed.kill()
    s3 = aws_client("s3", survivor.endpoint)
    deadline = time.monotonic() + 60
    while True:
        done = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="done/").get("Contents", [])}
        if done == {f"done/{n}" for n in range(count)}:
            break
        assert time.monotonic() < deadline, f"only {sorted(done)} ran:\n{survivor.log_tail()}"
        time.sleep(0.2)
    assert "took over" in survivor.log_text()


def test_a_database_that_cannot_be_reached_stops_the_start_with_its_reason(nimbus_bin, tmp_path):
    port = free_port()
    out = subprocess.run(
        [str(nimbus_bin), "up", "--port", "0", "--data-dir", str(tmp_path / "data"),
         "--database", f"postgres://nobody@127.0.0.1:{port}/nothing"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode != 0
    assert f"cannot connect to PostgreSQL at postgres://nobody@127.0.0.1:{port}/nothing" in out.stderr
    not_a_url = subprocess.run(
        [str(nimbus_bin), "up", "--port", "0", "--data-dir", str(tmp_path / "data"), "--database", "mysql://x"],
        capture_output=True, text=True, timeout=60,
    )
    assert not_a_url.returncode != 0 and "not a PostgreSQL URL" in not_a_url.stderr
