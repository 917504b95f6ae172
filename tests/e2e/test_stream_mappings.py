"""Kinesis event source mappings end to end: every knob AWS documents, honoured — batch sizes per
shard, bisection of a poison batch, a failing shard that stalls until its record ages out while
the others go on, parallelization that keeps each key in order, parent-before-child after a
split, tumbling windows with state, partial batch failures, filters, and no gaps after kill -9."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.request
import uuid

import pytest

from support import aws_client, unique_name

ACCOUNT = "000000000000"

# Sends what the function saw to the queue OUT: one message per invocation (the batch), in a
# FIFO group per shard so the order of invocations is kept. Records whose data is "poison" fail
# the batch; "fail-once:<id>" is reported as a batch item failure the first time it is seen.
RECORDER = r'''
import base64, json, os, boto3
sqs = boto3.client("sqs")
seen = set()

def handler(event, context):
    records = event.get("Records", [])
    datas = [base64.b64decode(r["kinesis"]["data"]).decode() for r in records]
    if "poison" in datas:
        raise RuntimeError("poison")
    if os.environ.get("PARTIAL"):
        for record, data in zip(records, datas):
            if data.startswith("fail-once") and data not in seen:
                seen.add(data)
                return {"batchItemFailures": [{"itemIdentifier": record["kinesis"]["sequenceNumber"]}]}
    if "window" in event:
        state = event.get("state") or {}
        state["count"] = state.get("count", 0) + len(records)
        if event["isFinalInvokeForWindow"]:
            sqs.send_message(QueueUrl=os.environ["OUT"], MessageBody=json.dumps({"final": state, "window": event["window"]}),
                             MessageGroupId="w")
        return {"state": state}
    shard = records[0]["eventID"].split(":")[0] if records else "none"
    body = {"shard": shard, "data": datas, "seq": [r["kinesis"]["sequenceNumber"] for r in records],
            "keys": [r["kinesis"]["partitionKey"] for r in records]}
    group = records[0]["kinesis"]["partitionKey"] if os.environ.get("BY_KEY") else shard
    sqs.send_message(QueueUrl=os.environ["OUT"], MessageBody=json.dumps(body), MessageGroupId=group)
'''


@pytest.fixture(scope="module")
def virtual(server_factory):
    return server_factory(extra_args=["--clock", "virtual"])


class Rig:
    """A stream, a FIFO output queue and a recorder function, on one nimbus."""

    def __init__(self, endpoint: str, create_fn, shards: int, env: dict | None = None):
        self.endpoint = endpoint
        self.kinesis = aws_client("kinesis", endpoint, read_timeout=30)
        self.sqs = aws_client("sqs", endpoint, read_timeout=30)
        self.lam = aws_client("lambda", endpoint, read_timeout=60)
        self.stream = unique_name("st")
        self.kinesis.create_stream(StreamName=self.stream, ShardCount=shards)
        self.arn = f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{self.stream}"
        self.out = self.sqs.create_queue(QueueName=unique_name("out") + ".fifo", Attributes={
            "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
        failures = self.sqs.create_queue(QueueName=unique_name("fail"))["QueueUrl"]
        self.failures = failures
        self.failures_arn = self.sqs.get_queue_attributes(
            QueueUrl=failures, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        variables = {"OUT": self.out, **(env or {})}
        self.function = create_fn("rec", {"app.py": RECORDER}, Timeout=30, Environment={"Variables": variables},
                                  cl=self.lam)

    def map(self, **knobs) -> str:
        knobs.setdefault("StartingPosition", "TRIM_HORIZON")
        return self.lam.create_event_source_mapping(
            EventSourceArn=self.arn, FunctionName=self.function, **knobs)["UUID"]

    def put(self, data: str, key: str = "k", hash_key: str | None = None) -> dict:
        extra = {"ExplicitHashKey": hash_key} if hash_key else {}
        return self.kinesis.put_record(StreamName=self.stream, Data=data.encode(), PartitionKey=key, **extra)

    def batches(self, queue: str | None = None, until=lambda got: False, wait: float = 20) -> list[dict]:
        got: list[dict] = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not until(got):
            reply = self.sqs.receive_message(QueueUrl=queue or self.out, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for message in reply.get("Messages", []):
                got.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=queue or self.out, ReceiptHandle=message["ReceiptHandle"])
        return got


def processed(batches: list[dict]) -> list[str]:
    return [d for b in batches for d in b.get("data", [])]


def advance(endpoint: str, seconds: float) -> None:
    request = urllib.request.Request(f"{endpoint}/_nimbus/clock/advance?seconds={seconds}", method="POST")
    urllib.request.urlopen(request).read()


# Explicit hash keys that land on shard 0 and shard 1 of a two-shard stream.
LOW, HIGH = "1", str(2**127 + 1)


def test_batches_are_per_shard_in_order_and_of_the_configured_size(server, create_fn):
    rig = Rig(server.endpoint, create_fn, shards=4)
    entries = [{"Data": f"r{i}".encode(), "PartitionKey": f"key-{i % 13}"} for i in range(60)]
    reply = rig.kinesis.put_records(StreamName=rig.stream, Records=entries)
    assert reply["FailedRecordCount"] == 0
    rig.map(BatchSize=5, MaximumBatchingWindowInSeconds=1)
    batches = rig.batches(until=lambda got: len(processed(got)) >= 60, wait=40)
    assert sorted(processed(batches), key=lambda d: int(d[1:])) == [f"r{i}" for i in range(60)]
    shard_of = {r["SequenceNumber"]: r["ShardId"] for r in reply["Records"]}
    for batch in batches:
        assert 1 <= len(batch["data"]) <= 5
        assert {shard_of[s] for s in batch["seq"]} == {batch["shard"]}
        assert batch["seq"] == sorted(batch["seq"], key=int)
    by_shard: dict[str, list[str]] = {}
    for batch in batches:
        by_shard.setdefault(batch["shard"], []).extend(batch["seq"])
    assert all(seqs == sorted(seqs, key=int) for seqs in by_shard.values())
    assert len(by_shard) == 4


def test_bisect_isolates_the_poison_record(server, create_fn):
    rig = Rig(server.endpoint, create_fn, shards=1)
    for i in range(7):
        rig.put("poison" if i == 4 else f"ok{i}")
    uuid_ = rig.map(BatchSize=8, MaximumBatchingWindowInSeconds=1, BisectBatchOnFunctionError=True,
                    MaximumRetryAttempts=1, DestinationConfig={"OnFailure": {"Destination": rig.failures_arn}})
    [failure] = rig.batches(rig.failures, until=lambda got: len(got) >= 1)
    info = failure["KinesisBatchInfo"]
    assert info["batchSize"] == 1 and info["streamArn"] == rig.arn
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    poison_seq = info["startSequenceNumber"]
    assert info["endSequenceNumber"] == poison_seq
    batches = rig.batches(until=lambda got: len(processed(got)) >= 6)
    assert sorted(processed(batches)) == [f"ok{i}" for i in range(7) if i != 4]
    got = rig.lam.get_event_source_mapping(UUID=uuid_)
    assert got["BisectBatchOnFunctionError"] is True and got["MaximumRetryAttempts"] == 1


def test_a_failing_shard_stalls_until_its_record_ages_out_while_others_go_on(virtual, create_fn, nimbus_bin):
    rig = Rig(virtual.endpoint, create_fn, shards=2)
    rig.put("poison", hash_key=LOW)
    rig.put("other-shard", hash_key=HIGH)
    rig.map(BatchSize=10, MaximumRetryAttempts=-1, MaximumRecordAgeInSeconds=60,
            DestinationConfig={"OnFailure": {"Destination": rig.failures_arn}})
    first = rig.batches(until=lambda got: "other-shard" in processed(got))
    assert processed(first) == ["other-shard"]
    # Half a minute later a record arrives behind the poison one: shard 0 is stuck, it waits.
    advance(virtual.endpoint, 30)
    rig.put("after-poison", hash_key=LOW)
    assert processed(rig.batches(wait=2)) == []
    # `nimbus streams` shows the stuck shard 30 s behind and the other one caught up.
    env = {**os.environ, "AWS_ENDPOINT_URL": virtual.endpoint}
    shown = json.loads(subprocess.run([str(nimbus_bin), "streams", "--json"], env=env, capture_output=True,
                                      text=True, check=True).stdout)
    [mapping] = [m for m in shown["mappings"] if m["source"] == rig.arn]
    ages = sorted(shard["iterator_age_ms"] for shard in mapping["shards"])
    assert ages[0] == 0 and ages[1] >= 30_000
    assert mapping["last_result"].startswith("PROBLEM")
    # The poison record ages out (the other is 31 s old): it goes to OnFailure, the shard moves on.
    advance(virtual.endpoint, 31)
    [failure] = rig.batches(rig.failures, until=lambda got: len(got) >= 1)
    assert failure["requestContext"]["condition"] == "RecordAgeExceeded"
    assert failure["KinesisBatchInfo"]["batchSize"] == 1
    after = rig.batches(until=lambda got: "after-poison" in processed(got))
    assert processed(after) == ["after-poison"]


def test_parallelization_keeps_each_key_in_order(server, create_fn):
    rig = Rig(server.endpoint, create_fn, shards=1, env={"BY_KEY": "1"})
    entries = [{"Data": f"{key}:{n}".encode(), "PartitionKey": key} for n in range(12) for key in "abcdefgh"]
    rig.kinesis.put_records(StreamName=rig.stream, Records=entries)
    rig.map(BatchSize=3, ParallelizationFactor=5)
    # Five environments start at once (each imports boto3): give a loaded machine time.
    batches = rig.batches(until=lambda got: len(processed(got)) >= len(entries), wait=120)
    per_key: dict[str, list[int]] = {}
    for batch in batches:
        for data in batch["data"]:
            key, n = data.split(":")
            per_key.setdefault(key, []).append(int(n))
    assert per_key == {key: list(range(12)) for key in "abcdefgh"}


def test_children_are_read_after_their_parent_is_drained(server, create_fn):
    rig = Rig(server.endpoint, create_fn, shards=1)
    for i in range(5):
        rig.put(f"parent{i}", key=f"p{i}")
    shard = rig.kinesis.list_shards(StreamName=rig.stream)["Shards"][0]
    rig.kinesis.split_shard(StreamName=rig.stream, ShardToSplit=shard["ShardId"], NewStartingHashKey=str(2**127))
    for i in range(5):
        rig.put(f"child{i}", key=f"c{i}")
    rig.map(BatchSize=100)
    batches = rig.batches(until=lambda got: len(processed(got)) >= 10)
    order = processed(batches)
    assert sorted(order) == sorted([f"parent{i}" for i in range(5)] + [f"child{i}" for i in range(5)])
    last_parent = max(i for i, d in enumerate(order) if d.startswith("parent"))
    first_child = min(i for i, d in enumerate(order) if d.startswith("child"))
    assert last_parent < first_child


def test_tumbling_window_carries_state_to_the_final_invoke(virtual, create_fn):
    rig = Rig(virtual.endpoint, create_fn, shards=1)
    rig.map(BatchSize=2, TumblingWindowInSeconds=60)
    # Windows are aligned to the clock's minutes: start just after one, so that the window the
    # records land in cannot close on its own (real time passes too) before the jump below.
    with urllib.request.urlopen(f"{virtual.endpoint}/_nimbus/clock") as reply:
        now = json.load(reply)["now_ms"] / 1000
    advance(virtual.endpoint, 60 - now % 60 + 1)
    for i in range(5):
        rig.put(f"w{i}")
    assert rig.batches(wait=2) == []
    advance(virtual.endpoint, 120)
    [final] = rig.batches(until=lambda got: len(got) >= 1)
    assert final["final"] == {"count": 5}
    assert final["window"]["start"] < final["window"]["end"]


def test_partial_batch_failure_retries_from_the_reported_record(server, create_fn):
    rig = Rig(server.endpoint, create_fn, shards=1, env={"PARTIAL": "1"})
    for data in ["a", "b", "fail-once-c", "d"]:
        rig.put(data)
    rig.map(BatchSize=10, MaximumBatchingWindowInSeconds=1, FunctionResponseTypes=["ReportBatchItemFailures"])
    batches = rig.batches(until=lambda got: "d" in processed(got))
    # The first invocation reported c: a and b were checkpointed; c and d came again.
    assert processed(batches) == ["fail-once-c", "d"]


def test_filters_match_the_decoded_data(server, create_fn):
    rig = Rig(server.endpoint, create_fn, shards=1)
    rig.map(BatchSize=10, FilterCriteria={"Filters": [{"Pattern": json.dumps({"data": {"kind": ["keep"]}})}]})
    rig.put(json.dumps({"kind": "drop", "n": 1}))
    rig.put(json.dumps({"kind": "keep", "n": 2}))
    rig.put("not json")
    batches = rig.batches(until=lambda got: len(got) >= 1)
    assert [json.loads(d)["n"] for d in processed(batches)] == [2]


def test_validation_of_stream_knobs(server, py_fn):
    lam = aws_client("lambda", server.endpoint)
    arn = f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/whatever"
    for knobs in [{}, {"StartingPosition": "TRIM_HORIZON", "ParallelizationFactor": 11},
                  {"StartingPosition": "TRIM_HORIZON", "MaximumRecordAgeInSeconds": 30},
                  {"StartingPosition": "TRIM_HORIZON", "TumblingWindowInSeconds": 901}]:
        with pytest.raises(lam.exceptions.InvalidParameterValueException):
            lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=py_fn, **knobs)


def test_kill_9_mid_stream_loses_nothing(server_factory, create_fn):
    srv = server_factory()
    rig = Rig(srv.endpoint, create_fn, shards=2)
    entries = [{"Data": f"n{i}".encode(), "PartitionKey": str(uuid.uuid4())} for i in range(80)]
    rig.kinesis.put_records(StreamName=rig.stream, Records=entries)
    rig.map(BatchSize=4)
    early = rig.batches(until=lambda got: len(processed(got)) >= 8)
    srv.kill()
    srv.start()
    rig.sqs = aws_client("sqs", srv.endpoint, read_timeout=30)
    rig.out = rig.sqs.get_queue_url(QueueName=rig.out.rsplit("/", 1)[1])["QueueUrl"]
    late = rig.batches(until=lambda got: set(processed(early) + processed(got)) >= {f"n{i}" for i in range(80)},
                       wait=40)
    assert set(processed(early) + processed(late)) == {f"n{i}" for i in range(80)}


DDB_RECORDER = r'''
import json, os, boto3
sqs = boto3.client("sqs")

def handler(event, context):
    for record in event["Records"]:
        body = {"name": record["eventName"], "keys": record["dynamodb"]["Keys"],
                "new": record["dynamodb"].get("NewImage"), "source": record["eventSource"]}
        sqs.send_message(QueueUrl=os.environ["OUT"], MessageBody=json.dumps(body), MessageGroupId="g")
'''


def test_dynamodb_stream_invokes_the_function_in_order(server, create_fn):
    ddb = aws_client("dynamodb", server.endpoint)
    sqs = aws_client("sqs", server.endpoint, read_timeout=30)
    lam = aws_client("lambda", server.endpoint)
    table = unique_name("tbl")
    stream_arn = ddb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    out = sqs.create_queue(QueueName=unique_name("ddb") + ".fifo",
                           Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    name = create_fn("ddb-rec", {"app.py": DDB_RECORDER}, Timeout=30, Environment={"Variables": {"OUT": out}})
    mapping = lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=name,
                                              StartingPosition="TRIM_HORIZON", BatchSize=10)
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    ddb.put_item(TableName=table, Item={"id": {"S": "a"}, "n": {"N": "1"}})
    ddb.update_item(TableName=table, Key={"id": {"S": "a"}}, UpdateExpression="SET n = :two",
                    ExpressionAttributeValues={":two": {"N": "2"}})
    ddb.delete_item(TableName=table, Key={"id": {"S": "a"}})
    got = []
    deadline = time.monotonic() + 20
    while len(got) < 3 and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=out, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            got.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=out, ReceiptHandle=message["ReceiptHandle"])
    assert [g["name"] for g in got] == ["INSERT", "MODIFY", "REMOVE"]
    assert got[1]["new"] == {"id": {"S": "a"}, "n": {"N": "2"}} and got[0]["source"] == "aws:dynamodb"
