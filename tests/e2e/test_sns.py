"""SNS end to end with boto3 and the aws CLI: topics and their errors, fan-out to SQS queues
(envelope and raw delivery), to a Lambda function, to an HTTP endpoint with the confirmation
flow, filter policies in both scopes, FIFO topics to FIFO queues, dead-letter redrive, S3
notifications through a topic, PublishBatch partial failures, and durability across a kill -9."""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

import conftest
from support import ROLE, aws_client, make_zip, unique_name

ACCOUNT = "000000000000"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="functions reach nimbus from the sandbox (needs root)")


@pytest.fixture(scope="module")
def sns(server):
    return aws_client("sns", server.endpoint)


@pytest.fixture(scope="module")
def sqs(server):
    return aws_client("sqs", server.endpoint, read_timeout=30)


def topic_arn(name: str) -> str:
    return f"arn:aws:sns:us-east-1:{ACCOUNT}:{name}"


def make_queue(sqs, prefix: str, **attributes) -> tuple[str, str]:
    name = unique_name(prefix) + (".fifo" if attributes.get("FifoQueue") == "true" else "")
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url, f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"


def receive(sqs, url: str, want: int, timeout: float = 10.0, attributes: bool = False) -> list[dict]:
    """Up to `want` messages (deleted once read), polling until the deadline."""
    messages, deadline = [], time.monotonic() + timeout
    while len(messages) < want and time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                  MessageAttributeNames=["All"]).get("Messages", [])
        for message in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        messages += got
    return messages if attributes else [m["Body"] for m in messages]


def error_of(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


# ---------------------------------------------------------------------------
# Topics
# ---------------------------------------------------------------------------


def test_topics_crud_tags_and_errors(sns):
    name = unique_name("crud")
    arn = sns.create_topic(Name=name, Attributes={"DisplayName": "Orders"}, Tags=[{"Key": "team", "Value": "data"}])["TopicArn"]
    assert arn == topic_arn(name)
    # Idempotent for the same attributes; refused for others.
    assert sns.create_topic(Name=name, Attributes={"DisplayName": "Orders"})["TopicArn"] == arn
    with pytest.raises(sns.exceptions.InvalidParameterException) as caught:
        sns.create_topic(Name=name, Attributes={"DisplayName": "Other"})
    assert caught.value.response["Error"]["Message"] == \
        "Invalid parameter: Attributes Reason: Topic already exists with different attributes"

    attributes = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert attributes["DisplayName"] == "Orders" and attributes["TopicArn"] == arn
    assert attributes["Owner"] == ACCOUNT and attributes["SubscriptionsConfirmed"] == "0"
    assert json.loads(attributes["Policy"])["Statement"][0]["Resource"] == arn
    assert "defaultHealthyRetryPolicy" in json.loads(attributes["EffectiveDeliveryPolicy"])["http"]
    sns.set_topic_attributes(TopicArn=arn, AttributeName="DisplayName", AttributeValue="Renamed")
    assert sns.get_topic_attributes(TopicArn=arn)["Attributes"]["DisplayName"] == "Renamed"

    sns.tag_resource(ResourceArn=arn, Tags=[{"Key": "env", "Value": "test"}])
    sns.untag_resource(ResourceArn=arn, TagKeys=["team"])
    assert sns.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "env", "Value": "test"}]

    with pytest.raises(sns.exceptions.InvalidParameterException) as caught:
        sns.create_topic(Name="bad name!")
    assert caught.value.response["Error"]["Message"] == "Invalid parameter: Topic Name"
    assert error_of(lambda: sns.create_topic(Name="plain.fifo"))[1] == "Invalid parameter: Topic Name"
    code, message = error_of(lambda: sns.set_topic_attributes(TopicArn=arn, AttributeName="Bogus", AttributeValue="x"))
    assert (code, message) == ("InvalidParameter", "Invalid parameter: AttributeName")

    sns.delete_topic(TopicArn=arn)
    sns.delete_topic(TopicArn=arn)  # deleting again succeeds, as on AWS
    with pytest.raises(sns.exceptions.NotFoundException) as caught:
        sns.get_topic_attributes(TopicArn=arn)
    assert caught.value.response["Error"]["Message"] == "Topic does not exist"
    with pytest.raises(sns.exceptions.NotFoundException):
        sns.publish(TopicArn=arn, Message="x")
    code, message = error_of(lambda: sns.publish(TopicArn="not-an-arn", Message="x"))
    assert (code, message) == ("InvalidParameter", "Invalid parameter: TopicArn Reason: An ARN must have at least 6 elements, not 1")
    with pytest.raises(sns.exceptions.ResourceNotFoundException):
        sns.list_tags_for_resource(ResourceArn=arn)
    code, message = error_of(lambda: sns.list_platform_applications())
    assert code == "InvalidAction" and "ListPlatformApplications" in message


