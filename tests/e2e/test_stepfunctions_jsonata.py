"""Step Functions end to end: JSONata states (Arguments, Output, Assign, Condition, Items, the
functions Step Functions adds, AWS's QueryEvaluationError and definition checks), a distributed
Map's map runs and child executions, and the events a stopped execution records."""

from __future__ import annotations

import json
import subprocess

import pytest

from sfn_support import advance, finished, function, history, machine, run, sfn, types, virtual  # noqa: F401
from support import ROLE, aws_cli_env, aws_client, unique_name, wait_until


def test_jsonata_workflow_runs_lambda_tasks(sfn, function):
    # JSONata state by state in a JSONPath machine, so that a JSONPath state can read the variables.
    definition = {"StartAt": "Init", "States": {
        "Init": {"Type": "Pass", "Assign": {"factor": "{% $states.input.factor %}", "seen": []},
                 "Output": {"n": "{% $states.input.n %}"}, "Next": "Double"},
        "Double": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                   "Arguments": {"FunctionName": function, "Payload": {"n": "{% $states.input.n + $factor %}"}},
                   "TimeoutSeconds": "{% 30 %}",
                   "Assign": {"doubled": "{% $states.result.Payload.n %}",
                              "seen": "{% $append($seen, $states.context.State.Name) %}"},
                   "Output": "{% $states.result.Payload %}", "Next": "Route"},
        "Route": {"Type": "Choice", "Choices": [
            {"Condition": "{% $doubled > 100 %}", "Next": "Boom"},
            {"Condition": "{% $doubled > 10 %}", "Output": {"size": "big", "n": "{% $states.input.n %}"},
             "Assign": {"rule": 2}, "Next": "Squares"}], "Default": "Boom"},
        "Squares": {"Type": "Map", "Items": "{% [1..$states.input.n / 8] %}", "MaxConcurrency": "{% 2 %}",
                    "ItemSelector": {"v": "{% $states.context.Map.Item.Value %}",
                                     "i": "{% $states.context.Map.Item.Index %}"},
                    "ItemProcessor": {"StartAt": "Sq", "States": {"Sq": {
                        "Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% $states.input.v * $states.input.v + $states.input.i * 0 %}",
                        "End": True}}},
                    "Assign": {"squares": "{% $states.result %}"}, "Next": "Boom"},
        "Boom": {"Type": "Task", "Resource": function, "Arguments": {"fail": True, "why": "late"},
                 "Catch": [{"ErrorEquals": ["Boom"], "Output": {"caught": "{% $states.errorOutput.Error %}"},
                            "Assign": {"late": "{% $contains($states.errorOutput.Cause, 'late') %}"},
                            "Next": "Legacy"}], "End": True},
        # A JSONPath state reads the variables JSONata states assigned.
        "Legacy": {"Type": "Pass", "Parameters": {
            "squares.$": "$squares", "caught.$": "$.caught"}, "Next": "Report"},
        "Report": {"Type": "Succeed", "Output": {
            "doubled": "{% $doubled %}", "rule": "{% $rule %}", "seen": "{% $seen %}", "late": "{% $late %}",
            "squares": "{% $states.input.squares %}", "caught": "{% $states.input.caught %}",
            "sum": "{% $sum($states.input.squares) %}", "parts": "{% $partition($states.input.squares, 2) %}",
            "range": "{% $range(0, 4, 2) %}", "hash": "{% $hash('abc', 'MD5') %}",
            "parsed": "{% $parse('{\"k\": [1]}').k[0] %}"}},
    }}
    for name, state in definition["States"].items():
        if name != "Legacy":
            state["QueryLanguage"] = "JSONata"
    described = run(sfn, definition, {"n": 7, "factor": 1})
    assert described["status"] == "SUCCEEDED", (described.get("error"), described.get("cause"))
    assert json.loads(described["output"]) == {
        "doubled": 16, "rule": 2, "seen": ["Double"], "late": True, "squares": [1, 4], "caught": "Boom",
        "sum": 5, "parts": [[1, 4]], "range": [0, 2, 4], "hash": "900150983cd24fb0d6963f7d28e17f72", "parsed": 1}
    events = history(sfn, described["executionArn"])
    scheduled = next(e for e in events if e["type"] == "TaskScheduled")
    assert json.loads(scheduled["taskScheduledEventDetails"]["parameters"])["Payload"] == {"n": 8}


