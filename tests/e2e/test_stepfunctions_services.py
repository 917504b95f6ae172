"""Step Functions end to end with the services it orchestrates: Lambda tasks with Retry and
Catch, SQS task tokens and heartbeats, DynamoDB, S3 (distributed Map, aws-sdk), EventBridge
rules that start executions, and execution logging to CloudWatch Logs."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from sfn_support import advance, finished, function, history, machine, run, sfn, types, virtual  # noqa: F401
from support import ROLE, aws_client, make_zip, unique_name, wait_until


def test_lambda_chain_with_retry_on_the_virtual_clock_and_catch(sfn, virtual, function):
    definition = {
        "StartAt": "Double",
        "States": {
            "Double": {
                "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": function, "Payload": {"n.$": "$.n"}},
                "ResultSelector": {"n.$": "$.Payload.n", "status.$": "$.StatusCode"},
                "ResultPath": "$.doubled", "Next": "Fails",
            },
            "Fails": {
                "Type": "Task", "Resource": function,
                "Parameters": {"fail": True, "why": "always"},
                "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 3600, "MaxAttempts": 1}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.caught", "Next": "Handled"}],
                "End": True,
            },
            "Handled": {"Type": "Pass", "End": True},
        },
    }
    arn = machine(sfn, definition)
    execution = sfn.start_execution(stateMachineArn=arn, input='{"n": 21}')["executionArn"]
    # The first attempt fails; the retry waits an hour of nimbus's clock.
    wait_until(lambda: types(history(sfn, execution)).count("LambdaFunctionFailed") == 1, timeout=30,
               what="the first failure")
    assert sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
    advance(virtual.endpoint, 3600)
    described = finished(sfn, execution)
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["doubled"] == {"n": 42, "status": 200}
    assert output["caught"]["Error"] == "Boom"
    assert json.loads(output["caught"]["Cause"])["errorMessage"] == "always"
    events = types(history(sfn, execution))
    assert events.count("LambdaFunctionScheduled") == 2
    assert ["TaskScheduled", "TaskStarted", "TaskSucceeded"] == [t for t in events if t.startswith("Task") and "State" not in t]


def test_wait_for_task_token_through_sqs(sfn, virtual):
    sqs = aws_client("sqs", virtual.endpoint)
    queue = sqs.create_queue(QueueName=unique_name("sfn-q"))["QueueUrl"]
    definition = {"StartAt": "Ask", "States": {"Ask": {
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token", "order.$": "$.order"}},
        "HeartbeatSeconds": 600, "End": True}}}
    arn = machine(sfn, definition)
    execution = sfn.start_execution(stateMachineArn=arn, input='{"order": 7}')["executionArn"]
    messages = wait_until(lambda: sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages"),
                          timeout=20, what="the task's message")
    body = json.loads(messages[0]["Body"])
    assert body["order"] == 7
    sfn.send_task_heartbeat(taskToken=body["token"])
    sfn.send_task_success(taskToken=body["token"], output='{"approved": true}')
    described = finished(sfn, execution)
    assert described["status"] == "SUCCEEDED" and json.loads(described["output"]) == {"approved": True}
    assert "TaskSubmitted" in types(history(sfn, execution))
    with pytest.raises(ClientError) as error:
        sfn.send_task_success(taskToken=body["token"], output="{}")
    assert error.value.response["Error"]["Code"] == "TaskTimedOut"
    with pytest.raises(sfn.exceptions.InvalidToken):
        sfn.send_task_failure(taskToken="nope", error="E")


def test_heartbeat_timeout_and_task_failure(sfn, virtual):
    sqs = aws_client("sqs", virtual.endpoint)
    queue = sqs.create_queue(QueueName=unique_name("sfn-hb"))["QueueUrl"]
    definition = {"StartAt": "Ask", "States": {"Ask": {
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": queue, "MessageBody.$": "$$.Task.Token"},
        "HeartbeatSeconds": 60, "End": True}}}
    arn = machine(sfn, definition)
    first = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    wait_until(lambda: "TaskSubmitted" in types(history(sfn, first)), what="the message")
    advance(virtual.endpoint, 61)
    described = finished(sfn, first)
    assert described["status"] == "FAILED" and described["error"] == "States.HeartbeatTimeout"
    assert "TaskTimedOut" in types(history(sfn, first))
    sqs.purge_queue(QueueUrl=queue)
    second = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    token = wait_until(lambda: sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages"),
                       timeout=20, what="the second message")[0]["Body"]
    sfn.send_task_failure(taskToken=token, error="Rejected", cause="by a human")
    described = finished(sfn, second)
    assert (described["status"], described["error"], described["cause"]) == ("FAILED", "Rejected", "by a human")


def test_dynamodb_integrations_and_their_errors(sfn, virtual):
    ddb = aws_client("dynamodb", virtual.endpoint)
    table = unique_name("sfn-t")
    ddb.create_table(TableName=table, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    key = {"id": {"S.$": "$.id"}}
    definition = {"StartAt": "Put", "States": {
        "Put": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem",
                "Parameters": {"TableName": table, "Item": {"id": {"S.$": "$.id"}, "n": {"N": "1"}}},
                "ResultPath": None, "Next": "Update"},
        "Update": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:updateItem",
                   "Parameters": {"TableName": table, "Key": key, "UpdateExpression": "SET n = n + :one",
                                  "ExpressionAttributeValues": {":one": {"N": "1"}}, "ReturnValues": "ALL_NEW"},
                   "ResultSelector": {"n.$": "$.Attributes.n.N"}, "ResultPath": "$.updated", "Next": "Get"},
        "Get": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:getItem",
                "Parameters": {"TableName": table, "Key": key}, "ResultPath": "$.got", "Next": "Again"},
        "Again": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem",
                  "Parameters": {"TableName": table, "Item": {"id": {"S.$": "$.id"}},
                                 "ConditionExpression": "attribute_not_exists(id)"},
                  "Catch": [{"ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"], "ResultPath": "$.conflict",
                             "Next": "Delete"}],
                  "Next": "Delete"},
        "Delete": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:dynamodb:deleteItem",
                   "Parameters": {"TableName": table, "Key": key}, "ResultPath": None, "Next": "Missing"},
        "Missing": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:dynamodb:getItem",
                    "Parameters": {"TableName": "no-such-table", "Key": key}, "End": True},
    }}
    described = run(sfn, definition, {"id": "a1"})
    assert described["status"] == "FAILED"
    assert described["error"] == "DynamoDb.ResourceNotFoundException"
    events = history(sfn, described["executionArn"])
    exited = [json.loads(e["stateExitedEventDetails"]["output"]) for e in events if e["type"] == "TaskStateExited"]
    assert exited[1]["updated"] == {"n": "2"}
    assert exited[2]["got"]["Item"] == {"id": {"S": "a1"}, "n": {"N": "2"}}
    assert exited[3]["conflict"]["Error"] == "DynamoDB.ConditionalCheckFailedException"
    assert "Item" not in ddb.get_item(TableName=table, Key={"id": {"S": "a1"}})


def test_logging_to_a_log_group(sfn, virtual):
    logs = aws_client("logs", virtual.endpoint)
    group = unique_name("/aws/vendedlogs/states")
    logs.create_log_group(logGroupName=group)
    group_arn = f"arn:aws:logs:us-east-1:000000000000:log-group:{group}:*"
    arn = machine(sfn, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                  loggingConfiguration={"level": "ALL", "includeExecutionData": True,
                                        "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": group_arn}}]})
    described = finished(sfn, sfn.start_execution(stateMachineArn=arn, input='{"k": 1}')["executionArn"])
    assert described["status"] == "SUCCEEDED"

    def logged():
        streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
        if not streams:
            return None
        events = logs.get_log_events(logGroupName=group, logStreamName=streams[0]["logStreamName"])["events"]
        return events if len(events) >= 4 else None

    records = [json.loads(e["message"]) for e in wait_until(logged, timeout=10, what="execution logs")]
    assert {r["type"] for r in records} >= {"ExecutionStarted", "PassStateEntered", "ExecutionSucceeded"}
    assert all(r["execution_arn"] == described["executionArn"] for r in records)


def test_eventbridge_rule_starts_executions(sfn, virtual):
    events = aws_client("events", virtual.endpoint)
    arn = machine(sfn, {"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": "$.detail", "End": True}}})
    rule = unique_name("sfn-rule")
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["bench.orders"]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "machine", "Arn": arn, "RoleArn": ROLE}])
    events.put_events(Entries=[{"Source": "bench.orders", "DetailType": "Order", "Detail": '{"order": 9}'}])
    listed = wait_until(lambda: sfn.list_executions(stateMachineArn=arn)["executions"], timeout=20,
                        what="the rule's execution")
    described = finished(sfn, listed[0]["executionArn"])
    assert described["status"] == "SUCCEEDED" and json.loads(described["output"]) == {"order": 9}


def test_lambda_wait_for_task_token_and_a_thousand_item_map(sfn, virtual):
    lam = aws_client("lambda", virtual.endpoint)
    name = unique_name("sfn-cb")
    code = (
        "import boto3, json, os\n"
        "def handler(event, context):\n"
        "    sfn = boto3.client('stepfunctions', endpoint_url=os.environ['AWS_ENDPOINT_URL'])\n"
        "    sfn.send_task_success(taskToken=event['token'], output=json.dumps({'size': len(event['items'])}))\n"
        "    return {}\n"
    )
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": make_zip({"app.py": code})}, Timeout=30)
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    definition = {"StartAt": "Many", "States": {
        "Many": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 10, "ResultPath": "$.items",
                 "ItemProcessor": {"StartAt": "Square", "States": {"Square": {
                     "Type": "Pass", "Parameters": {"v.$": "States.MathAdd($, 1)"}, "OutputPath": "$.v", "End": True}}},
                 "Next": "Callback"},
        "Callback": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                     "Parameters": {"FunctionName": name, "Payload": {"token.$": "$$.Task.Token", "items.$": "$.items"}},
                     "TimeoutSeconds": 120, "End": True}}}
    described = run(sfn, definition, {"items": list(range(1000))}, timeout=120)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == {"size": 1000}
    events = history(sfn, described["executionArn"])
    assert types(events).count("MapIterationSucceeded") == 1000


def test_distributed_map_over_s3(sfn, virtual):
    s3 = aws_client("s3", virtual.endpoint)
    bucket = unique_name("sfn-items")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="in/orders.csv", Body=b"id,amount\n1,10\n2,20\n3,bad\n4,40\n5,50\n")
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"logs/{i}.txt", Body=b"x" * (i + 1))
    processor = {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "Sum",
                 "States": {"Sum": {"Type": "Pass", "Parameters": {"count.$": "States.ArrayLength($.Items)"}, "End": True}}}
    checker = {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}, "StartAt": "Check",
               "States": {"Check": {"Type": "Choice", "Choices": [{"Variable": "$.amount", "StringEquals": "bad",
                                                                    "Next": "Reject"}], "Default": "Accept"},
                          "Reject": {"Type": "Fail", "Error": "BadAmount"},
                          "Accept": {"Type": "Pass", "End": True}}}
    definition = {"StartAt": "Batches", "States": {
        "Batches": {"Type": "Map", "MaxConcurrency": 2, "ItemProcessor": processor,
                    "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                                   "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
                                   "Parameters": {"Bucket": bucket, "Key": "in/orders.csv"}},
                    "ItemBatcher": {"MaxItemsPerBatch": 2}, "ResultPath": "$.batches", "Next": "Listed"},
        "Listed": {"Type": "Map", "ItemProcessor": {**processor, "StartAt": "Key", "States": {"Key": {
                       "Type": "Pass", "OutputPath": "$.Key", "End": True}}},
                   "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2",
                                  "Parameters": {"Bucket": bucket, "Prefix": "logs/"}},
                   "ResultPath": "$.keys", "Next": "Checked"},
        "Checked": {"Type": "Map", "ItemProcessor": checker, "ToleratedFailurePercentage": 25,
                    "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "CSV"},
                                   "Parameters": {"Bucket": bucket, "Key": "in/orders.csv"}},
                    "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                                     "Parameters": {"Bucket": bucket, "Prefix": "results"}},
                    "ResultPath": "$.written", "End": True}}}
    described = run(sfn, definition)
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["batches"] == [{"count": 2}, {"count": 2}, {"count": 1}]
    assert output["keys"] == ["logs/0.txt", "logs/1.txt", "logs/2.txt"]
    written = output["written"]["ResultWriterDetails"]
    manifest = json.loads(s3.get_object(Bucket=written["Bucket"], Key=written["Key"])["Body"].read())
    assert manifest["MapRunArn"] == output["written"]["MapRunArn"] and ":mapRun:" in manifest["MapRunArn"]
    failed = json.loads(s3.get_object(Bucket=bucket, Key=manifest["ResultFiles"]["FAILED"][0]["Key"])["Body"].read())
    assert [(f["Status"], f["Error"], json.loads(f["Input"])["id"]) for f in failed] == [("FAILED", "BadAmount", "3")]
    events = types(history(sfn, described["executionArn"]))
    assert events.count("MapRunStarted") == 3 and "MapIterationStarted" not in events
    # Over the tolerated share, the Map fails.
    strict = json.loads(json.dumps(definition))
    strict["States"]["Checked"]["ToleratedFailurePercentage"] = 10
    described = run(sfn, strict)
    assert described["status"] == "FAILED" and described["error"] == "States.ExceedToleratedFailureThreshold"


def test_aws_sdk_s3_and_error_names(sfn, virtual):
    s3 = aws_client("s3", virtual.endpoint)
    bucket = unique_name("sfn-sdk")
    s3.create_bucket(Bucket=bucket)
    definition = {"StartAt": "Put", "States": {
        "Put": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:putObject",
                "Parameters": {"Bucket": bucket, "Key": "doc.json", "Body.$": "$"}, "ResultPath": None, "Next": "Get"},
        "Get": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
                "Parameters": {"Bucket": bucket, "Key": "doc.json"},
                "ResultSelector": {"doc.$": "States.StringToJson($.Body)"}, "Next": "Missing"},
        "Missing": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
                    "Parameters": {"Bucket": bucket, "Key": "nope"},
                    "Catch": [{"ErrorEquals": ["S3.NoSuchKeyException"], "ResultPath": "$.missing", "Next": "Queue"}],
                    "End": True},
        "Queue": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
                  "Parameters": {"QueueUrl": f"{virtual.endpoint}/000000000000/no-such-queue", "MessageBody": "x"},
                  "End": True}}}
    described = run(sfn, definition, {"hello": "world"})
    assert described["status"] == "FAILED"
    assert described["error"] == "SQS.QueueDoesNotExistException", described
    exited = [json.loads(e["stateExitedEventDetails"]["output"]) for e in history(sfn, described["executionArn"])
              if e["type"] == "TaskStateExited"]
    assert exited[1]["doc"] == {"hello": "world"}
    assert exited[2]["missing"]["Error"] == "S3.NoSuchKeyException"
