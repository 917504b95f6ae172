"""EventBridge rules and EventBridge Scheduler end to end, with boto3 and the aws CLI: patterns,
input transformation, scheduled rules and schedules on a virtual clock, Lambda and SQS targets,
dead-letter queues, and firings that survive a restart."""

from __future__ import annotations

import datetime
import json
import subprocess
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from support import aws_client, unique_name

ROLE = "arn:aws:iam::000000000000:role/scheduler"


@pytest.fixture(scope="module")
def virtual(server_factory):
    """A nimbus whose clock tests move forward."""
    return server_factory(extra_args=["--clock", "virtual"])


def clients(endpoint: str):
    return aws_client("events", endpoint), aws_client("sqs", endpoint, read_timeout=30)


def queue(sqs, fifo: bool = False) -> tuple[str, str]:
    name = unique_name("eb") + (".fifo" if fifo else "")
    attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def receive(sqs, url: str, count: int = 1, wait: float = 10) -> list[dict]:
    got: list[dict] = []
    deadline = time.monotonic() + wait
    while len(got) < count and time.monotonic() < deadline:
        reply = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        )
        for message in reply.get("Messages", []):
            got.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return got


def advance(endpoint: str, seconds: float) -> dict:
    request = urllib.request.Request(f"{endpoint}/_nimbus/clock/advance?seconds={seconds}", method="POST")
    with urllib.request.urlopen(request) as reply:
        return json.load(reply)


def clock_now(endpoint: str) -> float:
    with urllib.request.urlopen(f"{endpoint}/_nimbus/clock") as reply:
        return json.load(reply)["now_ms"] / 1000


def test_put_events_reach_matching_rules_transformed(server):
    events, sqs = clients(server.endpoint)
    url, arn = queue(sqs)
    rule = unique_name("orders")
    pattern = {"source": ["shop"], "detail": {"total": [{"numeric": [">", 10]}], "currency": [{"prefix": "EU"}]}}
    events.put_rule(Name=rule, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule, Targets=[
        {"Id": "whole", "Arn": arn},
        {"Id": "path", "Arn": arn, "InputPath": "$.detail.items[0]"},
        {"Id": "template", "Arn": arn, "InputTransformer": {
            "InputPathsMap": {"total": "$.detail.total", "source": "$.source"},
            "InputTemplate": '{"total": <total>, "from": "<source>", "rule": "<aws.events.rule-name>"}'}},
    ])
    detail = {"total": 12.5, "currency": "EUR", "items": [{"sku": "a"}]}
    reply = events.put_events(Entries=[
        {"Source": "shop", "DetailType": "order", "Detail": json.dumps(detail), "Resources": ["r1"]},
        {"Source": "shop", "DetailType": "order", "Detail": json.dumps({**detail, "total": 3})},
        {"Source": "shop", "DetailType": "order", "Detail": "not json"},
    ])
    assert reply["FailedEntryCount"] == 1
    assert reply["Entries"][2]["ErrorCode"] == "MalformedDetail"
    event_id = reply["Entries"][0]["EventId"]
    bodies = sorted((m["Body"] for m in receive(sqs, url, 3)), key=len)
    assert len(bodies) == 3
    assert json.loads(bodies[0]) == {"sku": "a"}
    assert json.loads(bodies[1]) == {"total": 12.5, "from": "shop", "rule": rule}
    whole = json.loads(bodies[2])
    assert whole["id"] == event_id and whole["detail"] == detail and whole["resources"] == ["r1"]
    assert whole["detail-type"] == "order" and whole["account"] == "000000000000" and whole["version"] == "0"
    # The unmatched event (total 3) went nowhere.
    assert receive(sqs, url, 1, wait=1.5) == []


