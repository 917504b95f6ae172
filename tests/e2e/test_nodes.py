"""Several nimbus nodes on one PostgreSQL database and one shared directory: what one node is told,
every node serves; what a node that dies leaves unfinished, another finishes."""

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request

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

# One object per run: an Event invoke leaves event/<n>/<request id>, an SQS record sqs/<n>/<id>.
MARK_EACH = """
import json, os, boto3
s3 = boto3.client("s3")
def handler(event, context):
    bucket = os.environ["BUCKET"]
    if "Records" in event:
        for record in event["Records"]:
            n = json.loads(record["body"])["n"]
            s3.put_object(Bucket=bucket, Key=f"sqs/{n}/{record['messageId']}", Body=b"x")
        return
    s3.put_object(Bucket=bucket, Key=f"event/{event['n']}/{context.aws_request_id}", Body=b"x")
"""


@pytest.fixture(scope="module")
def nodes(server_factory, tmp_path_factory):
    url = conftest.fresh_database_url("nodes")
    shared = tmp_path_factory.mktemp("shared")
    args = lambda name: ["--database", url, "--shared-dir", str(shared), "--node", name, "--node-expiry", "2"]
    return [server_factory(extra_args=args(name)) for name in ("a", "b", "c")]


def make_function(endpoint: str, prefix: str, source: str, **extra) -> str:
    """A python function made through the node at `endpoint`; its name."""
    name = unique_name(prefix)
    lambda_client(endpoint).create_function(
        FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": source})}, **extra,
    )
    return name


def invoke(endpoint: str, name: str, payload: dict) -> dict:
    response = lambda_client(endpoint).invoke(FunctionName=name, Payload=json.dumps(payload))
    assert "FunctionError" not in response, response["Payload"].read()
    return json.loads(response["Payload"].read())


@needs_database
def test_a_function_made_on_one_node_runs_on_every_node_and_follows_updates(nodes):
    a, b, c = nodes
    assert [n.health()["node"] for n in nodes] == ["a", "b", "c"]
    name = make_function(a.endpoint, "everywhere", ECHO.replace("VERSION", "one"))
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
    name = make_function(doomed.endpoint, "mark", MARK, Timeout=30)
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