def test_list_topics_pages_of_100(sns):
    prefix = unique_name("page")
    for i in range(101):
        sns.create_topic(Name=f"{prefix}-{i:03}")
    first = sns.list_topics()
    assert len(first["Topics"]) == 100 and "NextToken" in first
    seen = [t["TopicArn"] for page in sns.get_paginator("list_topics").paginate() for t in page["Topics"]]
    assert len(seen) == len(set(seen))
    assert sum(arn.split(":")[-1].startswith(prefix) for arn in seen) == 101


@pytest.mark.skipif(shutil.which("aws") is None, reason="no aws CLI")
def test_aws_cli(server, tmp_path):
    from support import aws_cli_env

    env = aws_cli_env(server.endpoint, tmp_path)

    def aws(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["aws", "--output", "json", "sns", *args], env=env, capture_output=True, text=True,
                              timeout=60)

    name = unique_name("cli")
    created = aws("create-topic", "--name", name)
    assert created.returncode == 0, created.stderr
    arn = json.loads(created.stdout)["TopicArn"]
    published = aws("publish", "--topic-arn", arn, "--message", "from the cli")
    assert published.returncode == 0 and json.loads(published.stdout)["MessageId"]
    listed = json.loads(aws("list-topics").stdout)
    assert arn in [t["TopicArn"] for t in listed["Topics"]]
    missing = aws("get-topic-attributes", "--topic-arn", topic_arn("nope-" + uuid.uuid4().hex[:8]))
    assert missing.returncode != 0 and "NotFound" in missing.stderr


# ---------------------------------------------------------------------------
# Fan-out to SQS
# ---------------------------------------------------------------------------