def test_jsonata_failures_are_query_evaluation_errors(sfn, virtual):
    # An expression that gives nothing fails the state, naming the field and the state.
    described = run(sfn, {"QueryLanguage": "JSONata", "StartAt": "A", "States": {
        "A": {"Type": "Pass", "Output": {"v": "{% $states.input.absent %}"}, "End": True}}})
    assert (described["status"], described["error"]) == ("FAILED", "States.QueryEvaluationError")
    assert described["cause"] == (
        "An error occurred while executing the state 'A' (entered at the event id #2). The JSONata expression "
        "'$states.input.absent' specified for the field 'Output/v' returned nothing (undefined).")
    failed = history(sfn, described["executionArn"])[-2]
    assert failed["type"] == "EvaluationFailed"
    assert failed["evaluationFailedEventDetails"] == {"state": "A", "error": "States.QueryEvaluationError",
                                                       "cause": described["cause"], "location": "Output/v"}
    # A Catch takes it like any error; Fail's Error and Cause may be expressions.
    described = run(sfn, {"QueryLanguage": "JSONata", "StartAt": "T", "States": {
        "T": {"Type": "Parallel", "Arguments": {"x": "{% $states.input.x %}"},
              "Branches": [{"StartAt": "Bad", "States": {"Bad": {
                  "Type": "Pass", "Output": "{% $states.input.x + 'text' %}", "End": True}}}],
              "Catch": [{"ErrorEquals": ["States.QueryEvaluationError"], "Next": "Stop",
                         "Output": "{% $states.errorOutput %}"}], "End": True},
        "Stop": {"Type": "Fail", "Error": "{% 'Caught.' & $split($states.input.Error, '.')[1] %}",
                 "Cause": "{% $string($states.input.Error = 'States.QueryEvaluationError') %}"}}}, {"x": 1})
    assert (described["status"], described["error"], described["cause"]) == ("FAILED", "Caught.QueryEvaluationError", "true")
    # Wait's Seconds as an expression, on the virtual clock.
    arn = machine(sfn, {"QueryLanguage": "JSONata", "StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": "{% $states.input.delay * 60 %}", "Output": "{% $states.input.delay %}",
              "End": True}}})
    execution = sfn.start_execution(stateMachineArn=arn, input='{"delay": 5}')["executionArn"]
    wait_until(lambda: "WaitStateEntered" in types(history(sfn, execution)), timeout=10, what="the wait")
    advance(virtual.endpoint, 301)
    assert finished(sfn, execution)["output"] == "5"