def retried(call, *args, **kwargs):
    """A call that a 503 (SQS moving to another node) may refuse for a moment, as SDKs retry it."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as error:  # botocore's ClientError or a refused connection
            code = getattr(error, "response", {}).get("Error", {}).get("Code")
            if code not in ("ServiceUnavailable", None) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@needs_database
def test_sqs_is_one_queue_whichever_node_is_asked(nodes):
    a, b, c = nodes
    url = aws_client("sqs", a.endpoint).create_queue(QueueName=unique_name("across"),
                                                     Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    aws_client("sqs", b.endpoint).send_message(QueueUrl=url, MessageBody="from b")
    received = aws_client("sqs", c.endpoint).receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
    assert [m["Body"] for m in received] == ["from b"]
    # In flight: no node hands it out again within its visibility timeout.
    for node in (a, b, c):
        assert "Messages" not in aws_client("sqs", node.endpoint).receive_message(QueueUrl=url, WaitTimeSeconds=0)
    # A receipt handle from c deletes it through a.
    aws_client("sqs", a.endpoint).delete_message(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"])
    attributes = aws_client("sqs", b.endpoint).get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")


@needs_database
def test_a_thousand_messages_received_on_three_nodes_each_arrive_once(nodes):
    url = aws_client("sqs", nodes[0].endpoint).create_queue(
        QueueName=unique_name("spread"), Attributes={"VisibilityTimeout": "120"})["QueueUrl"]
    sender = aws_client("sqs", nodes[1].endpoint)
    bodies = [str(n) for n in range(1000)]
    for batch in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[batch:batch + 10])]
        assert not sender.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
    seen: list[str] = []
    lock = threading.Lock()

    def consume(node):
        sqs = aws_client("sqs", node.endpoint)
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            if not messages:
                return
            with lock:
                seen.extend(m["Body"] for m in messages)
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])

    threads = [threading.Thread(target=consume, args=(node,)) for node in nodes for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(seen) == 1000 and sorted(seen, key=int) == bodies, f"{len(seen)} received, {len(set(seen))} distinct"


@needs_database
def test_a_thousand_events_and_an_sqs_mapping_survive_the_kill_of_a_node(server_factory, tmp_path_factory):
    """Three nodes; 1,000 Event invokes spread over them while the first (which also serves SQS)
    is killed -9 halfway: every acknowledged event runs at least once (duplicates are counted and
    reported), and the event source mapping keeps consuming the queue on the node SQS moves to."""
    url = conftest.fresh_database_url("killed-halfway")
    shared = tmp_path_factory.mktemp("shared")
    args = lambda name: ["--database", url, "--shared-dir", str(shared), "--node", name, "--node-expiry", "2",
                         "--quiet"]
    trio = [server_factory(extra_args=args(name)) for name in ("first", "second", "third")]
    first, second, third = trio
    bucket = unique_name("marks")
    aws_client("s3", second.endpoint).create_bucket(Bucket=bucket)
    name = make_function(second.endpoint, "mark", MARK_EACH, Timeout=30, Environment={"Variables": {"BUCKET": bucket}})
    queue_url = aws_client("sqs", second.endpoint).create_queue(QueueName=unique_name("feed"))["QueueUrl"]
    queue_arn = aws_client("sqs", second.endpoint).get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    lambda_client(second.endpoint).create_event_source_mapping(
        EventSourceArn=queue_arn, FunctionName=name, BatchSize=10)
    acknowledged: list[int] = []
    lock = threading.Lock()

    def invoke_through(node, numbers):
        client = lambda_client(node.endpoint)
        for n in numbers:
            try:
                client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"n": n}))
            except Exception:
                continue  # the killed node: not acknowledged, nothing promised
            with lock:
                acknowledged.append(n)

    threads = [threading.Thread(target=invoke_through, args=(node, range(i, 1000, 3))) for i, node in enumerate(trio)]
    [t.start() for t in threads]
    while len(acknowledged) < 500:
        time.sleep(0.01)
    first.kill()
    [t.join() for t in threads]
    for n in range(50):
        retried(aws_client("sqs", third.endpoint).send_message, QueueUrl=queue_url, MessageBody=json.dumps({"n": n}))
    s3 = aws_client("s3", third.endpoint)
    deadline = time.monotonic() + 240
    while True:
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for o in page.get("Contents", [])]
        events = {int(k.split("/")[1]) for k in keys if k.startswith("event/")}
        messages = {int(k.split("/")[1]) for k in keys if k.startswith("sqs/")}
        if events >= set(acknowledged) and messages == set(range(50)):
            break
        assert time.monotonic() < deadline, (
            f"{len(set(acknowledged) - events)} acknowledged events and {50 - len(messages)} messages never ran")
        time.sleep(0.5)
    twice = sum(1 for k in keys if k.startswith("event/")) - len(events)
    print(f"{len(acknowledged)} events acknowledged, all ran; {twice} ran twice")
    assert len(acknowledged) >= 500


@needs_database
def test_a_functions_logs_are_read_through_any_node(nodes):
    a, _, c = nodes
    name = make_function(a.endpoint, "logged", "def handler(event, context):\n    print('hello from', event['node'])\n")
    assert "FunctionError" not in lambda_client(c.endpoint).invoke(FunctionName=name, Payload=b'{"node": "c"}')
    logs = aws_client("logs", a.endpoint)
    deadline = time.monotonic() + 15
    while True:
        try:
            events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}", filterPattern='"hello from"')["events"]
        except logs.exceptions.ResourceNotFoundException:
            events = []
        if [e["message"].strip() for e in events] == ["hello from c"]:
            break
        assert time.monotonic() < deadline, f"node a shows {events}"
        time.sleep(0.2)


@needs_database
def test_invocations_on_any_node_count_in_the_metrics_every_node_answers(nodes):
    a, b, c = nodes
    name = make_function(a.endpoint, "counted", ECHO.replace("VERSION", "m"))
    for node in (b, c, c):
        invoke(node.endpoint, name, {})
    import datetime
    now = datetime.datetime.now(datetime.timezone.utc)
    deadline = time.monotonic() + 20
    while True:
        points = aws_client("cloudwatch", a.endpoint).get_metric_statistics(
            Namespace="AWS/Lambda", MetricName="Invocations", Dimensions=[{"Name": "FunctionName", "Value": name}],
            StartTime=now - datetime.timedelta(minutes=5), EndTime=now + datetime.timedelta(minutes=5),
            Period=60, Statistics=["Sum"])["Datapoints"]
        if sum(p["Sum"] for p in points) == 3:
            break
        assert time.monotonic() < deadline, f"node a counts {points}"
        time.sleep(0.3)


def forge_figures(endpoint: str, function: str) -> int:
    """What a function (or anyone on the port) gets for posting invocation figures as a node would."""
    record = [{"function": function, "version": "$LATEST", "invocation": None}]
    request = urllib.request.Request(f"{endpoint}/_nimbus/metrics/records", data=json.dumps(record).encode(),
                                     headers={"x-nimbus-node-secret": "guessed"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def test_figures_are_taken_only_from_nodes(server):
    assert forge_figures(server.endpoint, "anyone") == 403


@needs_database
def test_figures_from_outside_the_nodes_are_refused_where_figures_are_kept(nodes):
    # Whichever node keeps the figures refuses, and the others forward it there.
    assert {forge_figures(node.endpoint, "anyone") for node in nodes} == {403}


@needs_database
def test_a_schedule_fires_once_whichever_nodes_run(nodes):
    import datetime

    a, b, c = nodes
    sqs = aws_client("sqs", a.endpoint, read_timeout=30)
    url = sqs.create_queue(QueueName=unique_name("fired"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # Every node has EventBridge open (each was asked something), so each could fire it.
    for node in nodes:
        aws_client("events", node.endpoint).list_rules()
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=3)
    aws_client("scheduler", b.endpoint).create_schedule(
        Name=unique_name("once"), ScheduleExpression=f"at({at:%Y-%m-%dT%H:%M:%S})",
        FlexibleTimeWindow={"Mode": "OFF"}, Target={"Arn": arn, "RoleArn": ROLE, "Input": '{"fired": 1}'})
    got = []
    # Until well after it was due: a second firing would have arrived by then.
    end = time.monotonic() + max(0.0, at.timestamp() - time.time()) + 4
    while time.monotonic() < end:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            got.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert got == ['{"fired": 1}']
