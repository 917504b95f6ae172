#!/usr/bin/env python3
"""S3 and SQS figures with the same client users have (boto3): PutObject/GetObject p50 for 1 KiB
and 1 MiB, SQS send → receive latency and messages/s, and S3 put → handler running.

    cargo build --release --bin nimbus && python3 bench/services.py [--rounds 300]

Starts its own nimbus on a free port with a temporary data directory and stops it at the end.
boto3's own overhead is part of every figure, as it is for users (and for the fakecloud figures
quoted in the issue); `client floor` shows what boto3 costs against a trivial nimbus endpoint.
"""

import argparse
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
import zipfile

import boto3
from botocore.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANDLER = """
import json, os, time, boto3
sqs = boto3.client("sqs")
def handler(event, context):
    started = time.time()
    sqs.send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody=json.dumps({"started": started, "key": event["Records"][0]["s3"]["object"]["key"]}))
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def p(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


def timed(fn, rounds):
    for _ in range(20):
        fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def start_nimbus(binary, extra_args):
    """A nimbus on a free port with a temporary data directory: (process, endpoint, data dir)."""
    data = tempfile.mkdtemp(prefix="nimbus-bench-")
    port = free_port()
    server = subprocess.Popen([binary, "up", "--port", str(port), "--data-dir", data, "--quiet", *extra_args],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(500):
        try:
            urllib.request.urlopen(endpoint + "/_nimbus/health", timeout=1)
            break
        except OSError:
            time.sleep(0.01)
    return server, endpoint, data


def stop_nimbus(server, data):
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
    shutil.rmtree(data, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--nimbus", default=os.path.join(REPO, "target/release/nimbus"))
    parser.add_argument("--database", help="postgres://… for nimbus's state (default: SQLite)")
    args = parser.parse_args()
    database = ["--database", args.database] if args.database else []
    server, endpoint, data = start_nimbus(args.nimbus, database)
    try:
        settings = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x", config=Config(retries={"total_max_attempts": 1}))
        s3, sqs, lam = (boto3.client(n, **settings) for n in ("s3", "sqs", "lambda"))
        rows = []
        rows.append(("client floor: ListBuckets p50", p(timed(lambda: s3.list_buckets(), args.rounds), 0.5), None))
        s3.create_bucket(Bucket="bench")
        for label, size in (("1 KiB", 1024), ("1 MiB", 1 << 20)):
            body = os.urandom(size)
            put = timed(lambda: s3.put_object(Bucket="bench", Key=f"o-{size}", Body=body), args.rounds)
            get = timed(lambda: s3.get_object(Bucket="bench", Key=f"o-{size}")["Body"].read(), args.rounds)
            rows.append((f"S3 PutObject {label} p50", p(put, 0.5), None))
            rows.append((f"S3 GetObject {label} p50", p(get, 0.5), None))
        url = sqs.create_queue(QueueName="bench")["QueueUrl"]
        send = timed(lambda: sqs.send_message(QueueUrl=url, MessageBody="x" * 100), args.rounds)
        rows.append(("SQS SendMessage p50", p(send, 0.5), None))
        sqs.purge_queue(QueueUrl=url)

        def round_trip():
            sqs.send_message(QueueUrl=url, MessageBody="ping")
            message = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"][0]
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

        rows.append(("SQS send → receive → delete p50", p(timed(round_trip, args.rounds), 0.5), None))
        count, start = 2000, time.perf_counter()
        for i in range(0, count, 10):
            sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(j), "MessageBody": "m"} for j in range(10)])
        received = 0
        while received < count:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if messages:
                sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(k), "ReceiptHandle": m["ReceiptHandle"]}
                                                                for k, m in enumerate(messages)])
            received += len(messages)
        rate = count / (time.perf_counter() - start)
        rows.append(("SQS messages/s (batches of 10, one client, sent and consumed)", None, rate))

        # DynamoDB: GetItem and PutItem over the same client's floor (DescribeLimits answers
        # from memory), the budget's "over the boto3 floor".
        ddb = boto3.client("dynamodb", **settings)
        ddb.create_table(TableName="bench", BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
        item = {"id": {"S": "k"}, "n": {"N": "1"}, "payload": {"S": "x" * 200}}
        floor = p(timed(lambda: ddb.describe_limits(), args.rounds), 0.5)
        put = p(timed(lambda: ddb.put_item(TableName="bench", Item=item), args.rounds), 0.5)
        get = p(timed(lambda: ddb.get_item(TableName="bench", Key={"id": {"S": "k"}}), args.rounds), 0.5)
        rows.append(("DynamoDB client floor: DescribeLimits p50", floor, None))
        rows.append(("DynamoDB PutItem p50 over the floor (budget ≤ 0.5 ms)", put - floor, None))
        rows.append(("DynamoDB GetItem p50 over the floor (budget ≤ 0.5 ms)", get - floor, None))

        # S3 put → handler running: the handler reports its start time through a queue.
        reports = sqs.create_queue(QueueName="reports")["QueueUrl"]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            info = zipfile.ZipInfo("app.py")
            info.external_attr = 0o100644 << 16
            archive.writestr(info, HANDLER)
        arn = lam.create_function(FunctionName="on-put", Runtime="python3.12", Handler="app.handler",
                                  Role="arn:aws:iam::000000000000:role/bench", Code={"ZipFile": buffer.getvalue()},
                                  Environment={"Variables": {"QUEUE_URL": reports}})["FunctionArn"]
        s3.create_bucket(Bucket="trigger")
        s3.put_bucket_notification_configuration(Bucket="trigger", NotificationConfiguration={
            "LambdaFunctionConfigurations": [{"LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
        latencies = []
        for i in range(60):
            key = f"k{i}"
            sent = time.time()
            s3.put_object(Bucket="trigger", Key=key, Body=b"x")
            report = json.loads(sqs.receive_message(QueueUrl=reports, WaitTimeSeconds=10)["Messages"][0]["Body"])
            if i >= 10:  # the first ones start the environment
                latencies.append(report["started"] - sent)
            time.sleep(0.02)
        rows.append(("S3 put → handler running, warm, p50 (budget ≤ 5 ms)", p(latencies, 0.5), None))
        rows.append(("S3 put → handler running, warm, p90", p(latencies, 0.9), None))
        print("| figure | ms | per second |\n|---|---:|---:|")
        for label, ms, rate in rows:
            print(f"| {label} | {'' if ms is None else f'{ms:.2f}'} | {'' if rate is None else f'{rate:,.0f}'} |")
    finally:
        stop_nimbus(server, data)


if __name__ == "__main__":
    main()