def test_jsonata_definition_errors(sfn):
    cases = [
        ({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "InputPath": "$.a", "End": True}}},
         "SCHEMA_VALIDATION_FAILED: The QueryLanguage is set to 'JSONata', but field 'InputPath' is only supported "
         "for the 'JSONPath' QueryLanguage at /States/A"),
        ({"StartAt": "A", "States": {"A": {"Type": "Pass", "Output": {"a": 1}, "End": True}}},
         "SCHEMA_VALIDATION_FAILED: The QueryLanguage is set to 'JSONPath', but field 'Output' is only supported "
         "for the 'JSONata' QueryLanguage at /States/A"),
        ({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "QueryLanguage": "JSONPath",
                                                                        "End": True}}},
         "SCHEMA_VALIDATION_FAILED: 'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state "
         "machine at /States/A"),
        ({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "Output": "{% $$.x %}",
                                                                        "End": True}}},
         "UNSUPPORTED_JSONATA_EXPRESSION: Reference to '$$' is not supported. at /States/A/Output"),
        ({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "Output": {"v": "{% phone %}"},
                                                                        "End": True}}},
         "UNSUPPORTED_JSONATA_EXPRESSION: Reference to 'phone' at the top level is not supported. "
         "at /States/A/Output/v"),
    ]
    for definition, message in cases:
        with pytest.raises(sfn.exceptions.InvalidDefinition) as error:
            machine(sfn, definition)
        assert error.value.response["Error"]["Message"] == f"Invalid State Machine Definition: '{message}'"
    with pytest.raises(sfn.exceptions.InvalidDefinition) as error:
        machine(sfn, {"QueryLanguage": "JSONata", "StartAt": "A", "States": {
            "A": {"Type": "Pass", "Output": {"v": "{% [1, %}"}, "End": True}}})
    message = error.value.response["Error"]["Message"]
    assert "INVALID_JSONATA_EXPRESSION: " in message and message.endswith(" at /States/A/Output/v'")


def test_test_state_runs_jsonata_with_variables(sfn, function):
    state = {"Type": "Pass", "QueryLanguage": "JSONata", "Output": {"sum": "{% $states.input.a + $bonus %}"},
             "End": True}
    out = sfn.test_state(definition=json.dumps(state), roleArn=ROLE, input='{"a": 1}', variables='{"bonus": 2}')
    assert (out["status"], json.loads(out["output"])) == ("SUCCEEDED", {"sum": 3})
    # A state of a JSONata machine is JSONata without saying so.
    definition = {"QueryLanguage": "JSONata", "StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Condition": "{% $states.input.a > 0 %}", "Next": "D"}], "Default": "D"},
        "D": {"Type": "Succeed"}}}
    out = sfn.test_state(definition=json.dumps(definition), stateName="C", roleArn=ROLE, input='{"a": 1}')
    assert (out["status"], out["nextState"]) == ("SUCCEEDED", "D")
    # A catcher's Output shapes the caught error.
    state = {"Type": "Task", "QueryLanguage": "JSONata", "Resource": function, "Arguments": {"fail": True},
             "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "H", "Output": {
                 "e": "{% $states.errorOutput.Error %}", "a": "{% $states.input.a %}"}}], "End": True}
    out = sfn.test_state(definition=json.dumps(state), roleArn=ROLE, input='{"a": 1}')
    assert (out["status"], out["nextState"], json.loads(out["output"])) == ("CAUGHT_ERROR", "H", {"e": "Boom", "a": 1})