def test_custom_bus_rules_and_errors(server):
    events, sqs = clients(server.endpoint)
    url, arn = queue(sqs)
    bus = unique_name("bus")
    bus_arn = events.create_event_bus(Name=bus)["EventBusArn"]
    assert bus_arn.endswith(f":event-bus/{bus}")
    with pytest.raises(ClientError) as raised:
        events.create_event_bus(Name=bus)
    assert raised.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    events.put_rule(Name="all", EventBusName=bus, EventPattern='{"source": [{"anything-but": "noise"}]}')
    events.put_targets(Rule="all", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    assert events.list_targets_by_rule(Rule="all", EventBusName=bus)["Targets"][0]["Arn"] == arn
    assert events.list_rule_names_by_target(TargetArn=arn, EventBusName=bus)["RuleNames"] == ["all"]
    events.put_events(Entries=[
        {"Source": "app", "DetailType": "d", "Detail": "{}", "EventBusName": bus_arn},
        {"Source": "noise", "DetailType": "d", "Detail": "{}", "EventBusName": bus},
    ])
    assert [json.loads(m["Body"])["source"] for m in receive(sqs, url, 1)] == ["app"]
    with pytest.raises(events.exceptions.ResourceNotFoundException) as raised:
        events.describe_rule(Name="missing", EventBusName=bus)
    assert raised.value.response["Error"]["Message"] == f"Rule missing does not exist on EventBus {bus}."
    with pytest.raises(ClientError, match="Rule can't be deleted since it has targets."):
        events.delete_rule(Name="all", EventBusName=bus)
    with pytest.raises(events.exceptions.InvalidEventPatternException):
        events.put_rule(Name="bad", EventBusName=bus, EventPattern='{"source": "not-a-list"}')
    with pytest.raises(ClientError, match="ScheduleExpression is supported only on the default event bus"):
        events.put_rule(Name="tick", EventBusName=bus, ScheduleExpression="rate(5 minutes)")
    events.remove_targets(Rule="all", EventBusName=bus, Ids=["q"])
    events.delete_rule(Name="all", EventBusName=bus)
    events.delete_event_bus(Name=bus)
    with pytest.raises(events.exceptions.ResourceNotFoundException):
        events.describe_event_bus(Name=bus)


@pytest.mark.parametrize("pattern, matches", [
    ({"source": ["aws.ec2"]}, True),
    ({"detail": {"state": ["running", "pending"]}}, True),
    ({"detail": {"state": [{"anything-but": ["running"]}]}}, False),
    ({"detail": {"count": [{"numeric": [">=", 5, "<", 10]}]}}, True),
    ({"detail": {"missing": [{"exists": False}]}}, True),
    ({"detail-type": [{"prefix": "EC2"}]}, True),
    ({"detail": {"instance-id": [{"suffix": "0ab"}]}}, True),
    ({"source": [{"equals-ignore-case": "AWS.EC2"}]}, True),
])
def test_test_event_pattern_follows_aws_examples(server, pattern, matches):
    events, _ = clients(server.endpoint)
    event = {
        "id": "7bf73129-1428-4cd3-a780-95db273d1602", "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2", "account": "123456789012", "time": "2026-12-06T10:00:00Z", "region": "us-east-1",
        "resources": [], "detail": {"instance-id": "i-0123456789abcd0ab", "state": "running", "count": 7},
    }
    reply = events.test_event_pattern(EventPattern=json.dumps(pattern), Event=json.dumps(event))
    assert reply["Result"] is matches


def test_scheduled_rule_fires_on_the_virtual_clock(virtual):
    events, sqs = clients(virtual.endpoint)
    url, arn = queue(sqs)
    rule = unique_name("tick")
    rule_arn = events.put_rule(Name=rule, ScheduleExpression="rate(5 minutes)")["RuleArn"]
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": arn}])
    assert receive(sqs, url, 1, wait=1) == []
    advance(virtual.endpoint, 5 * 60 + 1)
    [message] = receive(sqs, url, 1)
    event = json.loads(message["Body"])
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["resources"] == [rule_arn] and event["detail"] == {}
    # Disabled, it does not fire; enabled again, it does.
    events.disable_rule(Name=rule)
    advance(virtual.endpoint, 5 * 60 + 1)
    assert receive(sqs, url, 1, wait=1.5) == []
    assert events.describe_rule(Name=rule)["State"] == "DISABLED"
    events.enable_rule(Name=rule)
    advance(virtual.endpoint, 5 * 60 + 1)
    assert len(receive(sqs, url, 1)) == 1
    events.remove_targets(Rule=rule, Ids=["q"])
    events.delete_rule(Name=rule)


def test_cron_rule_fires_at_the_minute_aws_grammar_says(virtual):
    events, sqs = clients(virtual.endpoint)
    url, arn = queue(sqs)
    rule = unique_name("cron")
    now = datetime.datetime.fromtimestamp(clock_now(virtual.endpoint), datetime.timezone.utc)
    target = now + datetime.timedelta(hours=2)
    events.put_rule(Name=rule, ScheduleExpression=f"cron({target.minute} {target.hour} * * ? *)")
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": arn}])
    with urllib.request.urlopen(f"{virtual.endpoint}/_nimbus/schedules") as reply:
        listed = [s for s in json.load(reply)["schedules"] if s["name"] == rule]
    assert listed[0]["next_fire"] == target.strftime("%Y-%m-%dT%H:%M:00Z")
    advance(virtual.endpoint, 3600)
    assert receive(sqs, url, 1, wait=1) == []
    advance(virtual.endpoint, 3600)
    [message] = receive(sqs, url, 1)
    assert json.loads(message["Body"])["time"] == target.strftime("%Y-%m-%dT%H:%M:00Z")


def test_rule_invokes_a_function(server, create_fn):
    events, sqs = clients(server.endpoint)
    url, _ = queue(sqs)
    code = (
        "import boto3, json, os\n"
        "def handler(event, context):\n"
        "    boto3.client('sqs').send_message(QueueUrl=os.environ['OUT'], MessageBody=json.dumps(event))\n"
    )
    name = create_fn("eb-fn", {"app.py": code}, Environment={"Variables": {"OUT": url}}, Timeout=30)
    function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    rule = unique_name("to-fn")
    events.put_rule(Name=rule, EventPattern='{"source": ["pipeline"]}')
    events.put_targets(Rule=rule, Targets=[{"Id": "fn", "Arn": function_arn}])
    events.put_events(Entries=[{"Source": "pipeline", "DetailType": "loaded", "Detail": '{"rows": 10}'}])
    [message] = receive(sqs, url, 1, wait=30)
    assert json.loads(message["Body"])["detail"] == {"rows": 10}


def test_failing_target_reaches_its_dead_letter_queue(server):
    events, sqs = clients(server.endpoint)
    dlq_url, dlq_arn = queue(sqs)
    rule = unique_name("dlq")
    missing = "arn:aws:lambda:us-east-1:000000000000:function:does-not-exist"
    events.put_rule(Name=rule, EventPattern='{"source": ["dlq-test"]}')
    events.put_targets(Rule=rule, Targets=[{
        "Id": "gone", "Arn": missing,
        "RetryPolicy": {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60},
        "DeadLetterConfig": {"Arn": dlq_arn},
    }])
    events.put_events(Entries=[{"Source": "dlq-test", "DetailType": "d", "Detail": '{"n": 1}'}])
    [message] = receive(sqs, dlq_url, 1)
    assert json.loads(message["Body"])["detail"] == {"n": 1}
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["RULE_ARN"].endswith(f":rule/{rule}")
    assert attributes["TARGET_ARN"] == missing
    assert attributes["ERROR_CODE"]


def test_scheduler_at_fires_once_and_deletes_itself(virtual):
    scheduler = aws_client("scheduler", virtual.endpoint)
    _, sqs = clients(virtual.endpoint)
    url, arn = queue(sqs, fifo=True)
    at = datetime.datetime.fromtimestamp(clock_now(virtual.endpoint) + 3600, datetime.timezone.utc)
    name = unique_name("once")
    scheduler.create_schedule(
        Name=name, ScheduleExpression=f"at({at:%Y-%m-%dT%H:%M:%S})", FlexibleTimeWindow={"Mode": "OFF"},
        ActionAfterCompletion="DELETE",
        Target={"Arn": arn, "RoleArn": ROLE, "Input": '{"when": "<aws.scheduler.scheduled-time>"}',
                "SqsParameters": {"MessageGroupId": "g"}},
    )
    got = scheduler.get_schedule(Name=name)
    assert got["State"] == "ENABLED" and got["ScheduleExpressionTimezone"] == "UTC"
    with pytest.raises(scheduler.exceptions.ConflictException):
        scheduler.create_schedule(Name=name, ScheduleExpression="rate(1 hour)", FlexibleTimeWindow={"Mode": "OFF"},
                                  Target={"Arn": arn, "RoleArn": ROLE})
    advance(virtual.endpoint, 3601)
    [message] = receive(sqs, url, 1)
    assert json.loads(message["Body"]) == {"when": f"{at:%Y-%m-%dT%H:%M:%S}Z"}
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name=name)
    advance(virtual.endpoint, 3600)
    assert receive(sqs, url, 1, wait=1) == []


