import json


def handler(event, context):
    params = event.get("pathParameters") or {}
    body = event.get("body")
    name = params.get("name") or (json.loads(body)["name"] if body else "nobody")
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps({"hello": name})}