def test_jsonata_with_the_aws_cli(virtual, tmp_path):
    env = aws_cli_env(virtual.endpoint, tmp_path)
    env["AWS_DISABLE_HOST_PREFIX_INJECTION"] = "true"
    definition = json.dumps({"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {
        "Type": "Pass", "Output": {"total": "{% $sum($states.input.items.price) %}",
                                   "names": "{% $states.input.items[price > 2].name %}"}, "End": True}}})

    def cli(*args):
        out = subprocess.run(["aws", "stepfunctions", *args, "--output", "json"], env=env, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    arn = cli("create-state-machine", "--name", unique_name("cli-jsonata"), "--definition", definition,
              "--role-arn", ROLE, "--type", "EXPRESS")["stateMachineArn"]
    payload = json.dumps({"items": [{"name": "a", "price": 1}, {"name": "b", "price": 3}, {"name": "c", "price": 5}]})
    out = cli("start-sync-execution", "--state-machine-arn", arn, "--input", payload)
    assert out["status"] == "SUCCEEDED", out
    assert json.loads(out["output"]) == {"total": 9, "names": ["b", "c"]}


def test_distributed_map_runs_and_child_executions(sfn, virtual):
    s3 = aws_client("s3", virtual.endpoint)
    bucket = unique_name("sfn-runs")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="items.json", Body=json.dumps([{"v": i} for i in range(5)]).encode())
    definition = {"QueryLanguage": "JSONata", "StartAt": "Each", "States": {"Each": {
        "Type": "Map", "Label": "Each", "MaxConcurrency": 3, "ToleratedFailureCount": 1,
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"},
                       "Arguments": {"Bucket": bucket, "Key": "{% $states.input.key %}"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "Check",
                          "States": {"Check": {"Type": "Choice", "Choices": [
                              {"Condition": "{% $states.input.v = 3 %}", "Next": "Reject"}], "Default": "Keep"},
                              "Reject": {"Type": "Fail", "Error": "Three"},
                              "Keep": {"Type": "Pass", "Output": "{% $states.input.v * 10 %}", "End": True}}},
        "End": True}}}
    described = run(sfn, definition, {"key": "items.json"})
    assert described["status"] == "SUCCEEDED", (described.get("error"), described.get("cause"))
    execution = described["executionArn"]
    runs = sfn.list_map_runs(executionArn=execution)["mapRuns"]
    assert len(runs) == 1 and runs[0]["stateMachineArn"].endswith("/Each")
    map_run = runs[0]["mapRunArn"]
    events = history(sfn, execution)
    assert next(e for e in events if e["type"] == "MapRunStarted")["mapRunStartedEventDetails"]["mapRunArn"] == map_run
    assert "MapRunSucceeded" in types(events)
    about = sfn.describe_map_run(mapRunArn=map_run)
    assert (about["status"], about["maxConcurrency"], about["toleratedFailureCount"]) == ("SUCCEEDED", 3, 1)
    assert (about["itemCounts"]["total"], about["itemCounts"]["succeeded"], about["itemCounts"]["failed"]) == (5, 4, 1)
    assert about["executionCounts"]["total"] == 5
    children = sfn.list_executions(mapRunArn=map_run)["executions"]
    assert len(children) == 5 and all(c["mapRunArn"] == map_run for c in children)
    failed = sfn.list_executions(mapRunArn=map_run, statusFilter="FAILED")["executions"]
    assert len(failed) == 1
    child = sfn.describe_execution(executionArn=failed[0]["executionArn"])
    assert (child["status"], child["error"], json.loads(child["input"])) == ("FAILED", "Three", {"v": 3})
    assert types(history(sfn, failed[0]["executionArn"])) == ["ExecutionStarted", "ExecutionFailed"]
    sfn.update_map_run(mapRunArn=map_run, maxConcurrency=7, toleratedFailurePercentage=50)
    about = sfn.describe_map_run(mapRunArn=map_run)
    assert (about["maxConcurrency"], about["toleratedFailurePercentage"]) == (7, 50)
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.describe_map_run(mapRunArn=map_run + "0")
    with pytest.raises(sfn.exceptions.ValidationException):
        sfn.update_map_run(mapRunArn=map_run)
    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
        sfn.list_map_runs(executionArn=execution + "x")


def test_stopping_records_the_aborted_state(sfn):
    arn = machine(sfn, {"StartAt": "Think", "States": {
        "Think": {"Type": "Pass", "Next": "Wait"},
        "Wait": {"Type": "Wait", "Seconds": 99999, "End": True}}})
    execution = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    wait_until(lambda: "WaitStateEntered" in types(history(sfn, execution)), timeout=10, what="the wait")
    sfn.stop_execution(executionArn=execution, error="Halt", cause="enough")
    events = history(sfn, execution)
    assert types(events)[-2:] == ["WaitStateAborted", "ExecutionAborted"]
    assert events[-1]["previousEventId"] == events[-2]["id"]
    assert events[-1]["executionAbortedEventDetails"] == {"error": "Halt", "cause": "enough"}


