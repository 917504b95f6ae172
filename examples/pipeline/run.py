#!/usr/bin/env python3
"""S3 > Lambda > S3 + SQS on nimbus, wired with boto3 in one script.

Start nimbus (`cargo run --release -- up`), then run `python3 examples/pipeline/run.py`.
It creates two buckets, a queue and the `transform` function, connects the raw bucket's
ObjectCreated events to the function, drops a CSV file in, and prints the transformed copy and
the summary message as they appear. Pass an endpoint as the first argument to use another nimbus.
"""

import io
import json
import os
import sys
import time
import zipfile

import boto3

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
SUFFIX = sys.argv[2] if len(sys.argv) > 2 else ""
settings = dict(endpoint_url=ENDPOINT, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
s3, sqs, lam = (boto3.client(service, **settings) for service in ("s3", "sqs", "lambda"))
raw, curated, function = f"raw{SUFFIX}", f"curated{SUFFIX}", f"transform{SUFFIX}"


def package() -> bytes:
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "transform.py")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("transform.py")
        info.external_attr = 0o100644 << 16  # readable by the sandbox's user, as AWS requires
        archive.writestr(info, open(source).read())
    return buffer.getvalue()


# Safe to run again: what exists already is reused (the function gets the current code).
for bucket in (raw, curated):
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
queue_url = sqs.create_queue(QueueName=f"summaries{SUFFIX}")["QueueUrl"]
try:
    arn = lam.create_function(
        FunctionName=function, Runtime="python3.12", Handler="transform.handler", Timeout=30,
        Role="arn:aws:iam::000000000000:role/pipeline", Code={"ZipFile": package()},
        Environment={"Variables": {"OUTPUT_BUCKET": curated, "QUEUE_URL": queue_url}},
    )["FunctionArn"]
    lam.add_permission(FunctionName=function, StatementId="s3-raw", Action="lambda:InvokeFunction",
                       Principal="s3.amazonaws.com", SourceArn=f"arn:aws:s3:::{raw}")
except lam.exceptions.ResourceConflictException:
    arn = lam.update_function_code(FunctionName=function, ZipFile=package())["FunctionArn"]
    lam.get_waiter("function_updated_v2").wait(FunctionName=function)
lam.get_waiter("function_active_v2").wait(FunctionName=function)
s3.put_bucket_notification_configuration(Bucket=raw, NotificationConfiguration={
    "LambdaFunctionConfigurations": [{
        "LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": ".csv"}]}},
    }],
})

s3.put_object(Bucket=raw, Key="orders/2026-11-26.csv", Body=b"id,item\n1,apples\n2,pears\n")
print(f"dropped s3://{raw}/orders/2026-11-26.csv")

deadline = time.time() + 60
while True:
    try:
        body = s3.get_object(Bucket=curated, Key="orders/2026-11-26.csv")["Body"].read().decode()
        break
    except s3.exceptions.NoSuchKey:
        if time.time() > deadline:
            sys.exit("the transformed object did not appear within a minute")
        time.sleep(0.2)
print(f"s3://{curated}/orders/2026-11-26.csv:\n{body}")
messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=20).get("Messages", [])
if not messages:
    sys.exit("no summary message arrived")
print("queue message:", json.loads(messages[0]["Body"]))
sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
