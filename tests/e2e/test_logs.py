"""CloudWatch Logs (`Logs_20140328`, JSON 1.1) end to end: boto3, the aws CLI v1 on PATH
(configured by AWS_ENDPOINT_URL), the aws CLI v2 at /usr/bin/aws when present (given
--endpoint-url), and the polling that `aws logs tail --follow` and `sam logs --tail` do.

Sections:
  1. The Logs API on its own (groups, streams, PutLogEvents, GetLogEvents, FilterLogEvents,
     retention, durability across a restart, the CLIs).
  2. LAMBDA-DEPENDENT: tests whose events come from invocations. They need the functions
     engine to write START/END/REPORT and the function's output into the logs service
     (`EngineConfig.log_sink` set to the `nimbus_logs::Logs` in src/main.rs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections import defaultdict

import pytest
from support import PY_MULTI, aws_cli_env, aws_client, wait_until

AWS_V2 = "/usr/bin/aws"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def logs_client(endpoint: str):
    return aws_client("logs", endpoint, read_timeout=30)


@pytest.fixture(scope="module")
def logs(server):
    return logs_client(server.endpoint)


def now_ms() -> int:
    return int(time.time() * 1000)


def unique_group(prefix: str = "e2e") -> str:
    return f"/nimbus/{prefix}/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def group(logs):
    name = unique_group()
    logs.create_log_group(logGroupName=name)
    yield name
    try:
        logs.delete_log_group(logGroupName=name)
    except logs.exceptions.ResourceNotFoundException:
        pass


def put(logs, group: str, stream: str, messages, start: int | None = None, create: bool = True):
    """Writes `messages` one millisecond apart, starting at `start` (default: now - len)."""
    if create:
        try:
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
    start = now_ms() - len(messages) if start is None else start
    events = [{"timestamp": start + i, "message": m} for i, m in enumerate(messages)]
    return logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


def messages(events) -> list[str]:
    return [e["message"] for e in events]


def error_of(call, *args, **kwargs):
    with pytest.raises(Exception) as info:
        call(*args, **kwargs)
    return info.value.response["Error"]


# ---------------------------------------------------------------------------
# 1. The Logs API
# ---------------------------------------------------------------------------


def test_log_group_lifecycle_and_aws_errors(logs):
    name = unique_group("life")
    logs.create_log_group(logGroupName=name, tags={"team": "data"})
    err = error_of(logs.create_log_group, logGroupName=name)
    assert err["Code"] == "ResourceAlreadyExistsException"

    found = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    assert len(found) == 1
    g = found[0]
    assert g["logGroupName"] == name
    assert g["arn"] == f"arn:aws:logs:us-east-1:000000000000:log-group:{name}:*"
    assert g["logGroupArn"] == f"arn:aws:logs:us-east-1:000000000000:log-group:{name}"
    assert g["storedBytes"] == 0 and g["metricFilterCount"] == 0
    assert abs(g["creationTime"] - now_ms()) < 60_000
    assert "retentionInDays" not in g
    assert logs.list_tags_log_group(logGroupName=name)["tags"] == {"team": "data"}

    logs.delete_log_group(logGroupName=name)
    err = error_of(logs.delete_log_group, logGroupName=name)
    assert err["Code"] == "ResourceNotFoundException"
    assert err["Message"] == "The specified log group does not exist."
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"] == []

    err = error_of(logs.create_log_group, logGroupName="has space")
    assert err["Code"] == "InvalidParameterException"


def test_describe_log_groups_prefix_pattern_and_pages(logs):
    base = unique_group("pages")
    names = [f"{base}/{i:02d}" for i in range(7)]
    for n in names:
        logs.create_log_group(logGroupName=n)
    page = logs.describe_log_groups(logGroupNamePrefix=base, limit=3)
    assert [g["logGroupName"] for g in page["logGroups"]] == names[:3]
    assert "nextToken" in page
    paged = []
    for p in logs.get_paginator("describe_log_groups").paginate(
        logGroupNamePrefix=base, PaginationConfig={"PageSize": 2}
    ):
        paged += [g["logGroupName"] for g in p["logGroups"]]
    assert paged == names
    suffix = base.rsplit("/", 1)[1]
    by_pattern = logs.describe_log_groups(logGroupNamePattern=suffix)["logGroups"]
    assert [g["logGroupName"] for g in by_pattern] == names
    assert set(by_pattern[0]) == {"logGroupName", "creationTime", "arn"}
    err = error_of(logs.describe_log_groups, logGroupNamePrefix=base, logGroupNamePattern=suffix)
    assert err["Code"] == "InvalidParameterException"
    for n in names:
        logs.delete_log_group(logGroupName=n)


def test_log_streams_are_listed_by_name_or_last_event_time(logs, group):
    t = now_ms() - 10_000
    for name, offset in [("b", 3), ("a", 1), ("c", 2)]:
        put(logs, group, name, ["x"], start=t + offset)
    err = error_of(logs.create_log_stream, logGroupName=group, logStreamName="a")
    assert err["Code"] == "ResourceAlreadyExistsException"
    err = error_of(logs.create_log_stream, logGroupName=group + "-none", logStreamName="a")
    assert err["Code"] == "ResourceNotFoundException"

    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["a", "b", "c"]
    a = streams[0]
    assert a["firstEventTimestamp"] == a["lastEventTimestamp"] == t + 1
    assert a["arn"].endswith(f"log-group:{group}:log-stream:a")
    assert "lastIngestionTime" in a and "creationTime" in a

    latest = logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime", descending=True, limit=1)
    assert latest["logStreams"][0]["logStreamName"] == "b"
    following = logs.describe_log_streams(
        logGroupName=group, orderBy="LastEventTime", descending=True, limit=1, nextToken=latest["nextToken"]
    )
    assert following["logStreams"][0]["logStreamName"] == "c"
    paged = []
    for p in logs.get_paginator("describe_log_streams").paginate(logGroupName=group, PaginationConfig={"PageSize": 1}):
        paged += [s["logStreamName"] for s in p["logStreams"]]
    assert paged == ["a", "b", "c"]
    assert [s["logStreamName"] for s in logs.describe_log_streams(
        logGroupIdentifier=f"arn:aws:logs:us-east-1:000000000000:log-group:{group}:*", logStreamNamePrefix="b"
    )["logStreams"]] == ["b"]
    err = error_of(logs.describe_log_streams, logGroupName=group, orderBy="LastEventTime", logStreamNamePrefix="a")
    assert err["Code"] == "InvalidParameterException"

    logs.delete_log_stream(logGroupName=group, logStreamName="a")
    err = error_of(logs.delete_log_stream, logGroupName=group, logStreamName="a")
    assert err["Code"] == "ResourceNotFoundException"
    assert err["Message"] == "The specified log stream does not exist."


def test_put_log_events_follows_aws_batch_rules(logs, group):
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    now = now_ms()
    err = error_of(logs.put_log_events, logGroupName=group, logStreamName="missing",
                   logEvents=[{"timestamp": now, "message": "x"}])
    assert err["Code"] == "ResourceNotFoundException"
    err = error_of(logs.put_log_events, logGroupName=group, logStreamName="s",
                   logEvents=[{"timestamp": now, "message": "b"}, {"timestamp": now - 5, "message": "a"}])
    assert err["Code"] == "InvalidParameterException"
    assert "chronological" in err["Message"]
    err = error_of(logs.put_log_events, logGroupName=group, logStreamName="s",
                   logEvents=[{"timestamp": now - 2 * DAY_MS, "message": "a"}, {"timestamp": now, "message": "b"}])
    assert err["Code"] == "InvalidParameterException"

    out = logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
        {"timestamp": now - 15 * DAY_MS, "message": "too old"},
        {"timestamp": now - 1, "message": "kept 1"},
        {"timestamp": now, "message": "kept 2"},
        {"timestamp": now + 3 * HOUR_MS, "message": "too new"},
    ])
    assert out["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 1, "tooNewLogEventStartIndex": 3}
    assert out["nextSequenceToken"]
    events = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True)["events"]
    assert messages(events) == ["kept 1", "kept 2"]
    assert all(abs(e["ingestionTime"] - now) < 60_000 for e in events)

    # The sequence token is ignored, as on AWS since 2023.
    logs.put_log_events(logGroupName=group, logStreamName="s", sequenceToken="whatever",
                        logEvents=[{"timestamp": now_ms(), "message": "kept 3"}])
    assert len(logs.get_log_events(logGroupName=group, logStreamName="s")["events"]) == 3


def test_get_log_events_tokens_and_the_end_of_stream_quirk(logs, group):
    start = now_ms() - 1_000
    put(logs, group, "s", [f"m{i}" for i in range(5)], start=start)

    latest = logs.get_log_events(logGroupName=group, logStreamName="s", limit=2)
    assert messages(latest["events"]) == ["m3", "m4"]
    earlier = logs.get_log_events(logGroupName=group, logStreamName="s", limit=2,
                                  nextToken=latest["nextBackwardToken"])
    assert messages(earlier["events"]) == ["m1", "m2"]

    seen, token, pages = [], None, 0
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True, limit=2, **kwargs)
        pages += 1
        seen += messages(page["events"])
        assert page["nextForwardToken"].startswith("f/") and page["nextBackwardToken"].startswith("b/")
        if page["nextForwardToken"] == token:  # AWS's end-of-stream signal
            assert page["events"] == []
            break
        token = page["nextForwardToken"]
    assert seen == [f"m{i}" for i in range(5)] and pages == 4

    # The end token picks up what is appended later.
    put(logs, group, "s", ["m5"], create=False)
    newer = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True, nextToken=token)
    assert messages(newer["events"]) == ["m5"]

    window = logs.get_log_events(logGroupName=group, logStreamName="s", startTime=start + 1, endTime=start + 3,
                                 startFromHead=True)
    assert messages(window["events"]) == ["m1", "m2"]
    err = error_of(logs.get_log_events, logGroupName=group, logStreamName="s", nextToken="f/123")
    assert err["Code"] == "InvalidParameterException"


@pytest.fixture
def filter_group(logs, group):
    start = now_ms() - 10_000
    put(logs, group, "app-1", ["INFO start", "ERROR disk full", json.dumps({"level": "ERROR", "latency": 120})],
        start=start)
    put(logs, group, "app-2", ["WARN slow", "ERROR timeout", json.dumps({"level": "INFO", "latency": 5,
        "user": {"id": 7}, "tags": ["a", "b"]})], start=start + 10)
    put(logs, group, "web", ['127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /index.html HTTP/1.0" 404 2326'],
        start=start + 20)
    return group, start


@pytest.mark.parametrize("pattern,expected", [
    ("", 7),
    ("ERROR", ["ERROR disk full", '{"level": "ERROR", "latency": 120}', "ERROR timeout"]),
    ("ERROR disk", ["ERROR disk full"]),
    ('"disk full"', ["ERROR disk full"]),
    ("?WARN ?timeout", ["WARN slow", "ERROR timeout"]),
    ("ERROR -disk -latency", ["ERROR timeout"]),
    ("erro", []),
    ('{ $.level = "ERROR" }', ['{"level": "ERROR", "latency": 120}']),
    ("{ $.latency > 100 }", ['{"level": "ERROR", "latency": 120}']),
    ("{ $.latency <= 5 && $.user.id = 7 }", ['{"level": "INFO", "latency": 5, "user": {"id": 7}, "tags": ["a", "b"]}']),
    ("{ $.level = ERR* || $.tags[1] = b }", ['{"level": "ERROR", "latency": 120}',
                                            '{"level": "INFO", "latency": 5, "user": {"id": 7}, "tags": ["a", "b"]}']),
    ("{ $.user IS NULL }", []),
    ("{ $.user NOT EXISTS && $.level = * }", ['{"level": "ERROR", "latency": 120}']),
    ("[ip, identity, user, timestamp, request = *index*, status = 4*, bytes > 1000]",
     ['127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /index.html HTTP/1.0" 404 2326']),
    ("%ERR[O]R d%", ["ERROR disk full"]),
])
def test_filter_patterns(logs, filter_group, pattern, expected):
    group, _ = filter_group
    events = logs.filter_log_events(logGroupName=group, filterPattern=pattern)["events"]
    if isinstance(expected, int):
        assert len(events) == expected
    else:
        assert messages(events) == expected


def test_filter_log_events_streams_times_and_pages(logs, filter_group):
    group, start = filter_group
    everything = logs.filter_log_events(logGroupName=group)
    events = everything["events"]
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    assert {e["logStreamName"] for e in events} == {"app-1", "app-2", "web"}
    assert all(len(e["eventId"]) == 56 and e["eventId"].isdigit() for e in events)
    assert "nextToken" not in everything

    only = logs.filter_log_events(logGroupName=group, logStreamNames=["app-2"], filterPattern="ERROR")
    assert messages(only["events"]) == ["ERROR timeout"]
    prefixed = logs.filter_log_events(logGroupIdentifier=group, logStreamNamePrefix="app")["events"]
    assert len(prefixed) == 6
    timed = logs.filter_log_events(logGroupName=group, startTime=start + 1, endTime=start + 10)["events"]
    assert messages(timed) == ["ERROR disk full", '{"level": "ERROR", "latency": 120}', "WARN slow"]

    paged = []
    for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group,
                                                                 PaginationConfig={"PageSize": 2}):
        assert len(page["events"]) <= 2
        paged += page["events"]
    assert [e["eventId"] for e in paged] == [e["eventId"] for e in events]

    err = error_of(logs.filter_log_events, logGroupName=group, logStreamNames=["a"], logStreamNamePrefix="a")
    assert err["Code"] == "InvalidParameterException"
    err = error_of(logs.filter_log_events, logGroupName=group, filterPattern="{ $.level = ")
    assert err["Code"] == "InvalidParameterException"
    err = error_of(logs.filter_log_events, logGroupName=group + "-none")
    assert err["Code"] == "ResourceNotFoundException"


def test_retention_policy_values_and_visibility(logs, group):
    err = error_of(logs.put_retention_policy, logGroupName=group, retentionInDays=2)
    assert err["Code"] == "InvalidParameterException"
    err = error_of(logs.put_retention_policy, logGroupName=group + "-none", retentionInDays=1)
    assert err["Code"] == "ResourceNotFoundException"
    now = now_ms()
    put(logs, group, "s", ["two days old"], start=now - 2 * DAY_MS)
    put(logs, group, "s", ["fresh"], start=now, create=False)
    logs.put_retention_policy(logGroupName=group, retentionInDays=1)
    assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["retentionInDays"] == 1
    # Expired events are gone from reads at once; their files go on the next expiry pass.
    assert messages(logs.filter_log_events(logGroupName=group)["events"]) == ["fresh"]
    out = logs.put_log_events(logGroupName=group, logStreamName="s",
                              logEvents=[{"timestamp": now - 2 * DAY_MS, "message": "expired"}])
    assert out["rejectedLogEventsInfo"] == {"expiredLogEventEndIndex": 1}
    logs.delete_retention_policy(logGroupName=group)
    assert "retentionInDays" not in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]


def test_events_and_metadata_survive_a_restart(server_factory):
    srv = server_factory()
    client = logs_client(srv.endpoint)
    group = unique_group("durable")
    client.create_log_group(logGroupName=group)
    client.put_retention_policy(logGroupName=group, retentionInDays=30)
    put(client, group, "s", ["before restart 1", "before restart 2"])
    srv.stop()
    srv.start()
    client = logs_client(srv.endpoint)
    described = client.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]
    assert described["retentionInDays"] == 30 and described["storedBytes"] > 0
    events = client.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True)["events"]
    assert messages(events) == ["before restart 1", "before restart 2"]
    srv.stop()


def test_unknown_operation_names_itself(server):
    import urllib.request

    request = urllib.request.Request(server.endpoint + "/", data=b"{}", method="POST", headers={
        "X-Amz-Target": "Logs_20140328.GetLogAnomalyDetector", "Content-Type": "application/x-amz-json-1.1"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    body = json.loads(info.value.read())
    assert body["__type"] == "UnknownOperationException"
    assert "GetLogAnomalyDetector" in body["message"]


@pytest.mark.skipif(shutil.which("aws") is None, reason="aws CLI not installed")
def test_aws_cli_reads_and_writes_logs(server, tmp_path):
    env = aws_cli_env(server.endpoint, tmp_path)

    def aws(*args):
        proc = subprocess.run(["aws", "logs", *args, "--output", "json"], env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, f"aws logs {' '.join(args)}:\n{proc.stderr}"
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    group = unique_group("cli")
    aws("create-log-group", "--log-group-name", group)
    aws("create-log-stream", "--log-group-name", group, "--log-stream-name", "s")
    events = json.dumps([{"timestamp": now_ms(), "message": "hello from the cli"},
                         {"timestamp": now_ms() + 1, "message": "ERROR from the cli"}])
    aws("put-log-events", "--log-group-name", group, "--log-stream-name", "s", "--log-events", events)
    described = aws("describe-log-groups", "--log-group-name-prefix", group)
    assert described["logGroups"][0]["logGroupName"] == group
    found = aws("filter-log-events", "--log-group-name", group, "--filter-pattern", "ERROR")
    assert messages(found["events"]) == ["ERROR from the cli"]
    got = aws("get-log-events", "--log-group-name", group, "--log-stream-name", "s", "--start-from-head")
    assert messages(got["events"]) == ["hello from the cli", "ERROR from the cli"]
    aws("delete-log-group", "--log-group-name", group)


def follow_like_aws_cli_v2(client, group: str, start: int, stop: threading.Event, out: list):
    """What `aws logs tail --follow` (CLI v2) does: FilterLogEvents with startTime and
    interleaved, following nextToken; at the end, poll again from the newest timestamp seen and
    drop events already shown (by eventId)."""
    kwargs = {"logGroupName": group, "interleaved": True, "startTime": start}
    seen = defaultdict(set)
    while not stop.is_set():
        response = client.filter_log_events(**kwargs)
        for event in response["events"]:
            if event["eventId"] not in seen[event["timestamp"]]:
                seen[event["timestamp"]].add(event["eventId"])
                out.append(event["message"])
        if seen:
            newest = max(seen)
            seen = defaultdict(set, {newest: seen[newest]})
        if "nextToken" in response:
            kwargs["nextToken"] = response["nextToken"]
        else:
            if seen:
                kwargs["startTime"] = max(seen)
            kwargs.pop("nextToken", None)
            stop.wait(0.2)


def test_tail_follow_polling_sees_new_events_once(logs, group):
    put(logs, group, "s", ["old line"])
    out: list = []
    stop = threading.Event()
    follower = threading.Thread(target=follow_like_aws_cli_v2, args=(logs_client(logs.meta.endpoint_url), group,
                                                                      now_ms() - 60_000, stop, out))
    follower.start()
    try:
        wait_until(lambda: out == ["old line"], timeout=5, what="the existing line")
        same_ms = now_ms()
        put(logs, group, "s", ["new 1", "new 2"], start=same_ms, create=False)
        put(logs, group, "other", ["new 3"], start=same_ms + 1)
        wait_until(lambda: len(out) >= 4, timeout=5, what="the new lines")
        time.sleep(0.5)
    finally:
        stop.set()
        follower.join()
    assert out == ["old line", "new 1", "new 2", "new 3"]


def test_sam_logs_tail_polling(logs, group):
    """`sam logs --tail` (CWLogPuller): FilterLogEvents from the latest event time + 1 ms,
    following nextToken, every second; ResourceNotFoundException while the group is missing."""
    err = error_of(logs.filter_log_events, logGroupName=group + "-later", interleaved=True, startTime=0)
    assert err["Code"] == "ResourceNotFoundException"
    put(logs, group, "s", ["first"])
    latest, got = now_ms() - 60_000, []
    for _ in range(2):
        kwargs = {"logGroupName": group, "interleaved": True, "startTime": latest}
        while True:
            result = logs.filter_log_events(**kwargs)
            for event in result["events"]:
                latest = max(latest, event["timestamp"])
                got.append(event["message"])
            if not result.get("nextToken"):
                break
            kwargs["nextToken"] = result["nextToken"]
        latest += 1
        put(logs, group, "s", ["second"], start=latest + 5, create=False)
    assert got == ["first", "second"]


@pytest.mark.skipif(not os.path.exists(AWS_V2), reason="aws CLI v2 not at /usr/bin/aws: apt-get install awscli")
def test_aws_cli_v2_tail_and_follow(logs, group, tmp_path):
    put(logs, group, "s", ["tail line one", "tail line two"])
    endpoint = logs.meta.endpoint_url
    env = aws_cli_env(None, tmp_path)
    done = subprocess.run([AWS_V2, "logs", "tail", group, "--since", "5m", "--format", "short",
                           "--endpoint-url", endpoint], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "tail line one" in done.stdout and "tail line two" in done.stdout

    follow = subprocess.Popen([AWS_V2, "logs", "tail", group, "--follow", "--format", "short",
                               "--endpoint-url", endpoint], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        put(logs, group, "s", ["followed line"], create=False)
        lines: list = []

        def reader():
            for line in follow.stdout:
                lines.append(line)
                if "followed line" in line:
                    return

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        thread.join(timeout=20)  # the CLI polls every 5 s
        assert any("followed line" in line for line in lines), "".join(lines)
    finally:
        follow.terminate()
        follow.wait(timeout=10)


# ---------------------------------------------------------------------------
# 2. LAMBDA-DEPENDENT: need the functions engine writing into the logs service (log_sink)
# ---------------------------------------------------------------------------


def lambda_events(logs, function: str, request_id: str, timeout: float = 10.0) -> list[dict]:
    """The events of one invocation in /aws/lambda/<function>, once its REPORT line is there."""
    group = f"/aws/lambda/{function}"

    def report():
        try:
            found = logs.filter_log_events(logGroupName=group, filterPattern=f'"{request_id}"')["events"]
        except logs.exceptions.ResourceNotFoundException:
            return None
        return found if any(e["message"].startswith("REPORT RequestId:") for e in found) else None

    wait_until(report, timeout=timeout, what=f"the REPORT line of {request_id} in {group}")
    stream = report()[0]["logStreamName"]
    events = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
    return events


def test_lambda_invocation_lines_in_its_log_group(client, logs, create_fn):
    """LAMBDA-DEPENDENT: START / output / END / REPORT in /aws/lambda/<fn>, one stream per
    environment named like AWS's (`YYYY/MM/DD/[$LATEST]<32 hex>`)."""
    name = create_fn("logs-lines", {"app.py": PY_MULTI}, MemorySize=128, Timeout=10)
    text = f"printed-{uuid.uuid4().hex[:8]}"
    response = client.invoke(FunctionName=name, Payload=json.dumps({"op": "print", "text": text}))
    request_id = response["ResponseMetadata"]["RequestId"]
    events = lambda_events(logs, name, request_id)
    lines = messages(events)
    start = next(i for i, m in enumerate(lines) if m.startswith(f"START RequestId: {request_id}"))
    assert lines[start].rstrip("\n") == f"START RequestId: {request_id} Version: $LATEST"
    rest = lines[start:]
    assert any(text in m for m in rest)
    assert any(m.rstrip("\n") == f"END RequestId: {request_id}" for m in rest)
    report = next(m for m in rest if m.startswith(f"REPORT RequestId: {request_id}"))
    for field in ("Duration:", "Billed Duration:", "Memory Size: 128 MB", "Max Memory Used:"):
        assert field in report, report
    streams = logs.describe_log_streams(logGroupName=f"/aws/lambda/{name}")["logStreams"]
    import re
    assert all(re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", s["logStreamName"]) for s in streams)


def test_lambda_filter_patterns_on_function_output(client, logs, create_fn):
    """LAMBDA-DEPENDENT: FilterLogEvents patterns over what a function printed."""
    name = create_fn("logs-filter", {"app.py": PY_MULTI}, Timeout=10)
    payload = json.dumps({"op": "print", "text": json.dumps({"level": "ERROR", "ms": 250})})
    request_id = client.invoke(FunctionName=name, Payload=payload)["ResponseMetadata"]["RequestId"]
    lambda_events(logs, name, request_id)
    group = f"/aws/lambda/{name}"
    assert len(logs.filter_log_events(logGroupName=group, filterPattern="{ $.ms > 200 }")["events"]) == 1
    assert len(logs.filter_log_events(logGroupName=group, filterPattern="?START ?END")["events"]) == 2
    assert len(logs.filter_log_events(logGroupName=group, filterPattern='"Billed Duration"')["events"]) == 1


@pytest.mark.skipif(not os.path.exists(AWS_V2), reason="aws CLI v2 not at /usr/bin/aws: apt-get install awscli")
def test_lambda_aws_logs_tail_follow_shows_a_new_invocation(client, logs, create_fn, tmp_path):
    """LAMBDA-DEPENDENT: `aws logs tail /aws/lambda/fn --follow --format short` prints a new
    invocation's lines."""
    name = create_fn("logs-tail", {"app.py": PY_MULTI}, Timeout=10)
    client.invoke(FunctionName=name, Payload=json.dumps({"op": "echo"}))  # creates the group
    wait_until(lambda: logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"],
               timeout=10, what="the function's log group")
    follow = subprocess.Popen([AWS_V2, "logs", "tail", f"/aws/lambda/{name}", "--follow", "--format", "short",
                               "--endpoint-url", logs.meta.endpoint_url], env=aws_cli_env(None, tmp_path),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        text = f"tail-me-{uuid.uuid4().hex[:8]}"
        request_id = client.invoke(FunctionName=name, Payload=json.dumps({"op": "print", "text": text}))[
            "ResponseMetadata"]["RequestId"]
        lines: list = []

        def reader():
            for line in follow.stdout:
                lines.append(line)
                if f"REPORT RequestId: {request_id}" in line:
                    return

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        thread.join(timeout=20)
        output = "".join(lines)
        assert f"START RequestId: {request_id}" in output, output
        assert text in output and f"REPORT RequestId: {request_id}" in output, output
    finally:
        follow.terminate()
        follow.wait(timeout=10)
