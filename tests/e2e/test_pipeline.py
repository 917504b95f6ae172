"""The seed's first example, end to end: S3 → function → S3 + SQS (issue: object storage, queues
and asynchronous invocation), plus the exact S3 event record, SQS event source mappings with
filters and partial batch failures, and function code from S3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from support import ROLE, make_zip, payload_json, unique_name

REPO = Path(__file__).resolve().parents[2]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="functions reach nimbus from the sandbox (needs root)")


def clients(endpoint):
    settings = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return boto3.client("s3", **settings), boto3.client("sqs", **settings)


def wait_for(fetch, timeout=30.0):
    deadline = time.time() + timeout
    while True:
        value = fetch()
        if value:
            return value
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


@needs_root
def test_example_pipeline_runs_from_the_readme(server):
    out = subprocess.run([sys.executable, str(REPO / "examples/pipeline/run.py"), server.endpoint, "-e2e"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ID,ITEM\n1,APPLES\n2,PEARS" in out.stdout
    assert "'rows': 3" in out.stdout


RECORDER = r'''
import json, boto3, os
def handler(event, context):
    boto3.client("sqs").send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody=json.dumps(event))
    return "ok"
'''


@needs_root
def test_s3_event_record_matches_aws_field_by_field(server, client):
    s3, sqs = clients(server.endpoint)
    bucket, queue = unique_name("events"), unique_name("records")
    s3.create_bucket(Bucket=bucket)
    queue_url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    name = unique_name("recorder")
    arn = client.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                                 Code={"ZipFile": make_zip({"app.py": RECORDER})},
                                 Environment={"Variables": {"QUEUE_URL": queue_url}})["FunctionArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "LambdaFunctionConfigurations": [{"Id": "to-recorder", "LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:Put"],
                                          "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}]}}}]})
    s3.put_object(Bucket=bucket, Key="skipped.txt", Body=b"not under in/")
    put = s3.put_object(Bucket=bucket, Key="in/Happy Face.jpg", Body=b"0123456789")
    messages = wait_for(lambda: sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages"))
    record = json.loads(messages[0]["Body"])["Records"][0]
    assert record["eventVersion"] == "2.1"
    assert record["eventSource"] == "aws:s3"
    assert record["awsRegion"] == "us-east-1"
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["eventTime"].endswith("Z")
    assert set(record["userIdentity"]) == {"principalId"}
    assert set(record["requestParameters"]) == {"sourceIPAddress"}
    assert set(record["responseElements"]) == {"x-amz-request-id", "x-amz-id-2"}
    s3_part = record["s3"]
    assert s3_part["s3SchemaVersion"] == "1.0"
    assert s3_part["configurationId"] == "to-recorder"
    assert s3_part["bucket"]["name"] == bucket
    assert s3_part["bucket"]["arn"] == f"arn:aws:s3:::{bucket}"
    assert set(s3_part["bucket"]["ownerIdentity"]) == {"principalId"}
    assert s3_part["object"]["key"] == "in/Happy+Face.jpg"
    assert s3_part["object"]["size"] == 10
    assert s3_part["object"]["eTag"] == put["ETag"].strip('"')
    assert len(s3_part["object"]["sequencer"]) >= 16
    assert len(messages) == 1  # the object outside the prefix triggered nothing


SQS_WORKER = r'''
import json
def handler(event, context):
    failures = []
    for record in event["Records"]:
        body = json.loads(record["body"])
        if body.get("fail"):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
'''


@needs_root
def test_sqs_mapping_with_filters_and_partial_batch_failures(server, client):
    _, sqs = clients(server.endpoint)
    dlq_url = sqs.create_queue(QueueName=unique_name("dlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(QueueName=unique_name("work"), Attributes={
        "VisibilityTimeout": "1", "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    name = unique_name("sqs-worker")
    client.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                           Code={"ZipFile": make_zip({"app.py": SQS_WORKER})})
    mapping = client.create_event_source_mapping(
        EventSourceArn=queue_arn, FunctionName=name, BatchSize=10, MaximumBatchingWindowInSeconds=1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        FilterCriteria={"Filters": [{"Pattern": json.dumps({"body": {"kind": ["order"]}})}]})
    assert mapping["State"] in ("Creating", "Enabled")
    assert client.get_event_source_mapping(UUID=mapping["UUID"])["State"] == "Enabled"
    assert [m["UUID"] for m in client.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]] == [mapping["UUID"]]
    for body in ({"kind": "order", "n": 1}, {"kind": "order", "fail": True}, {"kind": "noise"}):
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
    # The failing message is retried until it reaches the dead-letter queue; the others are gone.
    dead = wait_for(lambda: sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1).get("Messages"), timeout=30)
    assert json.loads(dead[0]["Body"]) == {"kind": "order", "fail": True}
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=name, BatchSize=100)
    client.delete_event_source_mapping(UUID=mapping["UUID"])
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_event_source_mapping(UUID=mapping["UUID"])


def test_function_code_from_s3(server, client):
    s3, _ = clients(server.endpoint)
    bucket = unique_name("code")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="fn.zip", Body=make_zip({"app.py": "def handler(e, c):\n    return 'from s3'\n"}))
    name = unique_name("s3-code")
    client.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                           Code={"S3Bucket": bucket, "S3Key": "fn.zip"})
    assert payload_json(client.invoke(FunctionName=name)) == "from s3"
    s3.put_object(Bucket=bucket, Key="v2.zip", Body=make_zip({"app.py": "def handler(e, c):\n    return 'v2'\n"}))
    client.update_function_code(FunctionName=name, S3Bucket=bucket, S3Key="v2.zip")
    client.get_waiter("function_updated_v2").wait(FunctionName=name)
    assert payload_json(client.invoke(FunctionName=name)) == "v2"
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.update_function_code(FunctionName=name, S3Bucket=bucket, S3Key="missing.zip")
    layer = client.publish_layer_version(LayerName=unique_name("s3-layer"), Content={"S3Bucket": bucket, "S3Key": "fn.zip"})
    assert layer["Version"] == 1
