"""Kinesis Data Streams end to end with boto3, the aws CLI (v1 and v2) and raw CBOR requests as
the AWS SDK for Java sends them: streams, AWS's hash-key ranges, per-shard order, iterators,
throttling, resharding with parent-before-child reading, retention, enhanced fan-out and
durability across a restart."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import struct
import subprocess
import threading
import time
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError, WaiterError
from botocore.parsers import create_parser

import conftest
from support import aws_cli_env, aws_client, wait_until

ACCOUNT = "000000000000"


@pytest.fixture(scope="module")
def kinesis(server):
    return aws_client("kinesis", server.endpoint, read_timeout=30)


def name(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def stream_arn(stream: str) -> str:
    return f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{stream}"


def create(kinesis, shards: int | None = 1, **extra) -> str:
    stream = name()
    if shards is None:
        kinesis.create_stream(StreamName=stream, StreamModeDetails={"StreamMode": "ON_DEMAND"}, **extra)
    else:
        kinesis.create_stream(StreamName=stream, ShardCount=shards, **extra)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    return stream


def read_all(kinesis, stream: str, shard_id: str, kind: str = "TRIM_HORIZON", **position) -> list[dict]:
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id, ShardIteratorType=kind, **position)
    records = []
    it = iterator["ShardIterator"]
    while it:
        out = kinesis.get_records(ShardIterator=it, Limit=1000)
        records += out["Records"]
        if not out["Records"] and out["MillisBehindLatest"] == 0:
            break
        it = out.get("NextShardIterator")
    return records


def expect_error(code: str, call, *args, **kwargs) -> str:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    assert caught.value.response["Error"]["Code"] == code, caught.value.response
    return caught.value.response["Error"]["Message"]


def aws_hash_ranges(n: int) -> list[tuple[int, int]]:
    return [(i * 2**128 // n, (i + 1) * 2**128 // n - 1) for i in range(n)]


def shard_for(key: str, n: int) -> str:
    h = int.from_bytes(hashlib.md5(key.encode()).digest(), "big")
    index = next(i for i, (lo, hi) in enumerate(aws_hash_ranges(n)) if lo <= h <= hi)
    return f"shardId-{index:012d}"


# ---------------------------------------------------------------------------


def test_create_describe_list_delete(kinesis):
    stream = create(kinesis, 4, Tags={"team": "data"})
    description = kinesis.describe_stream(StreamName=stream)["StreamDescription"]
    assert description["StreamStatus"] == "ACTIVE"
    assert description["StreamARN"] == stream_arn(stream)
    assert description["RetentionPeriodHours"] == 24
    assert description["HasMoreShards"] is False
    ranges = [(int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]))
              for s in description["Shards"]]
    assert ranges == aws_hash_ranges(4)
    page = kinesis.describe_stream(StreamName=stream, Limit=3)["StreamDescription"]
    assert len(page["Shards"]) == 3 and page["HasMoreShards"] is True
    rest = kinesis.describe_stream(StreamName=stream, ExclusiveStartShardId=page["Shards"][-1]["ShardId"])
    assert [s["ShardId"] for s in rest["StreamDescription"]["Shards"]] == ["shardId-000000000003"]

    summary = kinesis.describe_stream_summary(StreamARN=stream_arn(stream))["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 4 and summary["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    other = create(kinesis, None)
    assert kinesis.describe_stream_summary(StreamName=other)["StreamDescriptionSummary"]["OpenShardCount"] == 4

    names = []
    for page in kinesis.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 1}):
        names += page["StreamNames"]
        assert len(page["StreamSummaries"]) == len(page["StreamNames"])
    assert {stream, other} <= set(names)
    assert kinesis.list_tags_for_stream(StreamName=stream)["Tags"] == [{"Key": "team", "Value": "data"}]

    message = expect_error("ResourceInUseException", kinesis.create_stream, StreamName=stream, ShardCount=1)
    assert message == f"Stream {stream} under account {ACCOUNT} already exists."
    kinesis.delete_stream(StreamName=stream)
    kinesis.delete_stream(StreamARN=stream_arn(other))
    kinesis.get_waiter("stream_not_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    message = expect_error("ResourceNotFoundException", kinesis.describe_stream, StreamName=stream)
    assert message == f"Stream {stream} under account {ACCOUNT} not found."
    expect_error("ResourceNotFoundException", kinesis.put_record, StreamName=stream, PartitionKey="k", Data=b"x")


def test_put_records_land_on_aws_hash_ranges_in_shard_order(kinesis):
    stream = create(kinesis, 4)
    keys = [f"user-{i}" for i in range(200)]
    out = kinesis.put_records(StreamName=stream, Records=[
        {"PartitionKey": key, "Data": f"{key}:{i}".encode()} for i, key in enumerate(keys)
    ])
    assert out["FailedRecordCount"] == 0
    for key, result in zip(keys, out["Records"]):
        assert result["ShardId"] == shard_for(key, 4)
        assert len(result["SequenceNumber"]) == 56
    # Another batch via the stream's ARN, with an explicit hash key pinning shard 3.
    more = kinesis.put_records(StreamARN=stream_arn(stream), Records=[
        {"PartitionKey": "x", "Data": b"pinned", "ExplicitHashKey": str(2**128 - 1)}])
    assert more["Records"][0]["ShardId"] == "shardId-000000000003"

    seen = 0
    for index in range(4):
        shard_id = f"shardId-{index:012d}"
        records = read_all(kinesis, stream, shard_id)
        expected = [f"{k}:{i}".encode() for i, k in enumerate(keys) if shard_for(k, 4) == shard_id]
        if index == 3:
            expected.append(b"pinned")
        assert [r["Data"] for r in records] == expected
        sequences = [int(r["SequenceNumber"]) for r in records]
        assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
        seen += len(records)
    assert seen == 201


def test_iterator_types_and_millis_behind_latest(kinesis):
    stream = create(kinesis, 1)
    shard = "shardId-000000000000"
    seqs = [kinesis.put_record(StreamName=stream, PartitionKey="k", Data=str(i).encode())["SequenceNumber"]
            for i in range(5)]
    assert seqs == sorted(seqs, key=int)
    at = read_all(kinesis, stream, shard, "AT_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[2])
    assert [r["Data"] for r in at] == [b"2", b"3", b"4"]
    after = read_all(kinesis, stream, shard, "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[2])
    assert [r["Data"] for r in after] == [b"3", b"4"]

    latest = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="LATEST")["ShardIterator"]
    empty = kinesis.get_records(ShardIterator=latest)
    assert empty["Records"] == [] and empty["MillisBehindLatest"] == 0
    time.sleep(0.05)  # the records below must arrive measurably after the first five
    cut = dt.datetime.now(dt.timezone.utc)
    kinesis.put_record(StreamName=stream, PartitionKey="k", Data=b"5")
    kinesis.put_record(StreamName=stream, PartitionKey="k", Data=b"6")
    assert [r["Data"] for r in kinesis.get_records(ShardIterator=empty["NextShardIterator"])["Records"]] == [b"5", b"6"]
    since = read_all(kinesis, stream, shard, "AT_TIMESTAMP", Timestamp=cut - dt.timedelta(milliseconds=5))
    assert [r["Data"] for r in since] == [b"5", b"6"]

    horizon = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    first = kinesis.get_records(ShardIterator=horizon["ShardIterator"], Limit=1)
    assert first["Records"][0]["Data"] == b"0"
    assert first["MillisBehindLatest"] >= 50
    assert isinstance(first["Records"][0]["ApproximateArrivalTimestamp"], dt.datetime)

    message = expect_error("InvalidArgumentException", kinesis.get_records, ShardIterator="bm90IGFuIGl0ZXJhdG9y")
    assert "Invalid ShardIterator" in message
    expect_error("ResourceNotFoundException", kinesis.get_shard_iterator, StreamName=stream,
                 ShardId="shardId-000000000007", ShardIteratorType="LATEST")
    expect_error("InvalidArgumentException", kinesis.get_shard_iterator, StreamName=stream, ShardId=shard,
                 ShardIteratorType="AT_SEQUENCE_NUMBER")
    message = expect_error("InvalidArgumentException", kinesis.get_shard_iterator, StreamName=stream, ShardId=shard,
                           ShardIteratorType="AT_TIMESTAMP", Timestamp=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
    assert "cannot be greater than the currentTimestampInMillis" in message


def test_request_limits(kinesis):
    stream = create(kinesis, 1)
    records = [{"PartitionKey": "k", "Data": b"x"}] * 501
    message = expect_error("ValidationException", kinesis.put_records, StreamName=stream, Records=records)
    assert "Member must have length less than or equal to 500" in message
    message = expect_error("ValidationException", kinesis.put_record, StreamName=stream, PartitionKey="k",
                           Data=b"x" * (1024 * 1024 + 1))
    assert "Member must have length less than or equal to 1048576" in message
    message = expect_error("InvalidArgumentException", kinesis.put_records, StreamName=stream,
                           Records=[{"PartitionKey": "k", "Data": b"x" * (1024 * 1023)}] * 6)
    assert message == "Records size exceeds 5 MB limit"
    assert read_all(kinesis, stream, "shardId-000000000000") == []


def test_partial_failures_past_a_shards_write_limit(server_factory):
    srv = server_factory(extra_args=["--kinesis-limits"])
    kinesis = aws_client("kinesis", srv.endpoint)
    stream = create(kinesis, 2)
    hot = "hot"
    cold = next(k for k in (f"c{i}" for i in range(100)) if shard_for(k, 2) != shard_for(hot, 2))
    # 1 MiB/s per shard: 450 records of 2,500 bytes to one shard in one call pass it part way
    # (every record of a call counts in the same second).
    batch = [{"PartitionKey": hot, "Data": b"h" * 2500}] * 450 + [{"PartitionKey": cold, "Data": b"c"}] * 2
    results = [kinesis.put_records(StreamName=stream, Records=batch)]
    out = results[-1]
    admitted = (1024 * 1024) // (2500 + len(hot))
    assert out["FailedRecordCount"] == 450 - admitted
    failed = [r for r in out["Records"] if "ErrorCode" in r]
    assert failed[0]["ErrorCode"] == "ProvisionedThroughputExceededException"
    assert out["Records"].index(failed[0]) == admitted, "records are admitted in order"
    assert failed[0]["ErrorMessage"] == (
        f"Rate exceeded for shard {shard_for(hot, 2)} in stream {stream} under account {ACCOUNT}.")
    assert all("SequenceNumber" in r for r in out["Records"][-2:]), "the cold shard's records went in"
    assert len(out["Records"]) == 452


def test_split_and_merge_read_parents_before_children(kinesis):
    stream = create(kinesis, 1)
    before = [kinesis.put_record(StreamName=stream, PartitionKey=f"k{i}", Data=f"p{i}".encode()) for i in range(6)]
    kinesis.split_shard(StreamName=stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**127))
    after = [kinesis.put_record(StreamName=stream, PartitionKey=f"k{i}", Data=f"c{i}".encode()) for i in range(6)]
    assert {r["ShardId"] for r in before} == {"shardId-000000000000"}
    assert {r["ShardId"] for r in after} <= {"shardId-000000000001", "shardId-000000000002"}

    shards = {s["ShardId"]: s for s in kinesis.list_shards(StreamName=stream)["Shards"]}
    parent = shards["shardId-000000000000"]
    assert parent["SequenceNumberRange"]["EndingSequenceNumber"] == before[-1]["SequenceNumber"]
    for child in ("shardId-000000000001", "shardId-000000000002"):
        assert shards[child]["ParentShardId"] == "shardId-000000000000"
        assert "EndingSequenceNumber" not in shards[child]["SequenceNumberRange"]
    assert int(shards["shardId-000000000002"]["HashKeyRange"]["StartingHashKey"]) == 2**127
    open_now = kinesis.list_shards(StreamName=stream, ShardFilter={"Type": "AT_LATEST"})["Shards"]
    assert [s["ShardId"] for s in open_now] == ["shardId-000000000001", "shardId-000000000002"]

    # The parent, read to its end: its records, then no next iterator and its children named.
    it = kinesis.get_shard_iterator(StreamName=stream, ShardId="shardId-000000000000",
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    out = kinesis.get_records(ShardIterator=it)
    assert [r["Data"] for r in out["Records"]] == [f"p{i}".encode() for i in range(6)]
    assert "NextShardIterator" not in out or out["NextShardIterator"] is None
    assert sorted(c["ShardId"] for c in out["ChildShards"]) == ["shardId-000000000001", "shardId-000000000002"]
    assert all(c["ParentShards"] == ["shardId-000000000000"] for c in out["ChildShards"])
    child_seqs = [int(r["SequenceNumber"]) for r in after]
    assert min(child_seqs) > max(int(r["SequenceNumber"]) for r in before)

    expect_error("ResourceInUseException", kinesis.merge_shards, StreamName=stream,
                 ShardToMerge="shardId-000000000001", AdjacentShardToMerge="shardId-000000000000")
    kinesis.merge_shards(StreamName=stream, ShardToMerge="shardId-000000000001",
                         AdjacentShardToMerge="shardId-000000000002")
    merged = kinesis.list_shards(StreamName=stream, ShardFilter={"Type": "AT_LATEST"})["Shards"]
    assert len(merged) == 1
    assert merged[0]["ParentShardId"] == "shardId-000000000001"
    assert merged[0]["AdjacentParentShardId"] == "shardId-000000000002"
    assert merged[0]["HashKeyRange"] == {"StartingHashKey": "0", "EndingHashKey": str(2**128 - 1)}
    message = expect_error("ResourceInUseException", kinesis.split_shard, StreamName=stream,
                           ShardToSplit="shardId-000000000001", NewStartingHashKey="5")
    assert "has already been merged or split" in message

    scaled = kinesis.update_shard_count(StreamName=stream, TargetShardCount=2, ScalingType="UNIFORM_SCALING")
    assert (scaled["CurrentShardCount"], scaled["TargetShardCount"]) == (1, 2)
    shards = kinesis.list_shards(StreamName=stream, ShardFilter={"Type": "AT_LATEST"})["Shards"]
    assert [int(s["HashKeyRange"]["StartingHashKey"]) for s in shards] == [lo for lo, _ in aws_hash_ranges(2)]
    page = kinesis.list_shards(StreamName=stream, MaxResults=2)
    pages = [page]
    while "NextToken" in page:
        page = kinesis.list_shards(NextToken=page["NextToken"], MaxResults=2)
        pages.append(page)
    assert sum(len(p["Shards"]) for p in pages) == 6 and len(pages) == 3
    # As on AWS, a NextToken names its stream: boto3's paginator, which repeats StreamName, fails.
    message = expect_error("InvalidArgumentException", kinesis.list_shards, StreamName=stream,
                           NextToken=pages[0]["NextToken"])
    assert message == "NextToken and StreamName cannot be provided together."


def test_retention_period(kinesis):
    stream = create(kinesis, 1)
    kinesis.increase_stream_retention_period(StreamName=stream, RetentionPeriodHours=168)
    assert kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["RetentionPeriodHours"] == 168
    message = expect_error("InvalidArgumentException", kinesis.increase_stream_retention_period,
                           StreamName=stream, RetentionPeriodHours=48)
    assert "can not be shorter than existing retention period (168 hours)" in message
    expect_error("InvalidArgumentException", kinesis.increase_stream_retention_period,
                 StreamName=stream, RetentionPeriodHours=8761)
    kinesis.decrease_stream_retention_period(StreamARN=stream_arn(stream), RetentionPeriodHours=24)
    message = expect_error("InvalidArgumentException", kinesis.decrease_stream_retention_period,
                           StreamName=stream, RetentionPeriodHours=12)
    assert "Minimum allowed retention period is 24 hours" in message


def test_monitoring_encryption_and_mode_settings(kinesis):
    stream = create(kinesis, 1)
    out = kinesis.enable_enhanced_monitoring(StreamName=stream, ShardLevelMetrics=["IncomingBytes"])
    assert out["CurrentShardLevelMetrics"] == [] and out["DesiredShardLevelMetrics"] == ["IncomingBytes"]
    out = kinesis.disable_enhanced_monitoring(StreamARN=stream_arn(stream), ShardLevelMetrics=["ALL"])
    assert out["DesiredShardLevelMetrics"] == []
    kinesis.start_stream_encryption(StreamName=stream, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    summary = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    assert (summary["EncryptionType"], summary["KeyId"]) == ("KMS", "alias/aws/kinesis")
    assert kinesis.put_record(StreamName=stream, PartitionKey="k", Data=b"x")["EncryptionType"] == "KMS"
    kinesis.stop_stream_encryption(StreamName=stream, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    kinesis.update_stream_mode(StreamARN=stream_arn(stream), StreamModeDetails={"StreamMode": "ON_DEMAND"})
    summary = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    assert summary["EncryptionType"] == "NONE" and summary["StreamModeDetails"]["StreamMode"] == "ON_DEMAND"
    expect_error("UnknownOperationException", kinesis.get_resource_policy, ResourceARN=stream_arn(stream))


def test_enhanced_fan_out_subscribe_to_shard(kinesis):
    stream = create(kinesis, 2)
    arn = stream_arn(stream)
    consumer = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="fan")["Consumer"]
    assert consumer["ConsumerARN"].startswith(f"{arn}/consumer/fan:")
    wait_until(lambda: kinesis.describe_stream_consumer(ConsumerARN=consumer["ConsumerARN"])
               ["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE", what="consumer active")
    described = kinesis.describe_stream_consumer(StreamARN=arn, ConsumerName="fan")["ConsumerDescription"]
    assert described["StreamARN"] == arn
    assert [c["ConsumerName"] for c in kinesis.list_stream_consumers(StreamARN=arn)["Consumers"]] == ["fan"]
    expect_error("ResourceInUseException", kinesis.register_stream_consumer, StreamARN=arn, ConsumerName="fan")

    key = "fan-key"
    shard = shard_for(key, 2)
    sent = [kinesis.put_record(StreamName=stream, PartitionKey=key, Data=f"e{i}".encode()) for i in range(5)]
    response = kinesis.subscribe_to_shard(ConsumerARN=consumer["ConsumerARN"], ShardId=shard,
                                          StartingPosition={"Type": "TRIM_HORIZON"})
    received = []
    for event in response["EventStream"]:
        body = event["SubscribeToShardEvent"]
        received += body["Records"]
        assert body["ContinuationSequenceNumber"]
    assert [r["Data"] for r in received] == [f"e{i}".encode() for i in range(5)]
    assert [r["SequenceNumber"] for r in received] == [s["SequenceNumber"] for s in sent]

    after = kinesis.subscribe_to_shard(ConsumerARN=consumer["ConsumerARN"], ShardId=shard,
                                       StartingPosition={"Type": "AFTER_SEQUENCE_NUMBER",
                                                         "SequenceNumber": sent[2]["SequenceNumber"]})
    assert [r["Data"] for e in after["EventStream"] for r in e["SubscribeToShardEvent"]["Records"]] == [b"e3", b"e4"]

    # A subscription at the tip waits for the next record and delivers it as soon as it is put.
    received = []
    subscriber = threading.Thread(target=lambda: received.extend(
        r["Data"] for e in kinesis.subscribe_to_shard(
            ConsumerARN=consumer["ConsumerARN"], ShardId=shard,
            StartingPosition={"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": sent[-1]["SequenceNumber"]},
        )["EventStream"] for r in e["SubscribeToShardEvent"]["Records"]))
    started = time.monotonic()
    subscriber.start()
    kinesis.put_record(StreamName=stream, PartitionKey=key, Data=b"live")
    subscriber.join(10)
    assert received == [b"live"] and time.monotonic() - started < 4

    message = expect_error("ResourceInUseException", kinesis.delete_stream, StreamName=stream)
    assert "consumers" in message
    kinesis.deregister_stream_consumer(ConsumerARN=consumer["ConsumerARN"])
    assert kinesis.list_stream_consumers(StreamARN=arn)["Consumers"] == []
    expect_error("ResourceNotFoundException", kinesis.describe_stream_consumer, ConsumerARN=consumer["ConsumerARN"])
    kinesis.delete_stream(StreamName=stream)


def test_tags(kinesis):
    stream = create(kinesis, 1)
    kinesis.add_tags_to_stream(StreamName=stream, Tags={"a": "1", "b": "2", "c": "3"})
    page = kinesis.list_tags_for_stream(StreamName=stream, Limit=2)
    assert page["Tags"] == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}] and page["HasMoreTags"]
    rest = kinesis.list_tags_for_stream(StreamName=stream, ExclusiveStartTagKey="b")
    assert rest["Tags"] == [{"Key": "c", "Value": "3"}] and not rest["HasMoreTags"]
    kinesis.remove_tags_from_stream(StreamName=stream, TagKeys=["a", "c"])
    kinesis.tag_resource(ResourceARN=stream_arn(stream), Tags={"d": "4"})
    tags = kinesis.list_tags_for_resource(ResourceARN=stream_arn(stream))["Tags"]
    assert tags == [{"Key": "b", "Value": "2"}, {"Key": "d", "Value": "4"}]
    kinesis.untag_resource(ResourceARN=stream_arn(stream), TagKeys=["b"])
    assert kinesis.list_tags_for_stream(StreamName=stream)["Tags"] == [{"Key": "d", "Value": "4"}]
    expect_error("ResourceNotFoundException", kinesis.list_tags_for_resource, ResourceARN=stream_arn("nope-x"))


def test_aws_cli_v1_and_v2(server, tmp_path):
    env = aws_cli_env(server.endpoint, tmp_path)
    stream = name("cli")

    def cli(binary: str, *args: str) -> dict:
        endpoint = ["--endpoint-url", server.endpoint] if binary.startswith("/") else []
        done = subprocess.run([binary, "kinesis", *args, "--output", "json", *endpoint], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    cli("aws", "create-stream", "--stream-name", stream, "--shard-count", "2")
    # v1 sends the text as the blob; v2 takes base64.
    put = cli("aws", "put-record", "--stream-name", stream, "--partition-key", "pk", "--data", "hello")
    assert put["ShardId"] == shard_for("pk", 2)
    v2 = "/usr/bin/aws"  # 2.9 predates AWS_ENDPOINT_URL
    put2 = cli(v2, "put-record", "--stream-name", stream, "--partition-key", "pk", "--data", "d29ybGQ=",
               "--cli-binary-format", "base64")
    assert int(put2["SequenceNumber"]) > int(put["SequenceNumber"])
    it = aws_client("kinesis", server.endpoint).get_shard_iterator(
        StreamName=stream, ShardId=put["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = cli(v2, "get-records", "--shard-iterator", it)["Records"]
    assert [r["Data"] for r in records] == ["aGVsbG8=", "d29ybGQ="]


def _cbor(value) -> bytes:
    """A minimal CBOR encoder for the request maps the AWS SDK for Java sends."""
    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        for info, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
            if n < 1 << (8 * struct.calcsize(fmt)):
                return bytes([major << 5 | info]) + struct.pack(fmt, n)
        raise OverflowError(n)

    if isinstance(value, dt.datetime):  # the SDK for Java's timestamps: tag 1, epoch milliseconds
        return b"\xc1" + _cbor(int(value.timestamp() * 1000))
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        return head(3, len(value.encode())) + value.encode()
    if isinstance(value, int):
        return head(0, value)
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(_cbor(k) + _cbor(v) for k, v in value.items())
    raise TypeError(type(value))


def _cbor_call(endpoint: str, operation: str, body: dict) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(endpoint + "/", data=_cbor(body), method="POST", headers={
        "Content-Type": "application/x-amz-cbor-1.1",
        "X-Amz-Target": f"Kinesis_20131202.{operation}",
        "Authorization": "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/kinesis/aws4_request, "
                         "SignedHeaders=host, Signature=0",
    })
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw, content_type = response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        status, raw, content_type = error.code, error.read(), error.headers["Content-Type"]
    assert content_type == "application/x-amz-cbor-1.1"
    parser = create_parser("smithy-rpc-v2-cbor")
    parser._parse_datetime = lambda value: value  # Kinesis's tag 1 holds milliseconds, not seconds
    return status, parser.parse_data_item(parser.get_peekable_stream_from_bytes(raw)), raw


def test_cbor_as_the_java_sdk_speaks_it(kinesis, server):
    stream = create(kinesis, 1)
    status, put, _ = _cbor_call(server.endpoint, "PutRecord",
                                {"StreamName": stream, "PartitionKey": "k", "Data": b"\x00\xffbinary"})
    assert status == 200 and put["ShardId"] == "shardId-000000000000"
    status, it, _ = _cbor_call(server.endpoint, "GetShardIterator", {
        "StreamName": stream, "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP",
        "Timestamp": dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)})
    status, got, raw = _cbor_call(server.endpoint, "GetRecords", {"ShardIterator": it["ShardIterator"]})
    assert status == 200
    assert got["Records"][0]["Data"] == b"\x00\xffbinary"
    assert got["Records"][0]["SequenceNumber"] == put["SequenceNumber"]
    assert abs(got["Records"][0]["ApproximateArrivalTimestamp"] - time.time() * 1000) < 60_000, "epoch ms"
    status, error, _ = _cbor_call(server.endpoint, "DescribeStream", {"StreamName": "nope-cbor"})
    assert status == 400 and error["__type"] == "ResourceNotFoundException"
    assert error["message"] == f"Stream nope-cbor under account {ACCOUNT} not found."


def test_records_survive_a_kill(server_factory):
    srv = server_factory()
    kinesis = aws_client("kinesis", srv.endpoint)
    stream = create(kinesis, 2)
    sent = kinesis.put_records(StreamName=stream, Records=[
        {"PartitionKey": f"k{i}", "Data": f"r{i}".encode()} for i in range(20)])["Records"]
    kinesis.split_shard(StreamName=stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**126))
    srv.kill()
    srv.start()
    kinesis = aws_client("kinesis", srv.endpoint)
    got = {}
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        for record in read_all(kinesis, stream, shard["ShardId"]):
            got[record["SequenceNumber"]] = record["Data"]
    assert got == {s["SequenceNumber"]: f"r{i}".encode() for i, s in enumerate(sent)}
    after = kinesis.put_record(StreamName=stream, PartitionKey="k1", Data=b"new")
    assert int(after["SequenceNumber"]) > max(int(s["SequenceNumber"]) for s in sent if s["ShardId"] == after["ShardId"]) \
        if any(s["ShardId"] == after["ShardId"] for s in sent) else True
    with pytest.raises(WaiterError):
        kinesis.get_waiter("stream_not_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 1})


@pytest.mark.skipif(not conftest.TEST_DATABASE, reason="several nodes need PostgreSQL: set NIMBUS_TEST_DATABASE")
def test_two_nodes_hand_out_one_order_of_sequence_numbers(server_factory, tmp_path_factory):
    url = conftest.fresh_database_url("kinesis")
    shared = tmp_path_factory.mktemp("shared")
    nodes = [server_factory(extra_args=["--database", url, "--shared-dir", str(shared), "--node", n])
             for n in ("a", "b")]
    a, b = (aws_client("kinesis", node.endpoint) for node in nodes)
    stream = create(a, 1)
    sequences = []

    def put(client):
        for _ in range(10):
            out = client.put_records(StreamName=stream, Records=[{"PartitionKey": "k", "Data": b"x"}] * 20)
            sequences.extend(r["SequenceNumber"] for r in out["Records"])

    threads = [threading.Thread(target=put, args=(c,)) for c in (a, b, a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(sequences)) == len(sequences) == 800
    read = [r["SequenceNumber"] for r in read_all(b, stream, "shardId-000000000000")]
    assert read == sorted(sequences, key=int)

    # A subscription waiting on node b wakes when node a commits a record.
    consumer = b.register_stream_consumer(StreamARN=stream_arn(stream), ConsumerName="c")["Consumer"]
    received = []
    subscriber = threading.Thread(target=lambda: received.extend(
        r["Data"] for e in b.subscribe_to_shard(
            ConsumerARN=consumer["ConsumerARN"], ShardId="shardId-000000000000",
            StartingPosition={"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": read[-1]},
        )["EventStream"] for r in e["SubscribeToShardEvent"]["Records"]))
    started = time.monotonic()
    subscriber.start()
    a.put_record(StreamName=stream, PartitionKey="k", Data=b"from a")
    subscriber.join(10)
    assert received == [b"from a"] and time.monotonic() - started < 4
