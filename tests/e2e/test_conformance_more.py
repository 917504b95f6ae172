"""Error fidelity and validation AWS does (issue 19, item 2): SQS's query-compatible errors on the
JSON protocol, FIFO batch entries without a deduplication id, S3's storage class and continuation
token checks and request ids, CloudWatch's ValidationError wording — with boto3 and the aws CLI."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError

from support import aws_cli_env, aws_client


@pytest.fixture(scope="module")
def sqs(server):
    return aws_client("sqs", server.endpoint)


@pytest.fixture(scope="module")
def s3(server):
    return aws_client("s3", server.endpoint)


@pytest.fixture(scope="module")
def cw(server):
    return aws_client("cloudwatch", server.endpoint)


def test_sqs_json_errors_carry_the_query_code(sqs):
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as excinfo:
        sqs.get_queue_url(QueueName=f"missing-{uuid.uuid4().hex[:8]}")
    error = excinfo.value.response["Error"]
    # Current botocore reports the legacy code from x-amzn-query-error.
    assert error["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert error["QueryErrorCode"] == "QueueDoesNotExist" and error["Type"] == "Sender"


def test_fifo_batch_entries_need_a_deduplication_id(sqs):
    url = sqs.create_queue(QueueName=f"batch-{uuid.uuid4().hex[:8]}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    sent = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "no-dedup", "MessageBody": "a", "MessageGroupId": "g"},
        {"Id": "dedup", "MessageBody": "b", "MessageGroupId": "g", "MessageDeduplicationId": "d1"}])
    assert [s["Id"] for s in sent["Successful"]] == ["dedup"]
    [failed] = sent["Failed"]
    assert failed["Id"] == "no-dedup" and failed["SenderFault"] is True
    assert failed["Code"] == "InvalidParameterValue"
    assert "ContentBasedDeduplication" in failed["Message"]


def test_s3_storage_classes_and_continuation_tokens_are_checked(s3, server, tmp_path):
    bucket = f"conf-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", StorageClass="NOT_A_CLASS")
    assert excinfo.value.response["Error"]["Code"] == "InvalidStorageClass"
    assert excinfo.value.response["Error"]["Message"] == "The storage class you specified is not valid"
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", StorageClass="STANDARD_IA")
    assert s3.head_object(Bucket=bucket, Key="k")["StorageClass"] == "STANDARD_IA"
    with pytest.raises(ClientError) as excinfo:
        s3.list_objects_v2(Bucket=bucket, ContinuationToken="not-a-token")
    error = excinfo.value.response["Error"]
    assert (error["Code"], error["Message"]) == ("InvalidArgument", "The continuation token provided is incorrect")

    env = aws_cli_env(server.endpoint, tmp_path)
    cli = subprocess.run(["aws", "s3api", "list-objects-v2", "--bucket", bucket, "--continuation-token", "bogus"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert cli.returncode != 0 and "The continuation token provided is incorrect" in cli.stderr


def test_s3_error_bodies_carry_the_request_id_of_the_header(s3):
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=f"none-{uuid.uuid4().hex[:8]}", Key="k")
    response = excinfo.value.response
    header = response["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    assert header and response["ResponseMetadata"]["RequestId"] == header
    assert response["Error"]["Code"] == "NoSuchBucket"


def test_cloudwatch_enum_violations_are_validation_errors(cw, server, tmp_path):
    with pytest.raises(ClientError) as excinfo:
        cw.put_metric_data(Namespace="App", MetricData=[{"MetricName": "x", "Value": 1, "Unit": "GB"}])
    error = excinfo.value.response["Error"]
    assert error["Code"] == "ValidationError"
    assert error["Message"].startswith(
        "1 validation error detected: Value 'GB' at 'metricData.1.member.unit' failed to satisfy constraint: "
        "Member must satisfy enum value set: [")
    with pytest.raises(ClientError) as excinfo:
        cw.describe_alarms(StateValue="BROKEN")
    assert excinfo.value.response["Error"]["Code"] == "ValidationError"
    assert "at 'stateValue'" in excinfo.value.response["Error"]["Message"]
    env = aws_cli_env(server.endpoint, tmp_path)
    cli = subprocess.run(["aws", "cloudwatch", "put-metric-alarm", "--alarm-name", "a", "--namespace", "App",
                          "--metric-name", "x", "--statistic", "Sum", "--period", "60", "--evaluation-periods", "1",
                          "--threshold", "1", "--comparison-operator", "Sideways"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert cli.returncode != 0 and "ValidationError" in cli.stderr and "comparisonOperator" in cli.stderr


def test_logs_filter_patterns_follow_aws_syntax(server):
    logs = aws_client("logs", server.endpoint)
    group = f"/patterns/{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    import time
    now = int(time.time() * 1000)
    lines = ["[ERROR 500] upstream failed", "[ERROR 404] not found", "WARN disk at 91%", "INFO request-id=abc-123 ok",
             '{"level": "ERROR", "ms": 250}', "10.0.0.1 GET /index.html 500 512"]
    logs.put_log_events(logGroupName=group, logStreamName="s",
                        logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(lines)])

    def matching(pattern):
        return [e["message"] for e in logs.filter_log_events(logGroupName=group, filterPattern=pattern)["events"]]

    assert matching('"ERROR 500"') == ["[ERROR 500] upstream failed"]
    assert matching('"request-id=abc-123"') == ["INFO request-id=abc-123 ok"]
    assert matching("?WARN ?INFO") == ["WARN disk at 91%", "INFO request-id=abc-123 ok"]
    assert matching("ERROR -404") == ["[ERROR 500] upstream failed", '{"level": "ERROR", "ms": 250}']
    assert matching("{ $.ms > 200 }") == ['{"level": "ERROR", "ms": 250}']
    assert matching("[ip, method, path, status=5*, bytes]") == ["10.0.0.1 GET /index.html 500 512"]
    assert matching("%ERROR [45]0[04]%") == ["[ERROR 500] upstream failed", "[ERROR 404] not found"]
    with pytest.raises(logs.exceptions.InvalidParameterException):
        matching("%(ERROR)%")  # AWS takes no groups in filter pattern regexes
