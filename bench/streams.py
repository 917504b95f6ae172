#!/usr/bin/env python3
"""Streams, events and schedules with the clients users have (boto3): Kinesis PutRecord → handler
running (budget ≤ 10 ms with no batching window), records/s end to end through one shard and
through 8, EventBridge PutEvents → handler running, and 10,000 Scheduler schedules: nimbus's
memory with them loaded and how late the next one fires.

    cargo build --release --bin nimbus && python3 bench/streams.py [--rounds 100]

Starts its own nimbus on a free port with a temporary data directory and stops it at the end.
"""

import argparse
import datetime
import io
import json
import os
import time
import zipfile

import boto3
from botocore.config import Config

from services import REPO, p, start_nimbus, stop_nimbus

REPORTER = """
import json, os, time, boto3
sqs = boto3.client("sqs")
def handler(event, context):
    started = time.time()
    records = event.get("Records")
    body = {"started": started, "count": len(records) if records is not None else 1}
    sqs.send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody=json.dumps(body))
"""


def function_zip(code: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("app.py")
        info.external_attr = 0o100644 << 16
        archive.writestr(info, code)
    return buffer.getvalue()


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--nimbus", default=os.path.join(REPO, "target/release/nimbus"))
    args = parser.parse_args()
    server, endpoint, data = start_nimbus(args.nimbus, [])
    try:
        settings = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x", config=Config(retries={"total_max_attempts": 1}))
        kinesis, sqs, lam, events, scheduler = (
            boto3.client(n, **settings) for n in ("kinesis", "sqs", "lambda", "events", "scheduler"))
        rows = []
        reports = sqs.create_queue(QueueName="reports")["QueueUrl"]
        reports_arn = sqs.get_queue_attributes(QueueUrl=reports, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        function_arn = lam.create_function(
            FunctionName="reporter", Runtime="python3.12", Handler="app.handler",
            Role="arn:aws:iam::000000000000:role/bench", Code={"ZipFile": function_zip(REPORTER)},
            Environment={"Variables": {"QUEUE_URL": reports}})["FunctionArn"]

        def report(wait=10):
            message = sqs.receive_message(QueueUrl=reports, WaitTimeSeconds=wait)["Messages"][0]
            sqs.delete_message(QueueUrl=reports, ReceiptHandle=message["ReceiptHandle"])
            return json.loads(message["Body"])

        # PutRecord → handler running, one record at a time.
        kinesis.create_stream(StreamName="one", ShardCount=1)
        mapping = lam.create_event_source_mapping(EventSourceArn="arn:aws:kinesis:us-east-1:000000000000:stream/one",
                                                  FunctionName="reporter", StartingPosition="LATEST",
                                                  BatchSize=1)["UUID"]
        time.sleep(1)
        latencies = []
        for i in range(args.rounds + 10):
            sent = time.time()
            kinesis.put_record(StreamName="one", Data=b"x", PartitionKey="k")
            started = report()["started"]
            if i >= 10:
                latencies.append(started - sent)
        rows.append(("Kinesis PutRecord → handler running, warm, p50 (budget ≤ 10 ms)", p(latencies, 0.5), None))
        rows.append(("Kinesis PutRecord → handler running, warm, p90", p(latencies, 0.9), None))
        lam.delete_event_source_mapping(UUID=mapping)

        # Records/s end to end: PutRecords of 500 into 1 and 8 shards, batches of 100.
        for shards in (1, 8):
            stream = f"tput{shards}"
            kinesis.create_stream(StreamName=stream, ShardCount=shards)
            mapping = lam.create_event_source_mapping(
                EventSourceArn=f"arn:aws:kinesis:us-east-1:000000000000:stream/{stream}", FunctionName="reporter",
                StartingPosition="LATEST", BatchSize=100)["UUID"]
            time.sleep(1)

            def through(total):
                for chunk in range(0, total, 500):
                    kinesis.put_records(StreamName=stream, Records=[
                        {"Data": b"x" * 100, "PartitionKey": f"k{chunk + i}"} for i in range(500)])
                counted = 0
                while counted < total:
                    counted += report(wait=20)["count"]

            # The first round starts an environment per shard (boto3's import is a cold start's
            # bulk): the figure is the warm round after it.
            through(2_000)
            total, start = 10_000, time.perf_counter()
            through(total)
            rate = total / (time.perf_counter() - start)
            rows.append((f"Kinesis records/s end to end, {shards} shard(s), batches of 100", None, rate))
            lam.delete_event_source_mapping(UUID=mapping)

        # PutEvents → handler running (a rule with the function as target).
        events.put_rule(Name="bench", EventPattern='{"source": ["bench"]}')
        events.put_targets(Rule="bench", Targets=[{"Id": "fn", "Arn": function_arn}])
        latencies = []
        for i in range(args.rounds + 10):
            sent = time.time()
            events.put_events(Entries=[{"Source": "bench", "DetailType": "d", "Detail": "{}"}])
            started = report()["started"]
            if i >= 10:
                latencies.append(started - sent)
        rows.append(("EventBridge PutEvents → handler running, warm, p50", p(latencies, 0.5), None))
        events.put_targets(Rule="bench", Targets=[{"Id": "q", "Arn": reports_arn}])
        events.remove_targets(Rule="bench", Ids=["fn"])
        latencies = []
        for i in range(args.rounds):
            sent = time.time()
            events.put_events(Entries=[{"Source": "bench", "DetailType": "d", "Detail": "{}"}])
            report()
            latencies.append(time.time() - sent)
        rows.append(("EventBridge PutEvents → SQS target → received, p50", p(latencies, 0.5), None))

        # 10,000 schedules: memory, and how late one due among them fires.
        before = rss_mib(server.pid)
        target = {"Arn": reports_arn, "RoleArn": "arn:aws:iam::000000000000:role/bench", "Input": "{}"}
        start = time.perf_counter()
        for i in range(args.schedules):
            scheduler.create_schedule(Name=f"s{i}", ScheduleExpression=f"cron({i % 60} {i % 24} * * ? *)",
                                      ScheduleExpressionTimezone="Europe/Paris",
                                      FlexibleTimeWindow={"Mode": "OFF"}, Target=target)
        loaded = time.perf_counter() - start
        rows.append((f"{args.schedules:,} CreateSchedule calls (s, one client)", loaded * 1000, None))
        rows.append((f"nimbus RSS growth with {args.schedules:,} schedules (MiB)", rss_mib(server.pid) - before, None))
        late = []
        for i in range(5):
            due = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(seconds=2)
            scheduler.create_schedule(Name=f"soon{i}", ScheduleExpression=f"at({due:%Y-%m-%dT%H:%M:%S})",
                                      FlexibleTimeWindow={"Mode": "OFF"}, Target=target)
            report()
            late.append(time.time() - due.timestamp())
        rows.append((f"at() among {args.schedules:,} schedules → received, lateness p50", p(late, 0.5), None))
        print("| figure | ms | per second |\n|---|---:|---:|")
        for label, ms, rate in rows:
            print(f"| {label} | {'' if ms is None else f'{ms:.2f}'} | {'' if rate is None else f'{rate:,.0f}'} |")
    finally:
        stop_nimbus(server, data)


if __name__ == "__main__":
    main()