def test_scheduler_groups_time_zones_and_validation(virtual):
    scheduler = aws_client("scheduler", virtual.endpoint)
    _, sqs = clients(virtual.endpoint)
    _, arn = queue(sqs)
    group = unique_name("grp")
    group_arn = scheduler.create_schedule_group(Name=group, Tags=[{"Key": "team", "Value": "data"}])["ScheduleGroupArn"]
    assert scheduler.list_tags_for_resource(ResourceArn=group_arn)["Tags"] == [{"Key": "team", "Value": "data"}]
    scheduler.create_schedule(
        Name="daily", GroupName=group, ScheduleExpression="cron(0 9 * * ? *)",
        ScheduleExpressionTimezone="America/New_York", FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": arn, "RoleArn": ROLE},
    )
    with urllib.request.urlopen(f"{virtual.endpoint}/_nimbus/schedules") as reply:
        [listed] = [s for s in json.load(reply)["schedules"] if s["group"] == group]
    # 09:00 in New York is 14:00 or 13:00 UTC, by daylight saving.
    assert listed["next_fire"][11:] in ("14:00:00Z", "13:00:00Z")
    names = [s["Name"] for s in scheduler.list_schedules(GroupName=group)["Schedules"]]
    assert names == ["daily"]
    for bad in ["cron(0 9 * * * *)", "rate(1 minutes)", "every day"]:
        with pytest.raises(scheduler.exceptions.ValidationException):
            scheduler.create_schedule(Name="bad", GroupName=group, ScheduleExpression=bad,
                                      FlexibleTimeWindow={"Mode": "OFF"}, Target={"Arn": arn, "RoleArn": ROLE})
    with pytest.raises(scheduler.exceptions.ValidationException):
        scheduler.create_schedule(Name="bad", GroupName=group, ScheduleExpression="rate(1 hour)",
                                  ScheduleExpressionTimezone="Mars/Olympus",
                                  FlexibleTimeWindow={"Mode": "OFF"}, Target={"Arn": arn, "RoleArn": ROLE})
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name="daily", GroupName="no-such-group")
    scheduler.delete_schedule_group(Name=group)
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule_group(Name=group)


