import os
import urllib.parse

import boto3

s3 = boto3.client("s3")
VERSION = "v1"


def handler(event, context):
    for record in event["Records"]:
        bucket = record["s3"]["bucket"]["name"]
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        s3.put_object(Bucket=os.environ["OUTPUT_BUCKET"], Key=key, Body=f"{VERSION}:{body.upper()}".encode())
    return {"processed": len(event["Records"])}
