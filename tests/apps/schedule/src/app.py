import json
import os

import boto3

sqs = boto3.client("sqs")


def handler(event, context):
    sqs.send_message(QueueUrl=os.environ["TICKS_URL"], MessageBody=json.dumps(event))