def test_fan_out_to_two_queues_envelope_and_raw(sns, sqs):
    arn = sns.create_topic(Name=unique_name("fan"))["TopicArn"]
    enveloped_url, enveloped_arn = make_queue(sqs, "env")
    raw_url, raw_arn = make_queue(sqs, "raw")
    sub = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=enveloped_arn)["SubscriptionArn"]
    raw_sub = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=raw_arn, Attributes={"RawMessageDelivery": "true"},
                            ReturnSubscriptionArn=True)["SubscriptionArn"]
    assert sub.startswith(arn + ":") and raw_sub.startswith(arn + ":")
    # Subscribing again answers the same subscription.
    assert sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=enveloped_arn)["SubscriptionArn"] == sub
    attrs = sns.get_subscription_attributes(SubscriptionArn=raw_sub)["Attributes"]
    assert attrs["RawMessageDelivery"] == "true" and attrs["PendingConfirmation"] == "false"
    assert attrs["Endpoint"] == raw_arn and attrs["Protocol"] == "sqs" and attrs["TopicArn"] == arn
    assert sns.get_topic_attributes(TopicArn=arn)["Attributes"]["SubscriptionsConfirmed"] == "2"
    listed = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    assert sorted(s["SubscriptionArn"] for s in listed) == sorted([sub, raw_sub])

    published = sns.publish(TopicArn=arn, Message="hello", Subject="Greeting", MessageAttributes={
        "color": {"DataType": "String", "StringValue": "red"},
        "size": {"DataType": "Number", "StringValue": "42"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
    })
    body = json.loads(receive(sqs, enveloped_url, 1)[0])
    assert list(body) == ["Type", "MessageId", "TopicArn", "Subject", "Message", "Timestamp", "SignatureVersion",
                          "Signature", "SigningCertURL", "UnsubscribeURL", "MessageAttributes"]
    assert body["Type"] == "Notification" and body["MessageId"] == published["MessageId"]
    assert (body["TopicArn"], body["Subject"], body["Message"]) == (arn, "Greeting", "hello")
    assert body["Timestamp"].endswith("Z") and body["SignatureVersion"] == "1"
    assert sub in body["UnsubscribeURL"]
    assert body["MessageAttributes"] == {
        "blob": {"Type": "Binary", "Value": base64.b64encode(b"\x00\x01").decode()},
        "color": {"Type": "String", "Value": "red"},
        "size": {"Type": "Number", "Value": "42"},
    }
    raw = receive(sqs, raw_url, 1, attributes=True)[0]
    assert raw["Body"] == "hello"
    assert raw["MessageAttributes"]["color"] == {"StringValue": "red", "DataType": "String"}
    assert raw["MessageAttributes"]["size"] == {"StringValue": "42", "DataType": "Number"}
    assert raw["MessageAttributes"]["blob"] == {"BinaryValue": b"\x00\x01", "DataType": "Binary"}

    sns.unsubscribe(SubscriptionArn=raw_sub)
    sns.unsubscribe(SubscriptionArn=raw_sub)  # gone already: no error, as on AWS
    sns.publish(TopicArn=arn, Message="after")
    assert json.loads(receive(sqs, enveloped_url, 1)[0])["Message"] == "after"
    assert receive(sqs, raw_url, 1, timeout=1.5) == []
    with pytest.raises(sns.exceptions.NotFoundException):
        sns.get_subscription_attributes(SubscriptionArn=raw_sub)


def test_message_structure_and_attribute_validation(sns, sqs):
    arn = sns.create_topic(Name=unique_name("structure"))["TopicArn"]
    url, queue = make_queue(sqs, "structure")
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue, Attributes={"RawMessageDelivery": "true"})
    sns.publish(TopicArn=arn, MessageStructure="json", Message=json.dumps({"default": "d", "sqs": "for queues"}))
    assert receive(sqs, url, 1) == ["for queues"]
    code, message = error_of(lambda: sns.publish(TopicArn=arn, MessageStructure="json", Message='{"sqs": "x"}'))
    assert (code, message) == ("InvalidParameter", "Invalid parameter: Message Structure - No default entry in JSON message body")
    code, message = error_of(lambda: sns.publish(TopicArn=arn, Message="x", MessageAttributes={
        "n": {"DataType": "Number", "StringValue": "abc"}}))
    assert (code, message) == ("ParameterValueInvalid", "Could not cast message attribute 'n' value to number.")
    with pytest.raises(sns.exceptions.InvalidParameterValueException):
        sns.publish(TopicArn=arn, Message="x", MessageAttributes={"t": {"DataType": "Decimal", "StringValue": "1"}})
    code, message = error_of(lambda: sns.publish(TopicArn=arn, Message="x", MessageAttributes={
        "s": {"DataType": "String", "BinaryValue": b"1"}}))
    assert (code, message) == ("ParameterValueInvalid", "The message attribute 's' with type 'String' must use field 'String'.")
    code, message = error_of(lambda: sns.publish(TopicArn=arn, Message=""))
    assert (code, message) == ("InvalidParameter", "Invalid parameter: Empty message")
    code, _ = error_of(lambda: sns.publish(TopicArn=arn, Message="x" * (256 * 1024 + 1)))
    assert code == "InvalidParameter"
    assert receive(sqs, url, 1, timeout=1.0) == []


# ---------------------------------------------------------------------------
# Filter policies
# ---------------------------------------------------------------------------


def test_filter_policies_attribute_and_body_scope(sns, sqs):
    arn = sns.create_topic(Name=unique_name("filter"))["TopicArn"]
    attr_url, attr_queue = make_queue(sqs, "attr")
    body_url, body_queue = make_queue(sqs, "body")
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=attr_queue, Attributes={
        "RawMessageDelivery": "true",
        "FilterPolicy": json.dumps({"store": ["example_corp"], "price": [{"numeric": [">=", 100]}],
                                    "kind": [{"anything-but": "test"}]}),
    })
    body_sub = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=body_queue, ReturnSubscriptionArn=True, Attributes={
        "RawMessageDelivery": "true",
        "FilterPolicyScope": "MessageBody",
        "FilterPolicy": json.dumps({"order": {"region": [{"prefix": "eu-"}]}}),
    })["SubscriptionArn"]
    assert sns.get_subscription_attributes(SubscriptionArn=body_sub)["Attributes"]["FilterPolicyScope"] == "MessageBody"

    def publish(message, **attributes):
        sns.publish(TopicArn=arn, Message=message, MessageAttributes={
            name: {"DataType": "Number" if isinstance(v, int) else "String", "StringValue": str(v)}
            for name, v in attributes.items()})

    publish("cheap", store="example_corp", price=5, kind="live")
    publish("wrong store", store="other", price=500, kind="live")
    publish("test kind", store="example_corp", price=500, kind="test")
    publish("match", store="example_corp", price=150, kind="live")
    publish(json.dumps({"order": {"region": "us-east-1"}}))
    publish(json.dumps({"order": {"region": "eu-west-1", "id": 7}}))
    publish("not json")
    assert receive(sqs, attr_url, 2, timeout=3) == ["match"]
    assert receive(sqs, body_url, 2, timeout=1) == [json.dumps({"order": {"region": "eu-west-1", "id": 7}})]

    with pytest.raises(sns.exceptions.InvalidParameterException) as caught:
        sns.set_subscription_attributes(SubscriptionArn=body_sub, AttributeName="FilterPolicy",
                                        AttributeValue='{"a": "not an array"}')
    assert caught.value.response["Error"]["Message"].startswith("Invalid parameter: FilterPolicy:")
    # Removing the policy lets everything through.
    sns.set_subscription_attributes(SubscriptionArn=body_sub, AttributeName="FilterPolicy", AttributeValue="")
    publish("anything")
    assert receive(sqs, body_url, 1) == ["anything"]


