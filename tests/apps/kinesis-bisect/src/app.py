import base64
import os

import boto3

sqs = boto3.client("sqs")


def handler(event, context):
    data = [base64.b64decode(r["kinesis"]["data"]).decode() for r in event["Records"]]
    if "poison" in data:
        raise ValueError("poison record in the batch")
    for item in data:
        sqs.send_message(QueueUrl=os.environ["RESULTS_URL"], MessageBody=item)