def test_a_schedule_due_while_down_fires_once_after_restart(server_factory):
    srv = server_factory()
    scheduler = aws_client("scheduler", srv.endpoint)
    _, sqs = clients(srv.endpoint)
    url, arn = queue(sqs)
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=3)
    scheduler.create_schedule(
        Name="soon", ScheduleExpression=f"at({at:%Y-%m-%dT%H:%M:%S})", FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": arn, "RoleArn": ROLE, "Input": '{"n": 1}'},
    )
    srv.kill()
    time.sleep(max(0.0, (at - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) + 1.5)
    srv.start()
    sqs = aws_client("sqs", srv.endpoint, read_timeout=30)
    url = sqs.get_queue_url(QueueName=url.rsplit("/", 1)[1])["QueueUrl"]
    messages = receive(sqs, url, 2, wait=4)
    assert [m["Body"] for m in messages] == ['{"n": 1}']


def test_aws_cli_lists_rules(server):
    events, _ = clients(server.endpoint)
    rule = unique_name("cli")
    events.put_rule(Name=rule, EventPattern='{"source": ["cli"]}', Description="from the CLI test")
    out = subprocess.run(
        ["aws", "events", "list-rules", "--name-prefix", rule, "--endpoint-url", server.endpoint],
        capture_output=True, text=True, check=True,
        env={**__import__("os").environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"},
    )
    [listed] = json.loads(out.stdout)["Rules"]
    assert listed["Name"] == rule and listed["Description"] == "from the CLI test"


def test_nimbus_cli_shows_schedules_and_moves_the_clock(virtual, nimbus_bin):
    events, _ = clients(virtual.endpoint)
    rule = unique_name("cli-tick")
    events.put_rule(Name=rule, ScheduleExpression="rate(2 hours)")
    env = {**__import__("os").environ, "AWS_ENDPOINT_URL": virtual.endpoint}
    listed = json.loads(subprocess.run([str(nimbus_bin), "schedules", "--json"], env=env, capture_output=True,
                                       text=True, check=True).stdout)
    [row] = [s for s in listed["schedules"] if s["name"] == rule]
    table = subprocess.run([str(nimbus_bin), "schedules"], env=env, capture_output=True, text=True, check=True).stdout
    assert rule in table and "rate(2 hours)" in table
    before = clock_now(virtual.endpoint)
    out = subprocess.run([str(nimbus_bin), "clock", "advance", "1h", "--json"], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert json.loads(out)["now_ms"] / 1000 - before >= 3600
    assert row["next_fire_ms"] / 1000 - before <= 7200 + 1
    events.delete_rule(Name=rule)


def test_lambda_destination_on_an_event_bus(server, create_fn):
    events, sqs = clients(server.endpoint)
    url, arn = queue(sqs)
    lam = aws_client("lambda", server.endpoint)
    name = create_fn("eb-dest", {"app.py": "def handler(event, context):\n    return {'seen': event['n']}\n"})
    rule = unique_name("results")
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["lambda"], "detail-type": [{"prefix": "Lambda Function Invocation Result"}]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": arn}])
    bus = "arn:aws:events:us-east-1:000000000000:event-bus/default"
    lam.put_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": bus}})
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"n": 7}')
    [message] = receive(sqs, url, 1, wait=30)
    event = json.loads(message["Body"])
    assert event["detail-type"] == "Lambda Function Invocation Result - Success"
    assert event["detail"]["responsePayload"] == {"seen": 7}
    assert event["detail"]["requestContext"]["condition"] == "Success"


def test_s3_sends_object_events_to_eventbridge(server):
    events, sqs = clients(server.endpoint)
    s3 = aws_client("s3", server.endpoint)
    url, arn = queue(sqs)
    bucket = unique_name("ebs3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})
    assert "EventBridgeConfiguration" in s3.get_bucket_notification_configuration(Bucket=bucket)
    rule = unique_name("s3")
    events.put_rule(Name=rule, EventPattern=json.dumps({
        "source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"bucket": {"name": [bucket]},
                                                                           "object": {"key": [{"prefix": "in/"}]}}}))
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": arn}])
    s3.put_object(Bucket=bucket, Key="in/a.csv", Body=b"abc")
    s3.put_object(Bucket=bucket, Key="out/b.csv", Body=b"abc")
    [message] = receive(sqs, url, 1)
    event = json.loads(message["Body"])
    assert event["detail-type"] == "Object Created" and event["resources"] == [f"arn:aws:s3:::{bucket}"]
    assert event["detail"]["object"]["key"] == "in/a.csv" and event["detail"]["object"]["size"] == 3
    assert event["detail"]["reason"] == "PutObject"
    assert receive(sqs, url, 1, wait=1.5) == []
