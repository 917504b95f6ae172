"""Hostile input: documents nested far deeper than any AWS shape must get the service's own
malformed-input error — never take the process down — and configurations AWS refuses are
refused here too.

Each deep request goes over raw HTTP (boto3 would not send it); its answer is parsed with
botocore's own parser for the service's protocol, as a client would, and the server must still
answer /_nimbus/health afterwards.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import time
import uuid
import zipfile

import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.parsers import create_parser

from support import aws_client, function_arn, unique_name

DEPTH = 50_000
MODELS = botocore.session.get_session()


def send(server, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    conn = http.client.HTTPConnection(server.endpoint.removeprefix("http://"), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def aws_error(service: str, operation: str, protocol: str, answer) -> dict:
    """The error botocore reads from a raw answer, after checking nimbus is still up."""
    status, headers, body = answer
    model = MODELS.get_service_model(service).operation_model(operation)
    parsed = create_parser(protocol).parse(
        {"status_code": status, "headers": headers, "body": body}, model.output_shape
    )
    error = parsed.get("Error", {})
    assert status == 400 and error.get("Code"), (status, headers, body[:500])
    return error


@pytest.fixture
def alive(server):
    """Checks after the test that the server survived what the test sent it."""
    yield server
    assert server.proc.poll() is None, f"nimbus died:\n{server.log_tail()}"
    assert server.health()["status"] == "ready"


@pytest.fixture(scope="module")
def s3(server):
    return aws_client("s3", server.endpoint, s3={"addressing_style": "path"})


@pytest.fixture
def bucket(s3):
    name = f"hostile-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


def deep_xml(root: str, depth: int = DEPTH) -> bytes:
    return f"<{root}>{'<a>' * depth}{'</a>' * depth}</{root}>".encode()


def deep_json(depth: int = DEPTH) -> str:
    return "[" * depth + "]" * depth


# ---------------------------------------------------------------------------
# Deep XML: S3's four request documents
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["CreateBucket", "PutBucketNotificationConfiguration",
                                       "CompleteMultipartUpload", "DeleteObjects"])
def test_deep_xml_is_malformed_xml(alive, s3, bucket, operation):
    if operation == "CreateBucket":
        target = f"hostile-new-{uuid.uuid4().hex[:8]}"
        request = ("PUT", f"/{target}", "CreateBucketConfiguration")
    elif operation == "PutBucketNotificationConfiguration":
        request = ("PUT", f"/{bucket}?notification", "NotificationConfiguration")
    elif operation == "CompleteMultipartUpload":
        upload = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
        request = ("POST", f"/{bucket}/k?uploadId={upload}", "CompleteMultipartUpload")
    else:
        request = ("POST", f"/{bucket}?delete", "Delete")
    method, path, root = request
    error = aws_error("s3", operation, "rest-xml", send(alive, method, path, deep_xml(root)))
    assert error["Code"] == "MalformedXML"
    assert error["Message"] == ("The XML you provided was not well-formed or did not validate against our "
                                "published schema")
    if operation == "CreateBucket":
        assert target not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_ordinary_documents_still_parse(alive, s3, bucket):
    s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}]})
    assert [d["Key"] for d in deleted["Deleted"]] == ["a"]


# ---------------------------------------------------------------------------
# Deep JSON and CBOR, and deep Query parameter names
# ---------------------------------------------------------------------------

CW_FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


def test_cloudwatch_query_names_nested_deep(alive):
    body = "Action=ListMetrics&Version=2010-08-01&" + "Dimensions." * DEPTH + "Name=x"
    error = aws_error("cloudwatch", "ListMetrics", "query", send(alive, "POST", "/", body.encode(), CW_FORM))
    assert error["Code"] == "InvalidParameterValue", error


def test_cloudwatch_json_and_cbor_nested_deep(alive):
    headers = {"Content-Type": "application/x-amz-json-1.0",
               "X-Amz-Target": "GraniteServiceVersion20100801.ListMetrics"}
    body = ('{"Namespace": ' + deep_json() + "}").encode()
    error = aws_error("cloudwatch", "ListMetrics", "json", send(alive, "POST", "/", body, headers))
    assert error["Code"] == "SerializationException", error

    headers = {"Content-Type": "application/cbor", "Accept": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
    path = "/service/GraniteServiceVersion20100801/operation/ListMetrics"
    nested_arrays = b"\xa1\x69Namespace" + b"\x81" * DEPTH + b"\x00"  # {"Namespace": [[[…0…]]]}
    nested_tags = b"\xa1\x69Namespace" + b"\xc1" * DEPTH + b"\x00"  # tag 1 (a date) around a date …
    for body in (nested_arrays, nested_tags):
        answer = send(alive, "POST", path, body, headers)
        error = aws_error("cloudwatch", "ListMetrics", "smithy-rpc-v2-cbor", answer)
        assert error["Code"] == "SerializationException", error


def test_sqs_json_nested_deep(alive):
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.CreateQueue"}
    body = ('{"QueueName": "q", "Attributes": ' + deep_json() + "}").encode()
    error = aws_error("sqs", "CreateQueue", "json", send(alive, "POST", "/", body, headers))
    assert error["Code"] == "SerializationException", error


def test_logs_json_nested_deep(alive):
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Logs_20140328.CreateLogGroup"}
    body = ('{"logGroupName": ' + deep_json() + "}").encode()
    error = aws_error("logs", "CreateLogGroup", "json", send(alive, "POST", "/", body, headers))
    assert error["Code"] == "SerializationException", error


def test_logs_filter_patterns_nested_deep(alive):
    logs = aws_client("logs", alive.endpoint)
    group = f"/hostile/{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    logs.put_log_events(logGroupName=group, logStreamName="s",
                        logEvents=[{"timestamp": time.time_ns() // 1_000_000, "message": '{"a":1}'}])
    shallow = "{ " + "(" * 8 + "$.a = 1" + ")" * 8 + " }"
    assert len(logs.filter_log_events(logGroupName=group, filterPattern=shallow)["events"]) == 1
    for pattern in ("{ " + "(" * 500 + "$.a = 1" + ")" * 500 + " }", "{ " + "(" * DEPTH + " }"):
        with pytest.raises(ClientError) as raised:
            logs.filter_log_events(logGroupName=group, filterPattern=pattern)
        assert raised.value.response["Error"]["Code"] == "InvalidParameterException"


def test_invoke_payloads_pass_through_however_deep(alive, create_fn, client):
    """nimbus checks that a payload is JSON without building it (serde_json's skipping parser is
    iterative), so any depth reaches the function; Python's runtime then refuses what it cannot
    decode, as on AWS."""
    name = create_fn("hostile-echo", {"app.py": "def handler(e, c):\n    return e\n"})
    nested = json.loads(deep_json(500))
    echoed = client.invoke(FunctionName=name, Payload=json.dumps(nested).encode())
    assert json.loads(echoed["Payload"].read()) == nested
    refused = client.invoke(FunctionName=name, Payload=deep_json().encode())
    assert refused["FunctionError"] == "Unhandled"
    assert json.loads(refused["Payload"].read())["errorType"] == "Runtime.UnmarshalError"


def test_lambda_json_nested_deep(alive, create_fn, client):
    headers = {"Content-Type": "application/json"}
    body = ('{"FunctionName": "deep", "Runtime": "python3.12", "Code": ' + deep_json() + "}").encode()
    answer = send(alive, "POST", "/2015-03-31/functions", body, headers)
    error = aws_error("lambda", "CreateFunction", "rest-json", answer)
    assert error["Code"] == "InvalidRequestContentException", error

    name = create_fn("hostile-esm", {"app.py": "def handler(e, c):\n    return e\n"}, wait=False)
    pattern = '{"body": ' + "{\"a\": " * DEPTH + "[1]" + "}" * DEPTH + "}"
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.create_event_source_mapping(
            FunctionName=name, EventSourceArn="arn:aws:sqs:us-east-1:000000000000:hostile",
            FilterCriteria={"Filters": [{"Pattern": pattern}]})


# ---------------------------------------------------------------------------
# Validation as AWS does
# ---------------------------------------------------------------------------


def test_notifications_to_missing_destinations_are_refused(alive, s3, bucket, create_fn):
    sqs = aws_client("sqs", alive.endpoint)
    url = sqs.create_queue(QueueName=f"hostile-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    function = create_fn("hostile-target", {"app.py": "def handler(e, c):\n    return 1\n"}, wait=False)
    missing_queue = queue_arn + "-missing"
    missing_function = function_arn(unique_name("missing"))
    good = {
        "QueueConfigurations": [{"Id": "q", "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}],
        "LambdaFunctionConfigurations": [{"Id": "f", "LambdaFunctionArn": function_arn(function),
                                          "Events": ["s3:ObjectRemoved:*"]}],
    }
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=good)

    bad = {
        "QueueConfigurations": good["QueueConfigurations"] + [
            {"QueueArn": missing_queue, "Events": ["s3:ObjectCreated:*"]}],
        "LambdaFunctionConfigurations": [
            {"LambdaFunctionArn": missing_function, "Events": ["s3:ObjectCreated:*"]}],
    }
    with pytest.raises(ClientError) as raised:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=bad)
    error = raised.value.response["Error"]
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Code"] == "InvalidArgument"
    assert error["Message"] == "Unable to validate the following destination configurations"
    assert error["ArgumentName1"] == missing_queue
    assert error["ArgumentValue1"] == "The destination queue does not exist"
    assert error["ArgumentName2"] == f"{missing_function}, null"
    assert error["ArgumentValue2"] == f"Not authorized to invoke function [{missing_function}]"

    kept = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert [c["QueueArn"] for c in kept["QueueConfigurations"]] == [queue_arn], "nothing changed on refusal"
    assert [c["LambdaFunctionArn"] for c in kept["LambdaFunctionConfigurations"]] == [function_arn(function)]

    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=bad,
                                             SkipDestinationValidation=True)
    kept = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert missing_queue in [c["QueueArn"] for c in kept["QueueConfigurations"]]


def _zip_of(size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("python/m.py", "X = 1\n")
        zf.writestr("python/random.bin", os.urandom(size))
    return buf.getvalue()


def test_layer_zip_over_50mb_is_request_entity_too_large(alive, client):
    name = unique_name("layer-63mb")
    with pytest.raises(ClientError) as raised:
        client.publish_layer_version(LayerName=name, Content={"ZipFile": _zip_of(63 * 1024 * 1024)})
    error = raised.value.response["Error"]
    assert error["Code"] == "RequestEntityTooLargeException", error
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert error["Message"] == "Request must be smaller than 69905067 bytes for the PublishLayerVersion operation"
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_layer_version(LayerName=name, VersionNumber=1)
    # Just under the limit is accepted, as CreateFunction accepts it.
    assert client.publish_layer_version(LayerName=name, Content={"ZipFile": _zip_of(40 * 1024 * 1024)})["Version"] == 1


def test_sqs_query_names_nested_deep(server_factory):
    own = server_factory()  # its own server: before the depth limit this request killed the process
    body = "Action=CreateQueue&Version=2012-11-05&QueueName=q&" + "Attribute." * DEPTH + "Name=x"
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    try:
        answer = send(own, "POST", "/", body.encode(), headers)
    except (ConnectionError, http.client.HTTPException) as died:
        pytest.fail(f"nimbus died: {died}")
    error = aws_error("sqs", "CreateQueue", "query", answer)
    assert error["Code"] in ("InvalidParameterValue", "MalformedQueryString"), error
    assert own.health()["status"] == "ready"
