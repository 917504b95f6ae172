"""Step Functions end to end, the language and the API: flow states, intrinsics, Wait on
nimbus's virtual clock, EXPRESS sync executions, history shapes, AWS's definition errors,
versions and aliases, redrive, TestState, the aws CLI and `nimbus executions`, an execution that
survives kill -9, and a node's executions taken over by another (integrations with other
services: test_stepfunctions_services.py)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

import conftest
from sfn_support import (  # noqa: F401 (fixtures)
    advance, finished, function, history, machine, run, sfn, sfn_client, types, virtual,
)
from support import ROLE, aws_cli_env, aws_client, unique_name, wait_until


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


def test_express_start_sync_execution(sfn, function):
    definition = {"StartAt": "One", "States": {
        "One": {"Type": "Task", "Resource": function, "Next": "Two"},
        "Two": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "OutputPath": "$.Payload",
                "Parameters": {"FunctionName": function, "Payload.$": "$"}, "Next": "Three"},
        "Three": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:lambda:invoke",
                  "Parameters": {"FunctionName": function, "Payload.$": "$"},
                  "ResultSelector": {"n.$": "States.StringToJson($.Payload)"}, "OutputPath": "$.n", "End": True}}}
    arn = machine(sfn, definition, kind="EXPRESS")
    result = sfn.start_sync_execution(stateMachineArn=arn, input='{"n": 3}')
    assert result["status"] == "SUCCEEDED" and json.loads(result["output"]) == {"n": 24}
    assert ":express:" in result["executionArn"] and result["billingDetails"]["billedDurationInMilliseconds"] >= 100
    failed = sfn.start_sync_execution(stateMachineArn=arn, input='{"fail": true, "why": "x"}')
    assert failed["status"] == "FAILED" and failed["error"] == "Boom"
    with pytest.raises(sfn.exceptions.StateMachineTypeNotSupported):
        sfn.list_executions(stateMachineArn=arn)
    # With botocore's `sync-` host prefix left on: a name under .localhost takes it.
    port = sfn.meta.endpoint_url.rsplit(":", 1)[1]
    prefixed = aws_client("stepfunctions", f"http://nimbus.localhost:{port}")
    assert prefixed.start_sync_execution(stateMachineArn=arn, input='{"n": 1}')["output"] == '{"n":8}'
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
    wait_until(lambda: len(sfn.list_executions(stateMachineArn=machine_arn, statusFilter="FAILED")["executions"]) == 3,
               what="three failed executions")
    listed = sfn.list_executions(stateMachineArn=machine_arn, statusFilter="FAILED", maxResults=2)
    assert len(listed["executions"]) == 2 and listed["nextToken"]
    for_execution = sfn.describe_state_machine_for_execution(executionArn=described["executionArn"])
    assert json.loads(for_execution["definition"]) == definition


def test_variables_assigned_and_read(sfn, function):
    definition = {"StartAt": "Init", "States": {
        "Init": {"Type": "Pass", "Result": {"count": 2}, "ResultPath": None,
                 "Assign": {"total.$": "$.count", "label": "fixed"},
                 "Next": "Route"},
        "Route": {"Type": "Choice", "Choices": [{"Variable": "$total", "NumericEquals": 2, "Next": "Sums",
                                                 "Assign": {"picked.$": "States.Format('rule {}', $total)"}}],
                  "Default": "Sums"},
        "Sums": {"Type": "Map", "ItemsPath": "$.items",
                 "ItemProcessor": {"StartAt": "Add", "States": {"Add": {
                     "Type": "Pass", "Parameters": {"s.$": "States.MathAdd($, $total)"}, "OutputPath": "$.s",
                     "End": True}}},
                 "ResultPath": "$.sums", "Next": "Work"},
        "Work": {"Type": "Task", "Resource": function, "Parameters": {"fail": True, "why": "late"}, "End": True,
                 "Catch": [{"ErrorEquals": ["Boom"], "Assign": {"error.$": "$.Error"}, "ResultPath": None,
                            "Next": "Report"}]},
        "Report": {"Type": "Pass", "End": True, "Parameters": {
            "total.$": "$total", "label.$": "$label", "picked.$": "$picked", "error.$": "$error", "sums.$": "$.sums"}}}}
    described = run(sfn, definition, {"items": [1, 2, 3]})
    assert described["status"] == "SUCCEEDED", (described.get("error"), described.get("cause"))
    assert json.loads(described["output"]) == {"total": 2, "label": "fixed", "picked": "rule 2", "error": "Boom",
                                               "sums": [3, 4, 5]}


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
        "Before": {"Type": "Pass", "Result": {"step": 1}, "Assign": {"first.$": "$.step"}, "Next": "Sleep"},
        "Sleep": {"Type": "Wait", "Seconds": 3600, "Next": "After"},
        "After": {"Type": "Pass", "Parameters": {"step.$": "States.MathAdd($first, 1)"}, "End": True}}})
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


@pytest.mark.skipif(not conftest.TEST_DATABASE, reason="several nodes need PostgreSQL: set NIMBUS_TEST_DATABASE")
def test_a_node_that_dies_leaves_its_executions_to_another(server_factory, tmp_path_factory):
    url = conftest.fresh_database_url("sfn_nodes")
    shared = tmp_path_factory.mktemp("sfn-shared")
    args = lambda name: ["--database", url, "--shared-dir", str(shared), "--node", name, "--node-expiry", "2",
                         "--clock", "virtual"]
    a, b = server_factory(extra_args=args("a")), server_factory(extra_args=args("b"))
    on_a, on_b = sfn_client(a.endpoint), sfn_client(b.endpoint)
    on_b.list_state_machines()  # Step Functions opens on b: its lease task watches for dead nodes
    arn = machine(on_a, {"StartAt": "Sleep", "States": {
        "Sleep": {"Type": "Wait", "Seconds": 3600, "Next": "Done"},
        "Done": {"Type": "Pass", "Result": "finished elsewhere", "End": True}}})
    execution = on_a.start_execution(stateMachineArn=arn)["executionArn"]
    wait_until(lambda: "WaitStateEntered" in types(history(on_b, execution)), what="the Wait, seen from b")
    a.kill()

    def adopted():
        advance(b.endpoint, 3600)
        return on_b.describe_execution(executionArn=execution)["status"] == "SUCCEEDED"

    wait_until(adopted, timeout=40, interval=0.5, what="b to finish a's execution")
    assert on_b.describe_execution(executionArn=execution)["output"] == '"finished elsewhere"'


def test_closed_executions_are_kept_90_days(server_factory):
    srv = server_factory(extra_args=["--clock", "virtual"])
    sfn = sfn_client(srv.endpoint)
    arn = machine(sfn, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    closed = finished(sfn, sfn.start_execution(stateMachineArn=arn)["executionArn"])["executionArn"]
    advance(srv.endpoint, 89 * 86400)
    time.sleep(0.3)  # the sweep that the jump woke has looked (nothing to do yet)
    assert sfn.describe_execution(executionArn=closed)["status"] == "SUCCEEDED"
    advance(srv.endpoint, 2 * 86400)

    def gone():
        try:
            sfn.describe_execution(executionArn=closed)
        except sfn.exceptions.ExecutionDoesNotExist:
            return True
        return False

    wait_until(gone, timeout=10, what="the closed execution to be swept")
    assert sfn.list_executions(stateMachineArn=arn)["executions"] == []


def test_activity_workers_take_tasks(sfn):
    activity = sfn.create_activity(name=unique_name("act"))["activityArn"]
    assert sfn.create_activity(name=activity.rsplit(":", 1)[1])["activityArn"] == activity
    arn = machine(sfn, {"StartAt": "Work", "States": {"Work": {
        "Type": "Task", "Resource": activity, "Parameters": {"job.$": "$.job"}, "HeartbeatSeconds": 600,
        "End": True}}})
    execution = sfn.start_execution(stateMachineArn=arn, input='{"job": 42}')["executionArn"]
    task = sfn.get_activity_task(activityArn=activity, workerName="worker-1")
    assert json.loads(task["input"]) == {"job": 42}
    sfn.send_task_heartbeat(taskToken=task["taskToken"])
    sfn.send_task_success(taskToken=task["taskToken"], output='{"done": 42}')
    described = finished(sfn, execution)
    assert described["status"] == "SUCCEEDED" and json.loads(described["output"]) == {"done": 42}
    events = history(sfn, execution)
    assert [t for t in types(events) if t.startswith("Activity")] == [
        "ActivityScheduled", "ActivityStarted", "ActivitySucceeded"]
    started = next(e for e in events if e["type"] == "ActivityStarted")
    assert started["activityStartedEventDetails"] == {"workerName": "worker-1"}
    assert activity in [a["activityArn"] for a in sfn.list_activities()["activities"]]
    sfn.delete_activity(activityArn=activity)
    with pytest.raises(sfn.exceptions.ActivityDoesNotExist):
        sfn.describe_activity(activityArn=activity)
    failed = run(sfn, {"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": activity, "End": True}}})
    assert failed["status"] == "FAILED" and failed["error"] == "States.Runtime"