# ---------------------------------------------------------------------------
# FIFO
# ---------------------------------------------------------------------------


def test_fifo_topic_to_fifo_queue_in_order_with_deduplication(sns, sqs):
    name = unique_name("orders") + ".fifo"
    arn = sns.create_topic(Name=name, Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "false"})["TopicArn"]
    attributes = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert attributes["FifoTopic"] == "true" and attributes["ContentBasedDeduplication"] == "false"
    url, queue = make_queue(sqs, "ordered", FifoQueue="true")
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue, Attributes={"RawMessageDelivery": "true"})
    standard_url, standard_queue = make_queue(sqs, "standard")
    with pytest.raises(sns.exceptions.InvalidParameterException):
        sns.subscribe(TopicArn=sns.create_topic(Name=unique_name("std"))["TopicArn"], Protocol="sqs", Endpoint=queue)

    code, message = error_of(lambda: sns.publish(TopicArn=arn, Message="x", MessageDeduplicationId="d"))
    assert (code, message) == ("InvalidParameter", "Invalid parameter: The MessageGroupId parameter is required for FIFO topics")
    code, _ = error_of(lambda: sns.publish(TopicArn=arn, Message="x", MessageGroupId="g"))
    assert code == "InvalidParameter"

    sequence = []
    for i in range(8):
        out = sns.publish(TopicArn=arn, Message=f"m{i}", MessageGroupId=f"g{i % 2}", MessageDeduplicationId=f"d{i}")
        sequence.append(int(out["SequenceNumber"]))
    assert sequence == sorted(sequence) and len(set(sequence)) == 8
    again = sns.publish(TopicArn=arn, Message="m0 again", MessageGroupId="g0", MessageDeduplicationId="d0")
    assert int(again["SequenceNumber"]) == sequence[0]
    got = receive(sqs, url, 8, attributes=True)
    bodies = [m["Body"] for m in got]
    assert sorted(bodies) == [f"m{i}" for i in range(8)]
    for group in ("g0", "g1"):
        in_group = [b for b, m in zip(bodies, got) if m["Body"] in {f"m{i}" for i in range(8) if f"g{i % 2}" == group}]
        assert in_group == sorted(in_group, key=lambda b: int(b[1:]))
    assert receive(sqs, url, 1, timeout=1) == []


# ---------------------------------------------------------------------------
# Dead-letter queues and batches
# ---------------------------------------------------------------------------


def test_redrive_to_dlq_when_the_subscribed_queue_is_gone(sns, sqs):
    arn = sns.create_topic(Name=unique_name("redrive"))["TopicArn"]
    url, queue = make_queue(sqs, "doomed")
    dlq_url, dlq = make_queue(sqs, "dlq")
    sub = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue, ReturnSubscriptionArn=True)["SubscriptionArn"]
    sns.set_subscription_attributes(SubscriptionArn=sub, AttributeName="RedrivePolicy",
                                    AttributeValue=json.dumps({"deadLetterTargetArn": dlq}))
    sqs.delete_queue(QueueUrl=url)
    published = sns.publish(TopicArn=arn, Message="lost?")
    dead = receive(sqs, dlq_url, 1, attributes=True)
    assert len(dead) == 1
    body = json.loads(dead[0]["Body"])
    assert body["MessageId"] == published["MessageId"] and body["Message"] == "lost?"
    assert dead[0]["MessageAttributes"]["TopicArn"]["StringValue"] == arn
    assert "ErrorMessage" in dead[0]["MessageAttributes"]


