"""Regions and accounts end to end with boto3 and the aws CLI: a request's region is its SigV4
scope's, so same-named functions, queues, topics, tables, streams and event buses in two regions are
separate resources with their region in ARNs and URLs; an access key id of twelve digits names
the account; an SNS topic delivers to a queue in another region; each region keeps its state
across a restart, and nimbus's own region keeps its data where it always was."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

import conftest
from support import ROLE, aws_cli_env, make_zip, regional_client, unique_name

ACCOUNT = "000000000000"
OTHER_ACCOUNT = "111122223333"

client = regional_client


def receive_one(sqs, url: str, deadline_s: float = 15) -> dict:
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1, MaxNumberOfMessages=1)
        if got.get("Messages"):
            return got["Messages"][0]
    raise AssertionError(f"no message reached {url} within {deadline_s} s")


def test_same_named_queues_in_two_regions_are_separate(server):
    east, west = client("sqs", server.endpoint, "us-east-1"), client("sqs", server.endpoint, "us-west-2")
    name = unique_name("q")
    east_url = east.create_queue(QueueName=name)["QueueUrl"]
    west_url = west.create_queue(QueueName=name, Attributes={"DelaySeconds": "3"})["QueueUrl"]
    # Both on the host the client addressed; the signing region tells the two queues apart.
    assert west_url == east_url and west_url.startswith(server.endpoint)
    assert west_url.endswith(f"/{ACCOUNT}/{name}")
    west_arn = west.get_queue_attributes(QueueUrl=west_url, AttributeNames=["All"])["Attributes"]
    assert west_arn["QueueArn"] == f"arn:aws:sqs:us-west-2:{ACCOUNT}:{name}"
    assert west_arn["DelaySeconds"] == "3"
    east_attrs = east.get_queue_attributes(QueueUrl=east_url, AttributeNames=["All"])["Attributes"]
    assert east_attrs["QueueArn"] == f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"
    assert east_attrs["DelaySeconds"] == "0"
    west.send_message(QueueUrl=west_url, MessageBody="west", DelaySeconds=0)
    assert east.receive_message(QueueUrl=east_url, WaitTimeSeconds=0).get("Messages") is None
    assert receive_one(west, west_url)["Body"] == "west"
    # A queue made only in one region is invisible from another.
    only_west = unique_name("only-west")
    west.create_queue(QueueName=only_west)
    with pytest.raises(ClientError) as error:
        client("sqs", server.endpoint, "eu-west-1").get_queue_url(QueueName=only_west)
    assert error.value.response["Error"]["Code"] in ("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue")
    assert only_west not in " ".join(east.list_queues(QueueNamePrefix="only-west").get("QueueUrls", []))


def test_topics_tables_streams_and_buses_carry_their_region(server):
    name = unique_name("r")
    for region in ("us-east-1", "eu-central-1"):
        sns = client("sns", server.endpoint, region)
        assert sns.create_topic(Name=name)["TopicArn"] == f"arn:aws:sns:{region}:{ACCOUNT}:{name}"
        ddb = client("dynamodb", server.endpoint, region)
        table = ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )["TableDescription"]
        assert table["TableArn"] == f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}"
        ddb.put_item(TableName=name, Item={"k": {"S": "where"}, "region": {"S": region}})
        kinesis = client("kinesis", server.endpoint, region)
        kinesis.create_stream(StreamName=name, ShardCount=1)
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        assert summary["StreamARN"] == f"arn:aws:kinesis:{region}:{ACCOUNT}:stream/{name}"
        events = client("events", server.endpoint, region)
        bus = events.create_event_bus(Name=name)["EventBusArn"]
        assert bus == f"arn:aws:events:{region}:{ACCOUNT}:event-bus/{name}"
    for region in ("us-east-1", "eu-central-1"):
        item = client("dynamodb", server.endpoint, region).get_item(TableName=name, Key={"k": {"S": "where"}})
        assert item["Item"]["region"]["S"] == region
    # Made in neither: not found in a third region.
    with pytest.raises(ClientError) as error:
        client("dynamodb", server.endpoint, "ap-south-1").describe_table(TableName=name)
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_unknown_region_is_refused(server):
    sqs = client("sqs", server.endpoint, "moon-east-1")
    with pytest.raises(ClientError) as error:
        sqs.list_queues()
    assert error.value.response["Error"]["Message"] == (
        "Credential should be scoped to a valid region, not 'moon-east-1'."
    )


def test_twelve_digit_access_key_selects_the_account(server):
    name = unique_name("acct")
    mine = client("sqs", server.endpoint, "us-east-1", key=OTHER_ACCOUNT)
    url = mine.create_queue(QueueName=name)["QueueUrl"]
    assert url.endswith(f"/{OTHER_ACCOUNT}/{name}")
    arn = mine.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert arn == f"arn:aws:sqs:us-east-1:{OTHER_ACCOUNT}:{name}"
    topic = client("sns", server.endpoint, "us-west-2", key=OTHER_ACCOUNT).create_topic(Name=name)
    assert topic["TopicArn"] == f"arn:aws:sns:us-west-2:{OTHER_ACCOUNT}:{name}"
    # The default account sees none of it.
    with pytest.raises(ClientError):
        client("sqs", server.endpoint, "us-east-1").get_queue_url(QueueName=name)
    identity = client("sts", server.endpoint, "us-east-1", key=OTHER_ACCOUNT).get_caller_identity()
    assert identity["Account"] == OTHER_ACCOUNT


def test_topic_delivers_to_a_queue_in_another_region(server):
    name = unique_name("x")
    sns = client("sns", server.endpoint, "eu-west-1")
    sqs = client("sqs", server.endpoint, "ap-northeast-1")
    topic = sns.create_topic(Name=name)["TopicArn"]
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert queue_arn.startswith("arn:aws:sqs:ap-northeast-1:")
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    sns.publish(TopicArn=topic, Message="across regions")
    assert receive_one(sqs, url)["Body"] == "across regions"


def test_aws_cli_speaks_to_the_region_it_names(server, tmp_path):
    name = unique_name("cli")
    env = aws_cli_env(server.endpoint, tmp_path)

    def aws(*args: str, region: str) -> dict:
        out = subprocess.run(
            ["aws", "--region", region, "--output", "json", *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    arn = aws("sns", "create-topic", "--name", name, region="sa-east-1")["TopicArn"]
    assert arn == f"arn:aws:sns:sa-east-1:{ACCOUNT}:{name}"
    listed = [t["TopicArn"] for t in aws("sns", "list-topics", region="sa-east-1")["Topics"]]
    assert arn in listed
    elsewhere = [t["TopicArn"] for t in aws("sns", "list-topics", region="us-east-1")["Topics"]]
    assert not [t for t in elsewhere if t.endswith(f":{name}")]


def test_each_region_keeps_its_state_across_a_restart(server_factory):
    srv = server_factory()
    name = unique_name("keep")
    east, west = client("sqs", srv.endpoint, "us-east-1"), client("sqs", srv.endpoint, "us-west-2")
    east_url = east.create_queue(QueueName=name)["QueueUrl"]
    east.send_message(QueueUrl=east_url, MessageBody="east")
    west_url = west.create_queue(QueueName=name)["QueueUrl"]
    west.send_message(QueueUrl=west_url, MessageBody="west")
    client("sns", srv.endpoint, "us-west-2").create_topic(Name=name)
    srv.stop()
    srv.start()
    east, west = client("sqs", srv.endpoint, "us-east-1"), client("sqs", srv.endpoint, "us-west-2")
    assert receive_one(east, east.get_queue_url(QueueName=name)["QueueUrl"])["Body"] == "east"
    assert receive_one(west, west.get_queue_url(QueueName=name)["QueueUrl"])["Body"] == "west"
    topics = client("sns", srv.endpoint, "us-west-2").list_topics()["Topics"]
    assert f"arn:aws:sns:us-west-2:{ACCOUNT}:{name}" in [t["TopicArn"] for t in topics]
    east_topics = client("sns", srv.endpoint, "us-east-1").list_topics()["Topics"]
    assert not [t for t in east_topics if t["TopicArn"].endswith(f":{name}")]
    if not conftest.TEST_DATABASE:
        # nimbus's own region keeps its files where they always were; another region's beside.
        assert (srv.data_dir / "sqs" / "sqs.db").exists()
        assert (srv.data_dir / "us-west-2" / "sqs" / "sqs.db").exists()


def test_state_machines_live_per_region(server):
    name = unique_name("sm")
    definition = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "done", "End": True}}})
    role = f"arn:aws:iam::{ACCOUNT}:role/sfn"
    arns = {}
    for region in ("us-east-1", "us-west-2"):
        sfn = client("stepfunctions", server.endpoint, region)
        arns[region] = sfn.create_state_machine(name=name, definition=definition, roleArn=role)["stateMachineArn"]
        assert arns[region] == f"arn:aws:states:{region}:{ACCOUNT}:stateMachine:{name}"
    west = client("stepfunctions", server.endpoint, "us-west-2")
    execution = west.start_execution(stateMachineArn=arns["us-west-2"])["executionArn"]
    assert execution.startswith(f"arn:aws:states:us-west-2:{ACCOUNT}:execution:{name}:")
    deadline = time.time() + 15
    while (status := west.describe_execution(executionArn=execution)["status"]) == "RUNNING":
        assert time.time() < deadline, "the execution did not finish"
        time.sleep(0.1)
    assert status == "SUCCEEDED"
    with pytest.raises(ClientError) as error:
        client("stepfunctions", server.endpoint, "eu-north-1").describe_state_machine(stateMachineArn=arns["us-west-2"].replace("us-west-2", "eu-north-1"))
    assert error.value.response["Error"]["Code"] == "StateMachineDoesNotExist"


def test_state_machine_calls_services_as_its_own_account(server):
    # A state machine of account 123456789012 sends to that account's queue (its calls are signed
    # as its account, not as nimbus's default one).
    account, name = "123456789012", unique_name("sfn-acct")
    sqs = client("sqs", server.endpoint, "us-west-2", key=account)
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    assert url.endswith(f"/{account}/{name}")
    definition = json.dumps({"StartAt": "Send", "States": {"Send": {
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
        "Parameters": {"QueueUrl": url, "MessageBody.$": "$.body"}, "End": True}}})
    sfn = client("stepfunctions", server.endpoint, "us-west-2", key=account)
    machine = sfn.create_state_machine(name=name, definition=definition,
                                       roleArn=f"arn:aws:iam::{account}:role/sfn")["stateMachineArn"]
    assert machine == f"arn:aws:states:us-west-2:{account}:stateMachine:{name}"
    execution = sfn.start_execution(stateMachineArn=machine, input='{"body": "hello"}')["executionArn"]
    deadline = time.time() + 15
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.time() < deadline, "the execution did not finish"
        time.sleep(0.1)
    assert described["status"] == "SUCCEEDED", described
    assert receive_one(sqs, url)["Body"] == "hello"
    # The default account has no such queue.
    with pytest.raises(ClientError):
        client("sqs", server.endpoint, "us-west-2").get_queue_url(QueueName=name)


def test_rule_in_one_region_targets_a_queue_in_another(server):
    name = unique_name("rule")
    events = client("events", server.endpoint, "eu-west-2")
    sqs = client("sqs", server.endpoint, "eu-west-3")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventPattern=json.dumps({"source": [name]}))
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": queue_arn}])
    events.put_events(Entries=[{"Source": name, "DetailType": "t", "Detail": json.dumps({"from": "eu-west-2"})}])
    event = json.loads(receive_one(sqs, url)["Body"])
    assert event["region"] == "eu-west-2" and event["detail"] == {"from": "eu-west-2"}


def test_bucket_events_go_to_the_buses_of_the_buckets_region(server):
    # A bucket of eu-central-1 sends its object events to eu-central-1's default bus (the event's
    # region is the bucket's), and its queue notifications' records name that region too.
    name = unique_name("ebregion")
    events = client("events", server.endpoint, "eu-central-1")
    sqs = client("sqs", server.endpoint, "eu-central-1")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventPattern=json.dumps({"source": ["aws.s3"], "detail": {"bucket": {"name": [name]}}}))
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": queue_arn}])
    s3 = client("s3", server.endpoint, "eu-central-1")
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={
        "EventBridgeConfiguration": {},
        "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]})
    # The test event S3 sends on configuration comes first.
    assert json.loads(receive_one(sqs, url)["Body"])["Event"] == "s3:TestEvent"
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    bodies = [json.loads(receive_one(sqs, url)["Body"]) for _ in range(2)]
    [event] = [b for b in bodies if "detail-type" in b]
    assert event["region"] == "eu-central-1" and event["detail"]["object"]["key"] == "k"
    [records] = [b for b in bodies if "Records" in b]
    assert records["Records"][0]["awsRegion"] == "eu-central-1"


def test_log_groups_live_per_region(server):
    group = "/regions/" + unique_name("g")
    west, east = client("logs", server.endpoint, "us-west-2"), client("logs", server.endpoint, "us-east-1")
    for logs in (west, east):
        logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName="s")
    west.put_log_events(
        logGroupName=group, logStreamName="s", logEvents=[{"timestamp": int(time.time() * 1000), "message": "west"}]
    )
    described = west.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]
    assert described["arn"].startswith(f"arn:aws:logs:us-west-2:{ACCOUNT}:log-group:{group}")
    deadline = time.time() + 10
    while not (events := west.filter_log_events(logGroupName=group)["events"]):
        assert time.time() < deadline, "the event was not written"
        time.sleep(0.1)
    assert [e["message"] for e in events] == ["west"]
    assert east.filter_log_events(logGroupName=group)["events"] == []
    with pytest.raises(ClientError) as error:
        client("logs", server.endpoint, "ca-central-1").create_log_stream(logGroupName=group, logStreamName="s")
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_metrics_and_alarms_live_per_region(server):
    namespace = unique_name("Regions")
    west, east = client("cloudwatch", server.endpoint, "us-west-2"), client("cloudwatch", server.endpoint, "us-east-1")
    west.put_metric_data(Namespace=namespace, MetricData=[{"MetricName": "m", "Value": 1.0}])
    assert [m["MetricName"] for m in west.list_metrics(Namespace=namespace)["Metrics"]] == ["m"]
    assert east.list_metrics(Namespace=namespace)["Metrics"] == []
    west.put_metric_alarm(
        AlarmName=namespace, Namespace=namespace, MetricName="m", Statistic="Sum", Period=60,
        EvaluationPeriods=1, Threshold=5, ComparisonOperator="GreaterThanThreshold",
    )
    alarm = west.describe_alarms(AlarmNames=[namespace])["MetricAlarms"][0]
    assert alarm["AlarmArn"] == f"arn:aws:cloudwatch:us-west-2:{ACCOUNT}:alarm:{namespace}"
    assert east.describe_alarms(AlarmNames=[namespace])["MetricAlarms"] == []


@pytest.mark.skipif(not conftest.TEST_DATABASE, reason="several nodes need PostgreSQL: set NIMBUS_TEST_DATABASE")
def test_two_nodes_serve_every_region(server_factory, tmp_path_factory):
    url = conftest.fresh_database_url("regions_nodes")
    shared = tmp_path_factory.mktemp("shared")
    args = lambda name: ["--database", url, "--shared-dir", str(shared), "--node", name, "--node-expiry", "2"]
    a, b = server_factory(extra_args=args("a")), server_factory(extra_args=args("b"))
    name = unique_name("nodes")
    sqs_a, sqs_b = client("sqs", a.endpoint, "us-west-2"), client("sqs", b.endpoint, "us-west-2")
    queue_url = sqs_a.create_queue(QueueName=name)["QueueUrl"]
    # Each node names itself in the URL; the path is the queue's.
    assert sqs_b.get_queue_url(QueueName=name)["QueueUrl"].endswith(f"/{ACCOUNT}/{name}")
    queue_arn = sqs_b.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert queue_arn == f"arn:aws:sqs:us-west-2:{ACCOUNT}:{name}"
    # Topics in another region on each node deliver to the queue wherever SQS is served.
    for node in (a, b):
        sns = client("sns", node.endpoint, "eu-west-1")
        topic = sns.create_topic(Name=name)["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
        sns.publish(TopicArn=topic, Message=f"via {node.endpoint}")
        assert receive_one(sqs_b, queue_url)["Body"] == f"via {node.endpoint}"
        sns.unsubscribe(SubscriptionArn=sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"][0]["SubscriptionArn"])
    with pytest.raises(ClientError):
        client("sqs", b.endpoint, "us-east-1").get_queue_url(QueueName=name)


def wait_stack(cfn, name: str, deadline_s: float = 60) -> dict:
    deadline = time.time() + deadline_s
    while True:
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            return stack
        assert time.time() < deadline, f"{name} is still {stack['StackStatus']}"
        time.sleep(0.2)


def test_stack_makes_its_resources_in_its_region(server):
    name = unique_name("stack")
    template = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": name}},
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": name}},
            "Group": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": f"/{name}"}},
        },
        "Outputs": {
            "QueueArn": {"Value": {"Fn::GetAtt": ["Queue", "Arn"]}},
            "TopicArn": {"Value": {"Ref": "Topic"}},
        },
    }
    west = client("cloudformation", server.endpoint, "us-west-2")
    stack_id = west.create_stack(StackName=name, TemplateBody=json.dumps(template))["StackId"]
    assert stack_id.startswith(f"arn:aws:cloudformation:us-west-2:{ACCOUNT}:stack/{name}/")
    stack = wait_stack(west, name)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs == {
        "QueueArn": f"arn:aws:sqs:us-west-2:{ACCOUNT}:{name}",
        "TopicArn": f"arn:aws:sns:us-west-2:{ACCOUNT}:{name}",
    }
    assert client("sqs", server.endpoint, "us-west-2").get_queue_url(QueueName=name)["QueueUrl"]
    with pytest.raises(ClientError):
        client("sqs", server.endpoint, "us-east-1").get_queue_url(QueueName=name)
    assert client("logs", server.endpoint, "us-west-2").describe_log_groups(logGroupNamePrefix=f"/{name}")["logGroups"]
    east = client("cloudformation", server.endpoint, "us-east-1")
    with pytest.raises(ClientError) as error:
        east.describe_stacks(StackName=name)
    assert error.value.response["Error"]["Message"] == f"Stack with id {name} does not exist"
    west.delete_stack(StackName=name)
    deadline = time.time() + 60
    while [s for s in west.list_stacks()["StackSummaries"] if s["StackName"] == name and s["StackStatus"] != "DELETE_COMPLETE"]:
        assert time.time() < deadline, "the stack was not deleted"
        time.sleep(0.2)
    with pytest.raises(ClientError):
        client("sqs", server.endpoint, "us-west-2").get_queue_url(QueueName=name)


def test_another_regions_schedule_fires_after_a_restart_without_a_request(server_factory):
    srv = server_factory(extra_args=["--clock", "virtual"])
    name = unique_name("tick")
    sqs = client("sqs", srv.endpoint, "ap-southeast-2")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = client("events", srv.endpoint, "ap-southeast-2")
    events.put_rule(Name=name, ScheduleExpression="rate(5 minutes)")
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": queue_arn}])
    srv.stop()
    srv.start()
    # Only SQS is asked from now on: the region's EventBridge opened at start, as it holds rules.
    sqs = client("sqs", srv.endpoint, "ap-southeast-2")
    deadline = time.time() + 30
    while True:
        request = urllib.request.Request(f"{srv.endpoint}/_nimbus/clock/advance?seconds=301", method="POST")
        urllib.request.urlopen(request).close()
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2).get("Messages")
        if got:
            break
        assert time.time() < deadline, "the schedule did not fire after the restart"
    event = json.loads(got[0]["Body"])
    assert event["region"] == "ap-southeast-2" and event["detail-type"] == "Scheduled Event"


def test_nimbus_own_region_is_served_whatever_its_name(server_factory):
    local = server_factory(extra_args=["--region", "local"])
    sqs = client("sqs", local.endpoint, "local")
    url = sqs.create_queue(QueueName="here")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert arn == f"arn:aws:sqs:local:{ACCOUNT}:here"
    # Another account in nimbus's own region, and a real region beside it.
    other = client("sqs", local.endpoint, "local", key=OTHER_ACCOUNT)
    other_url = other.create_queue(QueueName="here")["QueueUrl"]
    assert other_url.endswith(f"/{OTHER_ACCOUNT}/here")
    assert client("sqs", local.endpoint, "us-west-2").list_queues().get("QueueUrls") is None


# What the function saw and where it ran; its output names its region (for the logs check).
WHERE = r'''
import os
def handler(event, context):
    print("ran in " + os.environ["AWS_REGION"])
    return {"region": os.environ["AWS_REGION"], "arn": context.invoked_function_arn,
            "key": os.environ["AWS_ACCESS_KEY_ID"], "where": os.environ.get("WHERE")}
'''

# Sends every event it gets to the queue RECORD (in its own region and account, as its SDK signs).
RECORDER = r'''
import json, os, boto3
def handler(event, context):
    boto3.client("sqs").send_message(QueueUrl=os.environ["RECORD"], MessageBody=json.dumps(event))
    return {"statusCode": 200, "body": "recorded in " + os.environ["AWS_REGION"]}
'''


def make_function(lam, name: str, code: str = WHERE, **extra) -> str:
    arn = lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                              Code={"ZipFile": make_zip({"app.py": code})}, **extra)["FunctionArn"]
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return arn


def invoke(lam, function: str) -> dict:
    response = lam.invoke(FunctionName=function, Payload=b"{}")
    assert "FunctionError" not in response, response["Payload"].read()
    return json.loads(response["Payload"].read())


def test_functions_live_per_region(server):
    name = unique_name("fn")
    east, west = client("lambda", server.endpoint, "us-east-1"), client("lambda", server.endpoint, "eu-west-1")
    arns = {}
    for region, lam in (("us-east-1", east), ("eu-west-1", west)):
        arns[region] = make_function(lam, name, Environment={"Variables": {"WHERE": region}})
        assert arns[region] == f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"
    for region, lam in (("us-east-1", east), ("eu-west-1", west)):
        ran = invoke(lam, name)
        assert (ran["region"], ran["where"], ran["arn"]) == (region, region, arns[region])
    # Named by ARN from a client of another region, it is not reachable, as on AWS.
    for call in (lambda: east.invoke(FunctionName=arns["eu-west-1"], Payload=b"{}"),
                 lambda: east.get_function(FunctionName=arns["eu-west-1"])):
        with pytest.raises(east.exceptions.ResourceNotFoundException) as refused:
            call()
        message = refused.value.response["Error"]["Message"]
        assert message == "Functions from 'eu-west-1' are not reachable in this region ('us-east-1')"
    assert invoke(west, arns["eu-west-1"])["where"] == "eu-west-1"
    # A function made in one region only is invisible from the other.
    only_west = unique_name("only-west")
    make_function(west, only_west)
    with pytest.raises(ClientError) as error:
        east.get_function(FunctionName=only_west)
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert only_west not in [f["FunctionName"] for f in east.list_functions()["Functions"]]
    assert only_west in [f["FunctionName"] for f in west.list_functions()["Functions"]]
    # Its output goes to its own region's logs.
    assert invoke(west, only_west)["region"] == "eu-west-1"
    west_logs, east_logs = client("logs", server.endpoint, "eu-west-1"), client("logs", server.endpoint, "us-east-1")
    deadline = time.time() + 15

    def logged_in_west() -> bool:
        # The group is made when the function's first output is shipped, after the invoke answers.
        try:
            events = west_logs.filter_log_events(logGroupName=f"/aws/lambda/{only_west}")["events"]
        except west_logs.exceptions.ResourceNotFoundException:
            return False
        return any("ran in eu-west-1" in e["message"] for e in events)

    while not logged_in_west():
        assert time.time() < deadline, "the function's output did not reach eu-west-1's logs"
        time.sleep(0.2)
    assert east_logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{only_west}")["logGroups"] == []
    # Deleting one region's function leaves the other's code (the same package) in place: a new
    # environment of the east one still starts.
    west.delete_function(FunctionName=name)
    east.update_function_configuration(FunctionName=name, Environment={"Variables": {"WHERE": "still east"}})
    east.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    assert invoke(east, name)["where"] == "still east"


def test_every_regions_functions_are_listed_and_read_in_their_region(server):
    name = unique_name("inv")
    east, west = client("lambda", server.endpoint, "us-east-1"), client("lambda", server.endpoint, "eu-west-2")
    arns = {region: make_function(lam, name) for region, lam in (("us-east-1", east), ("eu-west-2", west))}
    # nimbus's inventory (`nimbus functions`, the console) lists both, each with its region.
    with urllib.request.urlopen(f"{server.endpoint}/_nimbus/functions", timeout=10) as response:
        listed = [f for f in json.load(response)["functions"] if f["name"] == name]
    assert sorted((f["region"], f["arn"]) for f in listed) == sorted(arns.items())
    shown = subprocess.run([str(server.binary), "functions", "--endpoint", server.endpoint],
                           capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert "REGION" in shown.stdout.splitlines()[0]
    assert [line.split()[1] for line in shown.stdout.splitlines() if line.startswith(name + " ")] \
        == ["eu-west-2", "us-east-1"]
    # Cloud Control (what `sam list endpoints` reads) answers in the region it is signed for.
    for region, arn in arns.items():
        control = client("cloudcontrol", server.endpoint, region)
        found = control.get_resource(TypeName="AWS::Lambda::Function", Identifier=name)
        assert json.loads(found["ResourceDescription"]["Properties"])["Arn"] == arn
        names = [json.loads(d["Properties"])["FunctionName"]
                 for d in control.list_resources(TypeName="AWS::Lambda::Function")["ResourceDescriptions"]]
        assert name in names
    only_west = unique_name("inv-west")
    make_function(west, only_west)
    with pytest.raises(ClientError) as missing:
        client("cloudcontrol", server.endpoint, "us-east-1").get_resource(
            TypeName="AWS::Lambda::Function", Identifier=only_west)
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # The per-minute history the console's sparklines draw is the signing region's.
    invoke(west, only_west)

    def history(region: str) -> dict:
        request = urllib.request.Request(f"{server.endpoint}/_nimbus/metrics/functions?minutes=5", headers={
            "authorization": f"AWS4-HMAC-SHA256 Credential=test/20240101/{region}/monitoring/aws4_request"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["functions"]

    deadline = time.time() + 30
    while only_west not in history("eu-west-2"):
        assert time.time() < deadline, "eu-west-2's history never showed its function"
        time.sleep(0.5)
    assert only_west not in history("us-east-1")


def test_functions_live_per_account(server):
    # An access key id of twelve digits names the account: its functions' ARNs carry it, and the
    # SDK inside the function signs as that account.
    name = unique_name("acct-fn")
    mine = client("lambda", server.endpoint, "eu-west-1", key=OTHER_ACCOUNT)
    arn = make_function(mine, name)
    assert arn == f"arn:aws:lambda:eu-west-1:{OTHER_ACCOUNT}:function:{name}"
    ran = invoke(mine, name)
    assert (ran["arn"], ran["key"]) == (arn, OTHER_ACCOUNT)
    # Named by ARN, it is found from another account's client of its region too.
    assert invoke(client("lambda", server.endpoint, "eu-west-1"), arn)["arn"] == arn
    with pytest.raises(ClientError):
        client("lambda", server.endpoint, "eu-west-1").get_function(FunctionName=name)


def test_triggers_reach_the_function_in_the_region_its_arn_names(server):
    region, name = "eu-west-1", unique_name("trig")
    lam, sqs = client("lambda", server.endpoint, region), client("sqs", server.endpoint, region)
    record = sqs.create_queue(QueueName=f"{name}-record")["QueueUrl"]
    function = make_function(lam, name, RECORDER, Environment={"Variables": {"RECORD": record}})
    assert function.startswith(f"arn:aws:lambda:{region}:")
    seen: list[str] = []

    def arrives(marker: str, deadline_s: float = 30) -> None:
        deadline = time.time() + deadline_s
        while not [body for body in seen if marker in body]:
            assert time.time() < deadline, f"{marker} did not reach the function; it saw {seen}"
            got = sqs.receive_message(QueueUrl=record, WaitTimeSeconds=1, MaxNumberOfMessages=10)
            for message in got.get("Messages", []):
                seen.append(message["Body"])
                sqs.delete_message(QueueUrl=record, ReceiptHandle=message["ReceiptHandle"])

    # SNS of another region delivers to it.
    sns = client("sns", server.endpoint, "us-east-1")
    topic = sns.create_topic(Name=name)["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=function)
    sns.publish(TopicArn=topic, Message="from-sns")
    arrives("from-sns")
    # Its region's SQS queue, through an event source mapping of its region.
    source = sqs.create_queue(QueueName=f"{name}-source")["QueueUrl"]
    source_arn = sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    lam.create_event_source_mapping(EventSourceArn=source_arn, FunctionName=name, BatchSize=1)
    sqs.send_message(QueueUrl=source, MessageBody="from-sqs")
    arrives("from-sqs")
    # An EventBridge rule of its region.
    events = client("events", server.endpoint, region)
    events.put_rule(Name=name, EventPattern=json.dumps({"source": [name]}))
    events.put_targets(Rule=name, Targets=[{"Id": "fn", "Arn": function}])
    events.put_events(Entries=[{"Source": name, "DetailType": "t", "Detail": json.dumps({"m": "from-events"})}])
    arrives("from-events")
    # A bucket's notifications.
    s3 = client("s3", server.endpoint, region)
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={
        "LambdaFunctionConfigurations": [{"LambdaFunctionArn": function, "Events": ["s3:ObjectCreated:*"]}]})
    s3.put_object(Bucket=name, Key="from-s3", Body=b"x")
    arrives("from-s3")
    # A Step Functions task of its region.
    sfn = client("stepfunctions", server.endpoint, region)
    definition = json.dumps({"StartAt": "Call", "States": {"Call": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function, "Payload": {"m": "from-sfn"}}, "End": True}}})
    machine = sfn.create_state_machine(name=name, definition=definition,
                                       roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")["stateMachineArn"]
    sfn.start_execution(stateMachineArn=machine)
    arrives("from-sfn")
    # A Kinesis stream of its region, through a mapping.
    kinesis = client("kinesis", server.endpoint, region)
    kinesis.create_stream(StreamName=name, ShardCount=1)
    stream_arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=name, StartingPosition="LATEST",
                                    BatchSize=1)
    deadline = time.time() + 30
    while True:
        # LATEST: records put before the mapping's poller has its position may be passed over.
        kinesis.put_record(StreamName=name, Data=b"from-kinesis", PartitionKey="k")
        try:
            arrives(base64.b64encode(b"from-kinesis").decode(), deadline_s=2)
            break
        except AssertionError:
            assert time.time() < deadline, "the stream's records did not reach the function"
    # An HTTP API (in nimbus's own region) integrated with the function by ARN.
    api = client("apigatewayv2", server.endpoint, "us-east-1").create_api(Name=name, ProtocolType="HTTP",
                                                                          Target=function)
    url = f"{server.endpoint}/_aws/execute-api/{api['ApiId']}/from-api"
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == b"recorded in eu-west-1"
    arrives("from-api")


def test_another_regions_functions_survive_a_restart(server_factory):
    srv = server_factory()
    name = unique_name("keep-fn")
    make_function(client("lambda", srv.endpoint, "ap-south-1"), name, Environment={"Variables": {"WHERE": "kept"}})
    srv.stop()
    srv.start()
    assert invoke(client("lambda", srv.endpoint, "ap-south-1"), name)["where"] == "kept"
    with pytest.raises(ClientError):
        client("lambda", srv.endpoint, "us-east-1").get_function(FunctionName=name)
    if not conftest.TEST_DATABASE:
        assert (srv.data_dir / "ap-south-1" / "nimbus.db").exists()


def test_reads_of_an_unused_region_or_account_store_nothing(server_factory):
    # List/Describe/Get calls to a region (or account) nothing was ever made in answer as AWS does
    # with nothing there, and leave no state behind; the first write makes the region's state.
    srv = server_factory()
    for region, key in (("ap-southeast-2", "test"), ("ca-central-1", "444455556666")):
        def c(service: str):
            return client(service, srv.endpoint, region, key=key)

        def code(call, **args) -> str:
            with pytest.raises(ClientError) as error:
                call(**args)
            return error.value.response["Error"]["Code"]

        assert c("sqs").list_queues().get("QueueUrls", []) == []
        assert code(c("sqs").get_queue_url, QueueName="nope") in ("QueueDoesNotExist",
                                                                  "AWS.SimpleQueueService.NonExistentQueue")
        assert c("sns").list_topics()["Topics"] == []
        assert c("dynamodb").list_tables()["TableNames"] == []
        assert code(c("dynamodb").describe_table, TableName="nope") == "ResourceNotFoundException"
        assert c("dynamodbstreams").list_streams()["Streams"] == []
        assert c("lambda").list_functions()["Functions"] == []
        assert code(c("lambda").get_function, FunctionName="nope") == "ResourceNotFoundException"
        assert c("logs").describe_log_groups()["logGroups"] == []
        assert c("kinesis").list_streams()["StreamNames"] == []
        assert c("events").list_rules()["Rules"] == []
        assert c("scheduler").list_schedules()["Schedules"] == []
        assert c("stepfunctions").list_state_machines()["stateMachines"] == []
        assert c("cloudformation").list_stacks()["StackSummaries"] == []
        assert c("cloudwatch").list_metrics()["Metrics"] == []
        if not conftest.TEST_DATABASE:
            assert not (srv.data_dir / region).exists(), sorted(p.name for p in (srv.data_dir / region).iterdir())
        # A write opens the real state; what it made is read back at once.
        url = c("sqs").create_queue(QueueName="made")["QueueUrl"]
        assert c("sqs").list_queues()["QueueUrls"] == [url]
        assert c("sns").list_topics()["Topics"] == []
        if not conftest.TEST_DATABASE:
            assert (srv.data_dir / region).exists()
