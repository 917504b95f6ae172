"""CloudWatch Logs subscription and metric filters: stored and described as AWS does."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from support import ROLE, aws_client, make_zip, unique_name


@pytest.fixture(scope="module")
def logs(server):
    return aws_client("logs", server.endpoint)


@pytest.fixture
def group(logs):
    name = f"/app/{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=name)
    return name


def test_subscription_filters(logs, group):
    target = "arn:aws:lambda:us-east-1:000000000000:function:processor"
    logs.put_subscription_filter(logGroupName=group, filterName="errors", filterPattern="ERROR",
                                 destinationArn=target)
    [stored] = logs.describe_subscription_filters(logGroupName=group)["subscriptionFilters"]
    assert (stored["filterName"], stored["filterPattern"], stored["destinationArn"]) == ("errors", "ERROR", target)
    assert stored["distribution"] == "ByLogStream" and stored["logGroupName"] == group
    logs.put_subscription_filter(logGroupName=group, filterName="all", filterPattern="", destinationArn=target)
    with pytest.raises(logs.exceptions.LimitExceededException):
        logs.put_subscription_filter(logGroupName=group, filterName="third", filterPattern="", destinationArn=target)
    assert [f["filterName"] for f in logs.describe_subscription_filters(logGroupName=group, filterNamePrefix="er")["subscriptionFilters"]] == ["errors"]
    logs.delete_subscription_filter(logGroupName=group, filterName="errors")
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.delete_subscription_filter(logGroupName=group, filterName="errors")
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.describe_subscription_filters(logGroupName=group + "-missing")


def test_metric_filters(logs, group):
    transformation = {"metricName": "Errors", "metricNamespace": "App", "metricValue": "1", "defaultValue": 0.0}
    logs.put_metric_filter(logGroupName=group, filterName="count-errors", filterPattern="[level=ERROR, ...]",
                           metricTransformations=[transformation])
    [stored] = logs.describe_metric_filters(logGroupName=group)["metricFilters"]
    assert stored["metricTransformations"] == [transformation]
    found = logs.describe_metric_filters(metricName="Errors", metricNamespace="App")["metricFilters"]
    assert group in [f["logGroupName"] for f in found]
    with pytest.raises(ClientError) as excinfo:
        logs.put_metric_filter(logGroupName=group, filterName="bad", filterPattern="{ $.x = ",
                               metricTransformations=[transformation])
    assert excinfo.value.response["Error"]["Code"] == "InvalidParameterException"
    logs.delete_metric_filter(logGroupName=group, filterName="count-errors")
    assert logs.describe_metric_filters(logGroupName=group)["metricFilters"] == []
    # Deleting the group takes its filters along.
    logs.put_metric_filter(logGroupName=group, filterName="again", filterPattern="", metricTransformations=[transformation])
    logs.delete_log_group(logGroupName=group)
    logs.create_log_group(logGroupName=group)
    assert logs.describe_metric_filters(logGroupName=group)["metricFilters"] == []


DECODER = r'''
import base64, gzip, json, os, boto3
def handler(event, context):
    data = json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))
    boto3.client("sqs").send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody=json.dumps(data))
    return "ok"
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="functions reach nimbus from the sandbox (needs root)")
def test_subscription_filter_invokes_a_function_with_the_awslogs_payload(server, logs, group):
    sqs, lam = aws_client("sqs", server.endpoint), aws_client("lambda", server.endpoint)
    url = sqs.create_queue(QueueName=unique_name("awslogs"))["QueueUrl"]
    name = unique_name("log-processor")
    arn = lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                              Code={"ZipFile": make_zip({"app.py": DECODER})},
                              Environment={"Variables": {"QUEUE_URL": url}})["FunctionArn"]
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    logs.put_subscription_filter(logGroupName=group, filterName="errors", filterPattern="ERROR", destinationArn=arn)
    logs.create_log_stream(logGroupName=group, logStreamName="s1")
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName="s1", logEvents=[
        {"timestamp": now, "message": "INFO fine"}, {"timestamp": now + 1, "message": "ERROR broken"}])
    deadline, messages = time.monotonic() + 60, []
    while not messages and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
    assert messages, "the function was not invoked"
    data = json.loads(messages[0]["Body"])
    assert (data["messageType"], data["logGroup"], data["logStream"]) == ("DATA_MESSAGE", group, "s1")
    assert data["subscriptionFilters"] == ["errors"]
    assert [e["message"] for e in data["logEvents"]] == ["ERROR broken"]


def test_metric_filter_publishes_to_cloudwatch(server, logs, group):
    import datetime as dt
    cw = aws_client("cloudwatch", server.endpoint)
    namespace = f"LogMetrics/{uuid.uuid4().hex[:8]}"
    logs.put_metric_filter(logGroupName=group, filterName="latency", filterPattern="{ $.latency > 0 }",
                           metricTransformations=[{"metricName": "Latency", "metricNamespace": namespace,
                                                   "metricValue": "$.latency", "unit": "Milliseconds"}])
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
        {"timestamp": now, "message": json.dumps({"latency": 120})},
        {"timestamp": now + 1, "message": json.dumps({"latency": 80})},
        {"timestamp": now + 2, "message": "plain text"}])
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    end = start + dt.timedelta(minutes=10)
    deadline, points = time.monotonic() + 10, []
    while not points and time.monotonic() < deadline:
        points = cw.get_metric_statistics(Namespace=namespace, MetricName="Latency", StartTime=start, EndTime=end,
                                          Period=600, Statistics=["Sum", "SampleCount"])["Datapoints"]
        time.sleep(0.1)
    assert [(p["Sum"], p["SampleCount"], p["Unit"]) for p in points] == [(200, 2, "Milliseconds")]


def test_insights_queries(logs, group):
    logs.create_log_stream(logGroupName=group, logStreamName="app")
    now = int(time.time() * 1000)
    events = [{"level": "ERROR", "ms": 120}, {"level": "INFO", "ms": 5}, {"level": "ERROR", "ms": 80}]
    logs.put_log_events(logGroupName=group, logStreamName="app", logEvents=[
        {"timestamp": now + i, "message": json.dumps(e)} for i, e in enumerate(events)])
    window = {"startTime": now // 1000 - 60, "endTime": now // 1000 + 60}
    started = logs.start_query(logGroupName=group, queryString=(
        "fields @timestamp, level, ms | filter level = 'ERROR' | stats count(*) as errors, avg(ms) as mean by level"),
        **window)
    result = logs.get_query_results(queryId=started["queryId"])
    assert result["status"] == "Complete"
    [row] = result["results"]
    assert {c["field"]: c["value"] for c in row} == {"level": "ERROR", "errors": "2", "mean": "100"}
    listing = logs.start_query(logGroupName=group, queryString="fields @message | sort @timestamp desc | limit 2",
                               **window)
    rows = logs.get_query_results(queryId=listing["queryId"])["results"]
    assert [json.loads(next(c["value"] for c in r if c["field"] == "@message"))["ms"] for r in rows] == [80, 5]
    with pytest.raises(logs.exceptions.MalformedQueryException):
        logs.start_query(logGroupName=group, queryString="frobnicate everything", **window)
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.get_query_results(queryId="00000000-0000-0000-0000-000000000000")
    assert started["queryId"] in [q["queryId"] for q in logs.describe_queries(logGroupName=group)["queries"]]


def test_subscription_filter_puts_to_a_kinesis_stream(server, logs, group):
    import gzip
    kinesis = aws_client("kinesis", server.endpoint)
    stream = unique_name("log-stream")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    logs.put_subscription_filter(logGroupName=group, filterName="all", filterPattern="", destinationArn=arn)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    logs.put_log_events(logGroupName=group, logStreamName="s",
                        logEvents=[{"timestamp": int(time.time() * 1000), "message": "to kinesis"}])
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    deadline, records = time.monotonic() + 10, []
    while not records and time.monotonic() < deadline:
        got = kinesis.get_records(ShardIterator=iterator)
        records, iterator = got["Records"], got["NextShardIterator"]
        time.sleep(0.2)
    assert records, "nothing reached the stream"
    data = json.loads(gzip.decompress(records[0]["Data"]))
    assert data["logGroup"] == group and [e["message"] for e in data["logEvents"]] == ["to kinesis"]


def test_resource_policies_and_destinations(logs):
    name = unique_name("policy")
    document = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "es.amazonaws.com"},
                                                                  "Action": "logs:PutLogEvents", "Resource": "*"}]})
    stored = logs.put_resource_policy(policyName=name, policyDocument=document)["resourcePolicy"]
    assert stored["policyName"] == name
    assert name in [p["policyName"] for p in logs.describe_resource_policies()["resourcePolicies"]]
    logs.delete_resource_policy(policyName=name)
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.delete_resource_policy(policyName=name)

    dest = unique_name("dest")
    made = logs.put_destination(destinationName=dest, targetArn="arn:aws:kinesis:us-east-1:000000000000:stream/s",
                                roleArn="arn:aws:iam::000000000000:role/r")["destination"]
    assert made["arn"].endswith(f":destination:{dest}")
    logs.put_destination_policy(destinationName=dest, accessPolicy=document)
    [listed] = logs.describe_destinations(DestinationNamePrefix=dest)["destinations"]
    assert listed["accessPolicy"] == document
    logs.delete_destination(destinationName=dest)
    assert logs.describe_destinations(DestinationNamePrefix=dest)["destinations"] == []


def test_export_task_writes_the_events_to_s3(server, logs, group):
    import gzip
    s3 = aws_client("s3", server.endpoint, s3={"addressing_style": "path"})
    bucket = unique_name("exports")
    s3.create_bucket(Bucket=bucket)
    logs.create_log_stream(logGroupName=group, logStreamName="app")
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName="app",
                        logEvents=[{"timestamp": now, "message": "first"}, {"timestamp": now + 1, "message": "second"}])
    task = logs.create_export_task(logGroupName=group, fromTime=now - 1000, to=now + 1000, destination=bucket,
                                   destinationPrefix="logs")["taskId"]
    [described] = logs.describe_export_tasks(taskId=task)["exportTasks"]
    assert described["status"]["code"] == "COMPLETED"
    key = f"logs/{task}/app/000000.gz"
    lines = gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).decode().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["first", "second"]
    assert lines[0].endswith("Z first") and lines[0][:4].isdigit()