def test_publish_batch_partial_failure_and_batch_errors(sns, sqs):
    arn = sns.create_topic(Name=unique_name("batch"))["TopicArn"]
    url, queue = make_queue(sqs, "batch")
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue, Attributes={"RawMessageDelivery": "true"})
    out = sns.publish_batch(TopicArn=arn, PublishBatchRequestEntries=[
        {"Id": "ok-1", "Message": "one"},
        {"Id": "bad", "Message": "two", "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "NaN?"}}},
        {"Id": "ok-2", "Message": "three", "Subject": "s"},
    ])
    assert [s["Id"] for s in out["Successful"]] == ["ok-1", "ok-2"]
    assert all(s["MessageId"] for s in out["Successful"])
    assert out["Failed"] == [{"Id": "bad", "Code": "ParameterValueInvalid", "SenderFault": True,
                              "Message": "Could not cast message attribute 'n' value to number."}]
    assert sorted(receive(sqs, url, 2)) == ["one", "three"]

    with pytest.raises(sns.exceptions.BatchEntryIdsNotDistinctException):
        sns.publish_batch(TopicArn=arn, PublishBatchRequestEntries=[{"Id": "a", "Message": "1"}, {"Id": "a", "Message": "2"}])
    with pytest.raises(sns.exceptions.TooManyEntriesInBatchRequestException):
        sns.publish_batch(TopicArn=arn, PublishBatchRequestEntries=[{"Id": f"e{i}", "Message": "m"} for i in range(11)])
    with pytest.raises(sns.exceptions.InvalidBatchEntryIdException):
        sns.publish_batch(TopicArn=arn, PublishBatchRequestEntries=[{"Id": "no spaces", "Message": "m"}])
    with pytest.raises(sns.exceptions.NotFoundException):
        sns.publish_batch(TopicArn=arn + "-gone", PublishBatchRequestEntries=[{"Id": "a", "Message": "m"}])
    assert receive(sqs, url, 1, timeout=1) == []


# ---------------------------------------------------------------------------
# HTTP endpoints
# ---------------------------------------------------------------------------


class Endpoint:
    """A little HTTP server that records the POSTs it gets and answers `status`."""

    def __init__(self, status: int = 200, port: int = 0):
        self.requests: list[tuple[dict, str]] = []
        self.status = status
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 10.0) -> list[tuple[dict, str]]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.requests

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_http_subscription_confirmation_and_delivery(sns):
    endpoint = Endpoint()
    try:
        arn = sns.create_topic(Name=unique_name("web"))["TopicArn"]
        assert sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=endpoint.url)["SubscriptionArn"] == "pending confirmation"
        [(headers, body)] = endpoint.wait(1)
        confirmation = json.loads(body)
        assert headers["x-amz-sns-message-type"] == "SubscriptionConfirmation"
        assert headers["x-amz-sns-topic-arn"] == arn
        assert confirmation["Type"] == "SubscriptionConfirmation" and confirmation["TopicArn"] == arn
        assert confirmation["Token"] and "SubscribeURL" in confirmation
        # Subscribing again while pending asks the endpoint again.
        assert sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=endpoint.url)["SubscriptionArn"] == "pending confirmation"
        assert json.loads(endpoint.wait(2)[1][1])["Token"] == confirmation["Token"]
        endpoint.requests.pop()
        [pending] = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
        assert pending["SubscriptionArn"] == "PendingConfirmation"
        assert sns.get_topic_attributes(TopicArn=arn)["Attributes"]["SubscriptionsPending"] == "1"
        sns.publish(TopicArn=arn, Message="not yet")  # a pending subscription receives nothing

        with pytest.raises(sns.exceptions.InvalidParameterException):
            sns.confirm_subscription(TopicArn=arn, Token="wrong")
        # Visiting the SubscribeURL confirms, as a browser or the endpoint's code would.
        with urllib.request.urlopen(confirmation["SubscribeURL"], timeout=10) as answer:
            assert b"<SubscriptionArn>" + arn.encode() in answer.read()
        sub = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"][0]["SubscriptionArn"]
        assert sub.startswith(arn + ":")
        assert sns.confirm_subscription(TopicArn=arn, Token=confirmation["Token"])["SubscriptionArn"] == sub

        published = sns.publish(TopicArn=arn, Message="over http", Subject="Hi")
        headers, body = endpoint.wait(2)[1]
        assert headers["x-amz-sns-message-type"] == "Notification"
        assert headers["x-amz-sns-message-id"] == published["MessageId"]
        assert headers["x-amz-sns-subscription-arn"] == sub
        assert headers["content-type"].startswith("text/plain")
        notification = json.loads(body)
        assert (notification["Message"], notification["Subject"]) == ("over http", "Hi")
        assert len(endpoint.requests) == 2
        sns.unsubscribe(SubscriptionArn=sub)
        headers, body = endpoint.wait(3)[2]
        assert headers["x-amz-sns-message-type"] == "UnsubscribeConfirmation"
        assert json.loads(body)["Type"] == "UnsubscribeConfirmation" and sub in json.loads(body)["Message"]
    finally:
        endpoint.close()


