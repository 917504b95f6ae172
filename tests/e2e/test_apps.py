"""Applications (tests/apps/<case>) deployed as stacks with `nimbus deploy` and with the real
`sam deploy`, exercised through boto3, updated (code-only and infrastructure) and deleted with
nothing left behind; and the failure paths a user meets: a template that does not parse, a type
nimbus does not provision, a resource failing mid-update (the previous version keeps serving),
and a retained bucket outliving its stack."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest

from apps_support import TOOLS, Deployer, advance, copy_app, drain, edit, gone, invoke, stack_events
from support import aws_client, unique_name, wait_until


@pytest.fixture(params=TOOLS)
def deployer(request, nimbus_bin, server, tmp_path):
    return Deployer(request.param, nimbus_bin, server.endpoint, tmp_path)


def test_s3_pipeline_deploys_runs_updates_and_deletes(deployer, server, tmp_path):
    app = copy_app("s3-pipeline", tmp_path)
    stack = unique_name("s3pipe")
    deployer.deploy(app, stack)
    assert deployer.stack(stack)["StackStatus"] == "CREATE_COMPLETE"
    out = deployer.outputs(stack)
    s3 = aws_client("s3", server.endpoint)
    s3.put_object(Bucket=out["InputBucketName"], Key="a.txt", Body=b"hello")
    s3.put_object(Bucket=out["InputBucketName"], Key="skip.bin", Body=b"not for the function")

    def transformed(key):
        try:
            return s3.get_object(Bucket=out["OutputBucketName"], Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None

    assert wait_until(lambda: transformed("a.txt"), timeout=30, what="a.txt transformed") == b"v1:HELLO"

    # A code-only change: the same resources, new code serving.
    edit(app / "src/app.py", 'VERSION = "v1"', 'VERSION = "v2"')
    deployer.deploy(app, stack)
    assert deployer.stack(stack)["StackStatus"] == "UPDATE_COMPLETE"
    s3.put_object(Bucket=out["InputBucketName"], Key="b.txt", Body=b"again")
    assert wait_until(lambda: transformed("b.txt"), timeout=30, what="b.txt transformed") == b"v2:AGAIN"
    assert transformed("skip.bin") is None

    # Buckets holding objects cannot be deleted, as on AWS: empty them first.
    for bucket in (out["InputBucketName"], out["OutputBucketName"]):
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
    deployer.delete(stack)
    lam = aws_client("lambda", server.endpoint)
    assert gone(lam.get_function, FunctionName=out["FunctionName"])
    assert gone(s3.head_bucket, Bucket=out["InputBucketName"])
    assert gone(s3.head_bucket, Bucket=out["OutputBucketName"])


def test_sqs_partial_batch_failure_sends_only_failures_to_the_dead_letter_queue(deployer, server, tmp_path):
    app = copy_app("sqs-partial", tmp_path)
    stack = unique_name("sqspart")
    deployer.deploy(app, stack)
    out = deployer.outputs(stack)
    sqs = aws_client("sqs", server.endpoint)
    sqs.send_message_batch(QueueUrl=out["WorkQueueUrl"], Entries=[
        {"Id": "1", "MessageBody": "one"}, {"Id": "2", "MessageBody": "please fail"},
        {"Id": "3", "MessageBody": "three"},
    ])
    assert sorted(drain(sqs, out["ResultsQueueUrl"], 2)) == ["one", "three"]
    assert drain(sqs, out["DeadLetterQueueUrl"], 1, timeout=60) == ["please fail"]
    deployer.delete(stack)
    assert gone(sqs.get_queue_attributes, QueueUrl=out["WorkQueueUrl"], AttributeNames=["All"])


def test_kinesis_bisect_isolates_the_poison_record(deployer, server, tmp_path):
    app = copy_app("kinesis-bisect", tmp_path)
    stack = unique_name("kinbis")
    deployer.deploy(app, stack)
    out = deployer.outputs(stack)
    kinesis = aws_client("kinesis", server.endpoint)
    for item in ["a", "b", "poison", "c"]:
        kinesis.put_record(StreamName=out["StreamName"], Data=item.encode(), PartitionKey="same")
    sqs = aws_client("sqs", server.endpoint)
    failure = json.loads(drain(sqs, out["FailedQueueUrl"], 1, timeout=60)[0])
    # AWS's on-failure record names the one-record batch left after bisecting.
    assert failure["KinesisBatchInfo"]["batchSize"] == 1
    assert sorted(drain(sqs, out["ResultsQueueUrl"], 3, timeout=60)) == ["a", "b", "c"]
    deployer.delete(stack)
    assert gone(kinesis.describe_stream_summary, StreamName=out["StreamName"])


def test_layers_reach_the_function(deployer, server, tmp_path):
    app = copy_app("layers", tmp_path)
    stack = unique_name("layers")
    deployer.deploy(app, stack)
    out = deployer.outputs(stack)
    assert invoke(server.endpoint, out["FunctionName"], {"name": "ada"}) == {"greeting": "hello ada from the layer"}
    # Changing the layer publishes a new version the function then uses.
    edit(app / "layer/python/helpers.py", "from the layer", "from layer two")
    deployer.deploy(app, stack)
    assert invoke(server.endpoint, out["FunctionName"], {"name": "ada"}) == {"greeting": "hello ada from layer two"}
    deployer.delete(stack)
    assert gone(aws_client("lambda", server.endpoint).get_function, FunctionName=out["FunctionName"])


def test_apis_route_to_the_function(deployer, server, tmp_path):
    app = copy_app("api", tmp_path)
    stack = unique_name("api")
    deployer.deploy(app, stack)
    out = deployer.outputs(stack)
    assert out["HttpApiUrl"].startswith(f"https://{out['HttpApiId']}.execute-api.us-east-1.amazonaws.com")
    base = f"{server.endpoint}/_aws/execute-api"
    with urllib.request.urlopen(f"{base}/{out['HttpApiId']}/hello/ada") as answer:
        assert json.loads(answer.read()) == {"hello": "ada"}
    request = urllib.request.Request(f"{base}/{out['RestApiId']}/Prod/greet", data=b'{"name": "bob"}',
                                     method="POST", headers={"content-type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        assert json.loads(answer.read()) == {"hello": "bob"}
    deployer.delete(stack)
    assert gone(aws_client("apigatewayv2", server.endpoint).get_api, ApiId=out["HttpApiId"])


def test_destinations_receive_async_outcomes(deployer, server, tmp_path):
    app = copy_app("destinations", tmp_path)
    stack = unique_name("dest")
    deployer.deploy(app, stack)
    out = deployer.outputs(stack)
    lam = aws_client("lambda", server.endpoint)
    lam.invoke(FunctionName=out["FunctionName"], InvocationType="Event", Payload=b'{"n": 7}')
    lam.invoke(FunctionName=out["FunctionName"], InvocationType="Event", Payload=b'{"fail": true}')
    sqs = aws_client("sqs", server.endpoint)
    success = json.loads(drain(sqs, out["SucceededQueueUrl"], 1)[0])
    assert success["responsePayload"] == {"done": 7}
    failure = json.loads(drain(sqs, out["FailedQueueUrl"], 1)[0])
    assert failure["requestContext"]["condition"] == "RetriesExhausted"
    deployer.delete(stack)


def test_nested_application_outputs_flow_into_the_parent(deployer, server, tmp_path):
    app = copy_app("nested", tmp_path)
    stack = unique_name("nested")
    deployer.deploy(app, stack, overrides=["Suffix=orders"])
    out = deployer.outputs(stack)
    assert out["QueueUrl"].endswith("-orders")
    assert invoke(server.endpoint, out["ReaderName"]) == {"queue": out["QueueUrl"]}
    child = deployer.resources(stack)["Storage"]
    assert child["ResourceType"] == "AWS::CloudFormation::Stack"
    assert child["PhysicalResourceId"].startswith("arn:aws:cloudformation:us-east-1:000000000000:stack/")
    if deployer.tool == "sam":
        # `sam delete` re-reads the nested template's URL that `sam deploy` itself wrote
        # (path-style on the custom endpoint) and refuses it as "not a valid S3 url": a SAM CLI
        # limitation with any AWS_ENDPOINT_URL. CloudFormation's own DeleteStack is what it calls.
        deployer.cfn.delete_stack(StackName=stack)
        deployer.cfn.get_waiter("stack_delete_complete").wait(StackName=stack, WaiterConfig={"Delay": 1})
    else:
        deployer.delete(stack)
    sqs = aws_client("sqs", server.endpoint)
    assert gone(sqs.get_queue_attributes, QueueUrl=out["QueueUrl"], AttributeNames=["All"])


def test_custom_resource_answers_through_its_response_url(deployer, server, tmp_path):
    app = copy_app("custom-resource", tmp_path)
    stack = unique_name("custom")
    deployer.deploy(app, stack)
    assert deployer.outputs(stack)["Doubled"] == "42"
    deployer.delete(stack)


def test_shared_file_system_mounts_between_functions(deployer, server, tmp_path):
    app = copy_app("efs-mounts", tmp_path)
    stack = unique_name("efs")
    deployer.deploy(app, stack)
    out = deployer.outputs(stack)
    text = unique_name("note")
    assert invoke(server.endpoint, out["WriterName"], {"text": text}) == {"written": len(text)}
    assert invoke(server.endpoint, out["ReaderName"]) == {"text": text}
    deployer.delete(stack)


def test_a_failing_update_rolls_back_and_the_previous_version_keeps_serving(deployer, server, tmp_path):
    app = copy_app("rollback", tmp_path)
    stack = unique_name("rollback")
    deployer.deploy(app / "v1", stack)
    function = f"{stack}-service"
    assert invoke(server.endpoint, function) == {"version": "v1"}
    failed = deployer.deploy(app / "v2", stack, check=False)
    assert failed.returncode != 0
    described = deployer.stack(stack)
    assert described["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    reasons = [e.get("ResourceStatusReason", "") for e in stack_events(deployer.cfn, stack)
               if e["LogicalResourceId"] == "Broken" and e["ResourceStatus"] == "CREATE_FAILED"]
    assert reasons and "MessageRetentionPeriod" in reasons[0], reasons
    assert invoke(server.endpoint, function) == {"version": "v1"}
    deployer.delete(stack)


def test_deleting_a_stack_keeps_a_retained_bucket(deployer, server, tmp_path):
    app = copy_app("retain", tmp_path)
    stack = unique_name("retain")
    deployer.deploy(app, stack)
    out = deployer.outputs(stack)
    deployer.delete(stack)
    s3 = aws_client("s3", server.endpoint)
    s3.head_bucket(Bucket=out["ArchiveBucket"])
    sqs = aws_client("sqs", server.endpoint)
    assert gone(sqs.get_queue_attributes, QueueUrl=out["ScratchQueueUrl"], AttributeNames=["All"])
    # A deleted stack's events stay readable by its id, the retained bucket's DELETE_SKIPPED among them.
    deleted = [s for s in deployer.cfn.list_stacks(StackStatusFilter=["DELETE_COMPLETE"])["StackSummaries"]
               if s["StackName"] == stack]
    assert deleted, "the deleted stack is listed as DELETE_COMPLETE"
    events = stack_events(deployer.cfn, deleted[0]["StackId"])
    assert any(e["LogicalResourceId"] == "Archive" and e["ResourceStatus"] == "DELETE_SKIPPED" for e in events)
    s3.delete_bucket(Bucket=out["ArchiveBucket"])


def test_an_unsupported_resource_type_fails_the_stack_naming_it(deployer, server, tmp_path):
    app = copy_app("unsupported-type", tmp_path)
    stack = unique_name("unsup")
    failed = deployer.deploy(app, stack, check=False)
    assert failed.returncode != 0
    described = deployer.stack(stack)
    assert described["StackStatus"] == "ROLLBACK_COMPLETE"
    reasons = " ".join(e.get("ResourceStatusReason", "") for e in stack_events(deployer.cfn, stack))
    assert "AWS::RDS::DBInstance" in reasons
    # Nothing the failed creation made is left.
    queue = deployer.resources(stack).get("Queue", {})
    assert queue.get("ResourceStatus") in (None, "DELETE_COMPLETE")
    deployer.delete(stack)


def test_a_template_that_does_not_parse_is_refused_with_the_place(deployer, server, tmp_path):
    app = copy_app("bad-template", tmp_path)
    stack = unique_name("bad")
    failed = deployer.deploy(app, stack, check=False)
    assert failed.returncode != 0
    said = failed.stdout + failed.stderr
    assert "not well-formed" in said or "Template format error" in said or "Failed to parse" in said, said
    assert gone(deployer.cfn.describe_stacks, StackName=stack) or \
        deployer.stack(stack)["StackStatus"] in ("REVIEW_IN_PROGRESS",)


@pytest.mark.parametrize("tool", TOOLS)
def test_schedules_fire_on_the_virtual_clock(tool, nimbus_bin, server_factory, tmp_path):
    server = server_factory(extra_args=["--clock", "virtual"])
    deployer = Deployer(tool, nimbus_bin, server.endpoint, tmp_path)
    app = copy_app("schedule", tmp_path)
    stack = unique_name("sched")
    deployer.deploy(app, stack)
    out = deployer.outputs(stack)
    sqs = aws_client("sqs", server.endpoint)
    advance(server.endpoint, 61)
    assert {"source": "rule"} in [json.loads(b) for b in drain(sqs, out["TicksQueueUrl"], 1)]
    advance(server.endpoint, 3600)
    ticks = [json.loads(b) for b in drain(sqs, out["TicksQueueUrl"], 2)]
    assert {"source": "scheduler"} in ticks
    deployer.delete(stack)
    scheduler = aws_client("scheduler", server.endpoint)
    assert scheduler.list_schedules()["Schedules"] == []


@pytest.mark.parametrize("tool", TOOLS)
def test_traffic_shifts_gradually_after_the_pre_traffic_hook(tool, nimbus_bin, server_factory, tmp_path):
    server = server_factory(extra_args=["--clock", "virtual"])
    deployer = Deployer(tool, nimbus_bin, server.endpoint, tmp_path)
    app = copy_app("traffic-shift", tmp_path)
    stack = unique_name("shift")
    deployer.deploy(app, stack)
    name = deployer.outputs(stack)["GreeterName"]
    lam = aws_client("lambda", server.endpoint)
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"

    # A code change: the hook checks version 2, then 10% more traffic a minute goes to it.
    edit(app / "src/app.py", 'VERSION = "v1"', 'VERSION = "v2"')
    update = threading.Thread(target=deployer.deploy, args=(app, stack))
    update.start()

    def weights():
        routing = lam.get_alias(FunctionName=name, Name="live").get("RoutingConfig", {})
        return routing.get("AdditionalVersionWeights")

    assert wait_until(weights, timeout=120, what="traffic shifting") == {"2": 0.1}
    assert deployer.stack(stack)["StackStatus"] == "UPDATE_IN_PROGRESS"
    advance(server.endpoint, 120)
    assert wait_until(lambda: weights() == {"2": 0.3}, timeout=30, what="30% on version 2")
    advance(server.endpoint, 480)
    update.join(timeout=300)
    assert deployer.stack(stack)["StackStatus"] == "UPDATE_COMPLETE"
    alias = lam.get_alias(FunctionName=name, Name="live")
    assert alias["FunctionVersion"] == "2" and "RoutingConfig" not in alias
    assert json.loads(lam.invoke(FunctionName=name, Qualifier="live")["Payload"].read()) == {"version": "v2"}
    deployer.delete(stack)
    assert gone(lam.get_function, FunctionName=name)
