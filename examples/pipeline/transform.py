"""The pipeline's function: for each new CSV object, write an upper-cased copy to the curated
bucket and a one-line summary to the queue. boto3 inside the function talks to nimbus through
AWS_ENDPOINT_URL, which nimbus sets for every function."""

import json
import os
import urllib.parse

import boto3

s3 = boto3.client("s3")
sqs = boto3.client("sqs")


def handler(event, context):
    done = []
    for record in event["Records"]:
        bucket = record["s3"]["bucket"]["name"]
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        rows = [line for line in text.splitlines() if line.strip()]
        s3.put_object(Bucket=os.environ["OUTPUT_BUCKET"], Key=key, Body=text.upper().encode())
        summary = {"source": f"s3://{bucket}/{key}", "rows": len(rows), "bytes": len(text)}
        sqs.send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody=json.dumps(summary))
        done.append(summary)
    return done