def test_http_retries_then_dead_letter_queue(sns, sqs):
    endpoint = Endpoint(status=500)
    try:
        policy = {"http": {"defaultHealthyRetryPolicy": {"minDelayTarget": 1, "maxDelayTarget": 1, "numRetries": 2,
                                                         "backoffFunction": "linear"}}}
        arn = sns.create_topic(Name=unique_name("flaky"), Attributes={"DeliveryPolicy": json.dumps(policy)})["TopicArn"]
        dlq_url, dlq = make_queue(sqs, "web-dlq")
        sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=endpoint.url)
        confirmation = json.loads(endpoint.wait(1)[0][1])
        sub = sns.confirm_subscription(TopicArn=arn, Token=confirmation["Token"])["SubscriptionArn"]
        sns.set_subscription_attributes(SubscriptionArn=sub, AttributeName="RedrivePolicy",
                                        AttributeValue=json.dumps({"deadLetterTargetArn": dlq}))
        endpoint.requests.clear()
        sns.publish(TopicArn=arn, Message="keeps failing")
        dead = receive(sqs, dlq_url, 1, timeout=15)
        assert json.loads(dead[0])["Message"] == "keeps failing"
        tries = [h for h, _ in endpoint.requests if h["x-amz-sns-message-type"] == "Notification"]
        assert len(tries) == 3  # the first try and two retries
    finally:
        endpoint.close()


# ---------------------------------------------------------------------------
# Lambda and S3
# ---------------------------------------------------------------------------


RECORDER = r'''
import json, boto3, os
def handler(event, context):
    boto3.client("sqs").send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody=json.dumps(event))
    return "ok"
'''


@needs_root
def test_lambda_subscription_receives_the_sns_event(sns, sqs, client):
    arn = sns.create_topic(Name=unique_name("to-fn"))["TopicArn"]
    url, _ = make_queue(sqs, "fn-out")
    name = unique_name("sns-recorder")
    function = client.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                                       Code={"ZipFile": make_zip({"app.py": RECORDER})},
                                       Environment={"Variables": {"QUEUE_URL": url}})["FunctionArn"]
    client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    sub = sns.subscribe(TopicArn=arn, Protocol="lambda", Endpoint=function, ReturnSubscriptionArn=True)["SubscriptionArn"]
    published = sns.publish(TopicArn=arn, Message="to a function", Subject="Fn",
                            MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}})
    event = json.loads(receive(sqs, url, 1, timeout=30)[0])
    [record] = event["Records"]
    assert record["EventSource"] == "aws:sns" and record["EventVersion"] == "1.0"
    assert record["EventSubscriptionArn"] == sub
    message = record["Sns"]
    assert message["Type"] == "Notification" and message["MessageId"] == published["MessageId"]
    assert (message["TopicArn"], message["Subject"], message["Message"]) == (arn, "Fn", "to a function")
    assert message["MessageAttributes"] == {"k": {"Type": "String", "Value": "v"}}
    for field in ("Timestamp", "SignatureVersion", "Signature", "SigningCertUrl", "UnsubscribeUrl"):
        assert message[field], field


