"""Step Functions end to end: state machines driving Lambda, SQS and DynamoDB, the States
Language's flow states, Wait on nimbus's virtual clock, task tokens, EXPRESS sync executions,
history shapes, AWS's definition errors, and an execution that survives kill -9 mid-Wait."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
from botocore.exceptions import ClientError

from support import ROLE, aws_cli_env, aws_client, unique_name, wait_until

HANDLER = r'''
class Boom(Exception):
    pass

def handler(event, context):
    if event.get("fail"):
        raise Boom(event.get("why", "boom"))
    return {"n": event.get("n", 0) * 2}
'''


@pytest.fixture(scope="module")
def virtual(server_factory):
    """A nimbus whose clock the tests move forward."""
    return server_factory(extra_args=["--clock", "virtual"])


def sfn_client(endpoint):
    # StartSyncExecution's model puts `sync-` before the host; nimbus routes by X-Amz-Target on
    # any host, and a bare IP cannot take the prefix, so it is switched off.
    return aws_client("stepfunctions", endpoint, inject_host_prefix=False)


@pytest.fixture(scope="module")
def sfn(virtual):
    return sfn_client(virtual.endpoint)


@pytest.fixture(scope="module")
def function(virtual):
    from support import make_zip

    lam = aws_client("lambda", virtual.endpoint)
    name = unique_name("sfn-fn")
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": make_zip({"app.py": HANDLER})}, Timeout=10)
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]


def advance(endpoint: str, seconds: float) -> None:
    request = urllib.request.Request(f"{endpoint}/_nimbus/clock/advance?seconds={seconds}", method="POST")
    urllib.request.urlopen(request).read()


def machine(sfn, definition: dict, kind: str = "STANDARD", **kwargs) -> str:
    return sfn.create_state_machine(name=unique_name("sm"), definition=json.dumps(definition), roleArn=ROLE,
                                    type=kind, **kwargs)["stateMachineArn"]


def finished(sfn, execution: str, timeout: float = 30) -> dict:
    def done():
        described = sfn.describe_execution(executionArn=execution)
        return described if described["status"] != "RUNNING" else None

    return wait_until(done, timeout=timeout, interval=0.05, what=f"{execution} to finish")


def run(sfn, definition: dict, payload=None, timeout: float = 30) -> dict:
    arn = machine(sfn, definition)
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload or {}))["executionArn"]
    return finished(sfn, execution, timeout)


def history(sfn, execution: str, **kwargs) -> list[dict]:
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution, **kwargs)
    return [event for page in pages for event in page["events"]]


def types(events) -> list[str]:
    return [e["type"] for e in events]


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


def test_choice_parallel_map_and_intrinsics(sfn):
    definition = {
        "StartAt": "Prepare",
        "States": {
            "Prepare": {
                "Type": "Pass",
                "Parameters": {
                    "items.$": "States.ArrayRange(1, 100, 1)",
                    "greeting.$": "States.Format('Hello, {}!', $.who)",
                    "hash.$": "States.Hash($.who, 'SHA-256')",
                    "execution.$": "$$.Execution.Name",
                    "kind": "go",
                },
                "Next": "Route",
            },
            "Route": {
                "Type": "Choice",
                "Choices": [
                    {"And": [{"Variable": "$.kind", "StringEquals": "go"},
                             {"Variable": "$.greeting", "StringMatches": "Hello, *!"}], "Next": "Fan"},
                ],
                "Default": "Bad",
            },
            "Fan": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "Squares", "States": {"Squares": {
                        "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 10,
                        "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
                        "ItemProcessor": {"StartAt": "Sum", "States": {"Sum": {
                            "Type": "Pass", "Parameters": {"s.$": "States.MathAdd($.v, $.i)"}, "OutputPath": "$.s",
                            "End": True}}},
                        "End": True}}},
                    {"StartAt": "Fails", "States": {"Fails": {"Type": "Fail", "Error": "Branch.Failed", "Cause": "no"}}},
                ],
                "Catch": [{"ErrorEquals": ["Branch.Failed"], "ResultPath": "$.error", "Next": "Again"}],
                "Next": "Bad",
            },
            "Again": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "Count", "States": {"Count": {
                        "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 10,
                        "ItemProcessor": {"StartAt": "Id", "States": {"Id": {"Type": "Pass", "End": True}}},
                        "End": True}}},
                    {"StartAt": "Const", "States": {"Const": {"Type": "Pass", "Result": "b", "End": True}}},
                ],
                "ResultSelector": {"total.$": "States.ArrayLength($[0])", "second.$": "$[1]"},
                "ResultPath": "$.parallel",
                "Next": "Done",
            },
            "Done": {"Type": "Succeed"},
            "Bad": {"Type": "Fail", "Error": "Unexpected"},
        },
    }
    described = run(sfn, definition, {"who": "World"})
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["greeting"] == "Hello, World!"
    assert output["hash"] == "78ae647dc5544d227130a0682a51e30bc7777fbb6d8a8f17007463a3ecd1d524"
    assert output["execution"] == described["name"]
    assert output["error"] == {"Error": "Branch.Failed", "Cause": "no"}
    assert output["parallel"] == {"total": 100, "second": "b"}


def test_wait_follows_the_virtual_clock(sfn, virtual):
    definition = {"StartAt": "Sleep", "States": {
        "Sleep": {"Type": "Wait", "SecondsPath": "$.seconds", "Next": "Done"},
        "Done": {"Type": "Pass", "Result": "woke", "End": True}}}
    arn = machine(sfn, definition)
    execution = sfn.start_execution(stateMachineArn=arn, input='{"seconds": 86400}')["executionArn"]
    wait_until(lambda: "WaitStateEntered" in types(history(sfn, execution)), what="the Wait")
    advance(virtual.endpoint, 3600)
    assert sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
    advance(virtual.endpoint, 86400)
    described = finished(sfn, execution)
    assert described["status"] == "SUCCEEDED" and described["output"] == '"woke"'


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


def test_express_start_sync_execution(sfn, function):
    definition = {"StartAt": "One", "States": {
        "One": {"Type": "Task", "Resource": function, "Next": "Two"},
        "Two": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "OutputPath": "$.Payload",
                "Parameters": {"FunctionName": function, "Payload.$": "$"}, "End": True}}}
    arn = machine(sfn, definition, kind="EXPRESS")
    result = sfn.start_sync_execution(stateMachineArn=arn, input='{"n": 3}')
    assert result["status"] == "SUCCEEDED" and json.loads(result["output"]) == {"n": 12}
    assert ":express:" in result["executionArn"] and result["billingDetails"]["billedDurationInMilliseconds"] >= 100
    failed = sfn.start_sync_execution(stateMachineArn=arn, input='{"fail": true, "why": "x"}')
    assert failed["status"] == "FAILED" and failed["error"] == "Boom"
    with pytest.raises(sfn.exceptions.StateMachineTypeNotSupported):
        sfn.list_executions(stateMachineArn=arn)
    standard = machine(sfn, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    with pytest.raises(sfn.exceptions.StateMachineTypeNotSupported):
        sfn.start_sync_execution(stateMachineArn=standard)


def test_history_shapes_and_listing(sfn):
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"a": 1}, "Next": "F"},
                                             "F": {"Type": "Fail", "Error": "Nope", "Cause": "because"}}}
    described = run(sfn, definition, {"x": 1})
    assert (described["status"], described["error"], described["cause"]) == ("FAILED", "Nope", "because")
    events = history(sfn, described["executionArn"])
    assert types(events) == ["ExecutionStarted", "PassStateEntered", "PassStateExited", "FailStateEntered",
                             "ExecutionFailed"]
    assert [e["id"] for e in events] == [1, 2, 3, 4, 5]
    assert [e["previousEventId"] for e in events] == [0, 1, 2, 3, 4]
    assert events[0]["executionStartedEventDetails"]["input"] == '{"x":1}'
    assert events[0]["executionStartedEventDetails"]["roleArn"] == ROLE
    assert events[1]["stateEnteredEventDetails"] == {"name": "P", "input": '{"x":1}', "inputDetails": {"truncated": False}}
    assert events[2]["stateExitedEventDetails"]["output"] == '{"a":1}'
    assert events[4]["executionFailedEventDetails"] == {"error": "Nope", "cause": "because"}
    reverse = history(sfn, described["executionArn"], reverseOrder=True, includeExecutionData=False)
    assert [e["id"] for e in reverse] == [5, 4, 3, 2, 1]
    assert "input" not in reverse[-1]["executionStartedEventDetails"]
    page = sfn.get_execution_history(executionArn=described["executionArn"], maxResults=2)
    assert len(page["events"]) == 2 and page["nextToken"]
    machine_arn = described["stateMachineArn"]
    for _ in range(2):
        sfn.start_execution(stateMachineArn=machine_arn)
    listed = sfn.list_executions(stateMachineArn=machine_arn, statusFilter="FAILED", maxResults=2)
    assert len(listed["executions"]) == 2
    wait_until(lambda: len(sfn.list_executions(stateMachineArn=machine_arn, statusFilter="FAILED")["executions"]) == 3,
               what="three failed executions")
    for_execution = sfn.describe_state_machine_for_execution(executionArn=described["executionArn"])
    assert json.loads(for_execution["definition"]) == definition


def test_definition_errors_and_start_rules(sfn):
    cases = [
        ({"States": {}}, "SCHEMA_VALIDATION_FAILED: These fields are required: [StartAt] at /"),
        ({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "C": {"Type": "Succeed"}}},
         "MISSING_TRANSITION_TARGET: Missing 'Next' target: B at /States/A/Next, "
         "MISSING_TRANSITION_TARGET: State \"C\" is not reachable. at /States/C"),
        ({"StartAt": "X", "States": {"A": {"Type": "Pass", "End": True}}},
         "MISSING_TRANSITION_TARGET: Missing 'StartAt' target: X at /StartAt"),
    ]
    for definition, message in cases:
        with pytest.raises(sfn.exceptions.InvalidDefinition) as error:
            machine(sfn, definition)
        assert error.value.response["Error"]["Message"] == f"Invalid State Machine Definition: '{message}'"
    with pytest.raises(sfn.exceptions.InvalidDefinition) as error:
        sfn.create_state_machine(name=unique_name("sm"), definition="{not json", roleArn=ROLE)
    assert "INVALID_JSON_DESCRIPTION" in error.value.response["Error"]["Message"]
    with pytest.raises(sfn.exceptions.InvalidName):
        sfn.create_state_machine(name="has space", definition='{"StartAt":"A","States":{"A":{"Type":"Succeed"}}}', roleArn=ROLE)
    arn = machine(sfn, {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 99999, "End": True}}})
    first = sfn.start_execution(stateMachineArn=arn, name="once", input='{"a": 1}')
    again = sfn.start_execution(stateMachineArn=arn, name="once", input='{"a": 1}')
    assert again["executionArn"] == first["executionArn"]
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(stateMachineArn=arn, name="once", input='{"a": 2}')
    with pytest.raises(sfn.exceptions.InvalidExecutionInput):
        sfn.start_execution(stateMachineArn=arn, input="{")
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.start_execution(stateMachineArn=arn + "-missing")
    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
        sfn.describe_execution(executionArn=first["executionArn"] + "x")
    stopped = sfn.stop_execution(executionArn=first["executionArn"], error="Halt", cause="test")
    assert stopped["stopDate"]
    described = sfn.describe_execution(executionArn=first["executionArn"])
    assert (described["status"], described["error"]) == ("ABORTED", "Halt")
    assert types(history(sfn, first["executionArn"]))[-1] == "ExecutionAborted"


def test_versions_aliases_tags_and_nested_executions(sfn):
    child = machine(sfn, {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "v1", "End": True}}})
    v1 = sfn.publish_state_machine_version(stateMachineArn=child)["stateMachineVersionArn"]
    assert v1 == child + ":1"
    updated = sfn.update_state_machine(stateMachineArn=child, publish=True,
                                       definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "v2", "End": True}}}))
    assert updated["stateMachineVersionArn"] == child + ":2"
    alias = sfn.create_state_machine_alias(name="live", routingConfiguration=[{"stateMachineVersionArn": v1, "weight": 100}])
    parent = machine(sfn, {"StartAt": "Child", "States": {"Child": {
        "Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
        "Parameters": {"StateMachineArn": alias["stateMachineAliasArn"], "Input": {"from": "parent"}},
        "OutputPath": "$.Output", "End": True}}})
    described = finished(sfn, sfn.start_execution(stateMachineArn=parent)["executionArn"])
    assert described["status"] == "SUCCEEDED" and described["output"] == '"v1"'
    versions = sfn.list_state_machine_versions(stateMachineArn=child)["stateMachineVersions"]
    assert [v["stateMachineVersionArn"] for v in versions] == [child + ":2", child + ":1"]
    sfn.tag_resource(resourceArn=child, tags=[{"key": "team", "value": "data"}])
    assert sfn.list_tags_for_resource(resourceArn=child)["tags"] == [{"key": "team", "value": "data"}]
    sfn.delete_state_machine(stateMachineArn=child)
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.describe_state_machine(stateMachineArn=child)


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


def test_aws_cli(virtual, tmp_path):
    env = aws_cli_env(virtual.endpoint, tmp_path)
    env["AWS_DISABLE_HOST_PREFIX_INJECTION"] = "true"
    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 5, "End": True}}})
    name = unique_name("cli")

    def cli(*args):
        out = subprocess.run(["aws", "stepfunctions", *args, "--output", "json"], env=env, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    arn = cli("create-state-machine", "--name", name, "--definition", definition, "--role-arn", ROLE,
              "--type", "EXPRESS")["stateMachineArn"]
    assert cli("start-sync-execution", "--state-machine-arn", arn)["output"] == "5"
    assert name in [m["name"] for m in cli("list-state-machines")["stateMachines"]]


def test_kill_mid_wait_resumes_after_restart(server_factory):
    srv = server_factory(extra_args=["--clock", "virtual"])
    sfn = sfn_client(srv.endpoint)
    arn = machine(sfn, {"StartAt": "Before", "States": {
        "Before": {"Type": "Pass", "Result": {"step": 1}, "Next": "Sleep"},
        "Sleep": {"Type": "Wait", "Seconds": 3600, "Next": "After"},
        "After": {"Type": "Pass", "Parameters": {"step.$": "States.MathAdd($.step, 1)"}, "End": True}}})
    execution = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    sqs = aws_client("sqs", srv.endpoint)
    queue = sqs.create_queue(QueueName="callbacks")["QueueUrl"]
    waiting = machine(sfn, {"StartAt": "Ask", "States": {"Ask": {
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": queue, "MessageBody.$": "$$.Task.Token"}, "End": True}}})
    asked = sfn.start_execution(stateMachineArn=waiting)["executionArn"]
    wait_until(lambda: "WaitStateEntered" in types(history(sfn, execution)), what="the Wait")
    wait_until(lambda: "TaskSubmitted" in types(history(sfn, asked)), what="the task token's message")
    srv.kill()
    srv.start()
    sfn = sfn_client(srv.endpoint)
    assert sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
    advance(srv.endpoint, 3600)
    described = finished(sfn, execution)
    assert described["status"] == "SUCCEEDED" and json.loads(described["output"]) == {"step": 2}
    events = history(sfn, execution)
    assert types(events).count("WaitStateEntered") == 1
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    # The task waits for the same token after the restart; its message was sent once.
    sqs = aws_client("sqs", srv.endpoint)
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    assert len(messages) == 1
    sfn.send_task_success(taskToken=messages[0]["Body"], output='"after restart"')
    described = finished(sfn, asked)
    assert described["status"] == "SUCCEEDED" and described["output"] == '"after restart"'
    assert types(history(sfn, asked)).count("TaskSubmitted") == 1


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
    from support import make_zip

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


def test_redrive_continues_from_the_failed_state(sfn, function):
    definition = {"StartAt": "First", "States": {
        "First": {"Type": "Pass", "Result": {"n": 5}, "Next": "Work"},
        "Work": {"Type": "Task", "Resource": function,
                 "Parameters": {"n.$": "$.n", "fail.$": "States.ArrayContains(States.Array(0), $$.Execution.RedriveCount)"},
                 "End": True}}}
    described = run(sfn, definition)
    assert described["status"] == "FAILED" and described["redriveStatus"] == "REDRIVABLE"
    with pytest.raises(sfn.exceptions.ExecutionNotRedrivable):
        sfn.redrive_execution(executionArn=run(sfn, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})["executionArn"])
    sfn.redrive_execution(executionArn=described["executionArn"])
    again = finished(sfn, described["executionArn"])
    assert again["status"] == "SUCCEEDED" and json.loads(again["output"]) == {"n": 10}
    assert again["redriveCount"] == 1 and again["redriveDate"]
    events = types(history(sfn, described["executionArn"]))
    assert events.count("PassStateEntered") == 1 and events.count("TaskStateEntered") == 2
    assert events[events.index("ExecutionFailed") + 1] == "ExecutionRedriven"


def test_test_state(sfn, function):
    passed = sfn.test_state(definition=json.dumps({"Type": "Pass", "Parameters": {"b.$": "States.MathAdd($.a, 1)"},
                                                  "Next": "Later"}), roleArn=ROLE, input='{"a": 1}')
    assert (passed["status"], json.loads(passed["output"]), passed["nextState"]) == ("SUCCEEDED", {"b": 2}, "Later")
    task = {"Type": "Task", "Resource": function, "Parameters": {"fail": True, "why": "x"}, "End": True,
            "Catch": [{"ErrorEquals": ["Boom"], "ResultPath": "$.error", "Next": "Handle"}]}
    caught = sfn.test_state(definition=json.dumps(task), roleArn=ROLE, input="{}")
    assert (caught["status"], caught["error"], caught["nextState"]) == ("CAUGHT_ERROR", "Boom", "Handle")
    task["Retry"] = [{"ErrorEquals": ["States.ALL"]}]
    assert sfn.test_state(definition=json.dumps(task), roleArn=ROLE)["status"] == "RETRIABLE"
    choice = {"Type": "Choice", "Choices": [{"Variable": "$.a", "NumericEquals": 1, "Next": "One"}], "Default": "Other"}
    assert sfn.test_state(definition=json.dumps(choice), roleArn=ROLE, input='{"a": 1}')["nextState"] == "One"
    failed = sfn.test_state(definition=json.dumps({"Type": "Fail", "Error": "E", "Cause": "C"}), roleArn=ROLE)
    assert (failed["status"], failed["error"], failed["cause"]) == ("FAILED", "E", "C")
    with pytest.raises(sfn.exceptions.InvalidDefinition):
        sfn.test_state(definition=json.dumps({"Type": "Task"}), roleArn=ROLE)


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


def test_nimbus_executions_cli(sfn, virtual, nimbus_bin):
    arn = machine(sfn, {"StartAt": "Start", "States": {
        "Start": {"Type": "Pass", "Next": "Sleep"},
        "Sleep": {"Type": "Wait", "Seconds": 7200, "Next": "Done"},
        "Done": {"Type": "Succeed"}}})
    name = unique_name("cli-run")
    execution = sfn.start_execution(stateMachineArn=arn, name=name)["executionArn"]
    wait_until(lambda: "WaitStateEntered" in types(history(sfn, execution)), what="the Wait")
    env = {"AWS_ENDPOINT_URL": virtual.endpoint, "PATH": "/usr/bin:/bin"}

    def nimbus(*args):
        out = subprocess.run([str(nimbus_bin), "executions", *args], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    listed = json.loads(nimbus("--json"))["executions"]
    row = next(r for r in listed if r["name"] == name)
    assert (row["status"], row["state"]) == ("RUNNING", "Sleep")
    steps = nimbus(name)
    assert "Start" in steps and "succeeded" in steps and "Sleep" in steps and "running" in steps
    advance(virtual.endpoint, 7200)
    followed = nimbus(execution, "--follow")
    assert followed.startswith(f"{name} SUCCEEDED")
