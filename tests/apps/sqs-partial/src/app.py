import os

import boto3

sqs = boto3.client("sqs")


def handler(event, context):
    failures = []
    for record in event["Records"]:
        if "fail" in record["body"]:
            failures.append({"itemIdentifier": record["messageId"]})
        else:
            sqs.send_message(QueueUrl=os.environ["RESULTS_URL"], MessageBody=record["body"])
    return {"batchItemFailures": failures}