def test_s3_notifications_through_a_topic_to_a_queue(server, sns, sqs):
    s3 = aws_client("s3", server.endpoint)
    bucket = unique_name("to-topic")
    s3.create_bucket(Bucket=bucket)
    arn = sns.create_topic(Name=unique_name("objects"))["TopicArn"]
    url, queue = make_queue(sqs, "objects")
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue)
    with pytest.raises(ClientError) as caught:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"TopicConfigurations": [{
            "TopicArn": arn + "-missing", "Events": ["s3:ObjectCreated:*"]}]})
    assert caught.value.response["Error"]["Code"] == "InvalidArgument"
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"TopicConfigurations": [{
        "Id": "to-sns", "TopicArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    test_event = json.loads(receive(sqs, url, 1)[0])
    assert test_event["Subject"] == "Amazon S3 Notification"
    assert json.loads(test_event["Message"])["Event"] == "s3:TestEvent"
    s3.put_object(Bucket=bucket, Key="in/a.csv", Body=b"1,2")
    notification = json.loads(receive(sqs, url, 1)[0])
    assert notification["Subject"] == "Amazon S3 Notification" and notification["TopicArn"] == arn
    [record] = json.loads(notification["Message"])["Records"]
    assert record["eventName"] == "ObjectCreated:Put" and record["s3"]["object"]["key"] == "in/a.csv"
    assert record["s3"]["configurationId"] == "to-sns"


# ---------------------------------------------------------------------------
# Durability
# ---------------------------------------------------------------------------


def test_topics_subscriptions_and_pending_http_deliveries_survive_kill(server_factory):
    srv = server_factory()
    sns, sqs = aws_client("sns", srv.endpoint), aws_client("sqs", srv.endpoint)
    policy = {"http": {"defaultHealthyRetryPolicy": {"minDelayTarget": 1, "maxDelayTarget": 1, "numRetries": 30}}}
    arn = sns.create_topic(Name="durable", Attributes={"DisplayName": "Kept", "DeliveryPolicy": json.dumps(policy)})["TopicArn"]
    url, queue = make_queue(sqs, "durable")
    sub = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue, ReturnSubscriptionArn=True)["SubscriptionArn"]
    # Nothing answers at this address yet: the confirmation waits in the outbox.
    closed = Endpoint()
    closed.close()
    port = closed.server.server_address[1]
    sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=closed.url)
    srv.kill()
    endpoint = Endpoint(port=port)
    try:
        srv.start()
        # No SNS call yet: SNS opens at start because deliveries wait, and makes them.
        [(headers, body)] = endpoint.wait(1, timeout=60)
        assert headers["x-amz-sns-message-type"] == "SubscriptionConfirmation"
        assert json.loads(body)["TopicArn"] == arn
    finally:
        endpoint.close()
    sns, sqs = aws_client("sns", srv.endpoint), aws_client("sqs", srv.endpoint)
    assert sns.get_topic_attributes(TopicArn=arn)["Attributes"]["DisplayName"] == "Kept"
    protocols = sorted(s["Protocol"] for s in sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"])
    assert protocols == ["http", "sqs"]
    assert sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]["Endpoint"] == queue
    sns.publish(TopicArn=arn, Message="after restart")
    assert json.loads(receive(sqs, url, 1)[0])["Message"] == "after restart"


@pytest.mark.skipif(not conftest.TEST_DATABASE, reason="several nodes need PostgreSQL: set NIMBUS_TEST_DATABASE")
def test_two_nodes_answer_from_one_database(server_factory, tmp_path_factory):
    url = conftest.fresh_database_url("sns_nodes")
    shared = tmp_path_factory.mktemp("shared")
    args = lambda name: ["--database", url, "--shared-dir", str(shared), "--node", name, "--node-expiry", "2"]
    a, b = server_factory(extra_args=args("a")), server_factory(extra_args=args("b"))
    sns_a, sns_b = aws_client("sns", a.endpoint), aws_client("sns", b.endpoint)
    sqs = aws_client("sqs", b.endpoint, read_timeout=30)
    arn = sns_a.create_topic(Name="shared")["TopicArn"]
    assert arn in [t["TopicArn"] for t in sns_b.list_topics()["Topics"]]
    queue_url, queue = make_queue(sqs, "shared")
    sns_b.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue, Attributes={"RawMessageDelivery": "true"})
    assert sns_a.get_topic_attributes(TopicArn=arn)["Attributes"]["SubscriptionsConfirmed"] == "1"
    sns_a.publish(TopicArn=arn, Message="from a")
    sns_b.publish(TopicArn=arn, Message="from b")
    assert sorted(receive(sqs, queue_url, 2)) == ["from a", "from b"]