def test_update_map_run_changes_a_running_map(sfn, virtual):
    s3 = aws_client("s3", virtual.endpoint)
    bucket = unique_name("sfn-live")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="items.json", Body=b'[{"v": 1}, {"v": 2}, {"v": 3}]')
    arn = machine(sfn, {"QueryLanguage": "JSONata", "StartAt": "Each", "States": {"Each": {
        "Type": "Map", "MaxConcurrency": 1, "ToleratedFailureCount": 0,
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"},
                       "Arguments": {"Bucket": bucket, "Key": "items.json"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "Nap",
                          "States": {"Nap": {"Type": "Wait", "Seconds": 10, "Next": "Check"},
                                     "Check": {"Type": "Choice", "Choices": [
                                         {"Condition": "{% $states.input.v = 2 %}", "Next": "Reject"}],
                                         "Default": "Keep"},
                                     "Reject": {"Type": "Fail", "Error": "Two"},
                                     "Keep": {"Type": "Succeed"}}},
        "End": True}}})
    execution = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    runs = wait_until(lambda: sfn.list_map_runs(executionArn=execution)["mapRuns"], timeout=10, what="the map run")
    about = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"])
    assert (about["status"], about["itemCounts"]["running"], about["itemCounts"]["succeeded"]) == ("RUNNING", 3, 0)
    # More concurrency and one tolerated failure, while the first item waits.
    sfn.update_map_run(mapRunArn=runs[0]["mapRunArn"], maxConcurrency=3, toleratedFailureCount=1)

    def done():
        advance(virtual.endpoint, 11)
        described = sfn.describe_execution(executionArn=execution)
        return described if described["status"] != "RUNNING" else None

    described = wait_until(done, timeout=20, interval=0.2, what="the map to finish")
    assert described["status"] == "SUCCEEDED", (described.get("error"), described.get("cause"))
    about = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"])
    assert (about["status"], about["itemCounts"]["failed"], about["maxConcurrency"]) == ("SUCCEEDED", 1, 3)


def test_jsonata_activity_task(sfn):
    activity = sfn.create_activity(name=unique_name("act-jsonata"))["activityArn"]
    arn = machine(sfn, {"QueryLanguage": "JSONata", "StartAt": "Work", "States": {"Work": {
        "Type": "Task", "Resource": activity, "Arguments": {"job": "{% $states.input.job * 2 %}"},
        "HeartbeatSeconds": "{% 600 %}", "Output": "{% $states.result.done + 1 %}", "End": True}}})
    execution = sfn.start_execution(stateMachineArn=arn, input='{"job": 21}')["executionArn"]
    task = sfn.get_activity_task(activityArn=activity, workerName="worker-1")
    assert json.loads(task["input"]) == {"job": 42}
    sfn.send_task_success(taskToken=task["taskToken"], output='{"done": 42}')
    assert finished(sfn, execution)["output"] == "43"
    sfn.delete_activity(activityArn=activity)


def test_jsonata_task_token_round_trip(sfn, virtual):
    sqs = aws_client("sqs", virtual.endpoint)
    queue = sqs.create_queue(QueueName=unique_name("sfn-jsonata-q"))["QueueUrl"]
    arn = machine(sfn, {"QueryLanguage": "JSONata", "StartAt": "Ask", "States": {"Ask": {
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Arguments": {"QueueUrl": queue, "MessageBody": {"token": "{% $states.context.Task.Token %}",
                                                          "order": "{% $states.input.order %}"}},
        "Output": {"approved": "{% $states.result.approved %}", "order": "{% $states.input.order %}"},
        "End": True}}})
    execution = sfn.start_execution(stateMachineArn=arn, input='{"order": 7}')["executionArn"]
    messages = wait_until(lambda: sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages"),
                          timeout=20, what="the task's message")
    body = json.loads(messages[0]["Body"])
    assert body["order"] == 7
    sfn.send_task_success(taskToken=body["token"], output='{"approved": true}')
    described = finished(sfn, execution)
    assert json.loads(described["output"]) == {"approved": True, "order": 7}
