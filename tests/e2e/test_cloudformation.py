"""CloudFormation end to end, the stacks themselves: deployed with the aws CLI (change sets and
waiters) and boto3, provisioned by nimbus's services for real (a bucket notifying a function that
writes to a queue), updated in place and by replacement, rolled back, cancelled, deleted (retained
resources kept), bad templates, a kill -9 in the middle of a deployment, and the real SAM CLI."""

from __future__ import annotations

import json
import subprocess

import pytest
from botocore.exceptions import ClientError, WaiterError

from cfn_support import cfn, delete, deploy, message_of, outputs, resources, wait_for, wait_status
from support import aws_cli_env, aws_client, unique_name


PIPELINE = """
AWSTemplateFormatVersion: "2010-09-09"
Description: bucket -> function -> queue
Parameters:
  Greeting:
    Type: String
    Default: hello
  QueueSuffix:
    Type: String
    Default: one
Resources:
  Records:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-records-${QueueSuffix}"
      VisibilityTimeout: 30
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal: {Service: lambda.amazonaws.com}
            Action: sts:AssumeRole
      ManagedPolicyArns:
        - arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole
  Function:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python3.12
      Handler: index.handler
      Role: !GetAtt Role.Arn
      Timeout: 30
      Environment:
        Variables:
          QUEUE_URL: !Ref Records
          GREETING: !Ref Greeting
      Code:
        ZipFile: |
          import json, os, boto3
          def handler(event, context):
              if "Records" in event:
                  key = event["Records"][0]["s3"]["object"]["key"]
                  boto3.client("sqs").send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody=key)
              return os.environ["GREETING"]
  Permission:
    Type: AWS::Lambda::Permission
    Properties:
      FunctionName: !Ref Function
      Action: lambda:InvokeFunction
      Principal: s3.amazonaws.com
      SourceAccount: !Ref AWS::AccountId
  Bucket:
    Type: AWS::S3::Bucket
    DependsOn: Permission
    Properties:
      NotificationConfiguration:
        LambdaConfigurations:
          - Event: s3:ObjectCreated:*
            Function: !GetAtt Function.Arn
Outputs:
  BucketName:
    Value: !Ref Bucket
  FunctionName:
    Value: !Ref Function
  QueueUrl:
    Value: !Ref Records
"""


def test_deploy_pipeline_update_in_place_and_by_replacement(server, tmp_path):
    endpoint, stack = server.endpoint, unique_name("pipe")
    client, s3, sqs, lam = cfn(endpoint), aws_client("s3", endpoint), aws_client("sqs", endpoint), aws_client("lambda", endpoint)
    done = deploy(endpoint, tmp_path, stack, PIPELINE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert client.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    out = outputs(client, stack)
    # An S3 put reaches the function through the notification, which writes to the queue.
    s3.put_object(Bucket=out["BucketName"], Key="in/data.csv", Body=b"1,2")
    got = wait_for(lambda: sqs.receive_message(QueueUrl=out["QueueUrl"], WaitTimeSeconds=1).get("Messages"))
    assert got[0]["Body"] == "in/data.csv"
    assert json.loads(lam.invoke(FunctionName=out["FunctionName"])["Payload"].read()) == "hello"
    before = resources(client, stack)
    assert {r["ResourceStatus"] for r in before.values()} == {"CREATE_COMPLETE"}

    # In place: the function keeps its name and answers with the new parameter.
    done = deploy(endpoint, tmp_path, stack, PIPELINE, "--parameter-overrides", "Greeting=bonjour")
    assert done.returncode == 0, done.stdout + done.stderr
    after = resources(client, stack)
    assert after["Function"]["PhysicalResourceId"] == before["Function"]["PhysicalResourceId"]
    assert json.loads(lam.invoke(FunctionName=out["FunctionName"])["Payload"].read()) == "bonjour"

    # By replacement: a new queue name makes a new queue; the old one is deleted in cleanup.
    path = tmp_path / "changed.yaml"
    path.write_text(PIPELINE)
    change = client.create_change_set(StackName=stack, ChangeSetName="rename", TemplateBody=PIPELINE,
                                      Capabilities=["CAPABILITY_IAM"],
                                      Parameters=[{"ParameterKey": "Greeting", "UsePreviousValue": True},
                                                  {"ParameterKey": "QueueSuffix", "ParameterValue": "two"}])
    client.get_waiter("change_set_create_complete").wait(ChangeSetName=change["Id"], StackName=stack,
                                                          WaiterConfig={"Delay": 1})
    described = client.describe_change_set(ChangeSetName=change["Id"], StackName=stack)
    changes = {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"] for c in described["Changes"]}
    assert changes["Records"]["Action"] == "Modify"
    assert changes["Records"]["Replacement"] == "True"
    assert changes["Records"]["Details"][0]["Target"]["Name"] == "QueueName"
    client.execute_change_set(ChangeSetName=change["Id"], StackName=stack)
    client.get_waiter("stack_update_complete").wait(StackName=stack, WaiterConfig={"Delay": 1})
    new_url = outputs(client, stack)["QueueUrl"]
    assert new_url != out["QueueUrl"] and new_url.endswith("-records-two")
    with pytest.raises(ClientError) as gone:
        sqs.get_queue_attributes(QueueUrl=out["QueueUrl"])
    assert "NonExistentQueue" in str(gone.value) or "does not exist" in str(gone.value)
    events = client.describe_stack_events(StackName=stack)["StackEvents"]
    assert events[0]["LogicalResourceId"] == stack and events[0]["ResourceStatus"] == "UPDATE_COMPLETE"
    assert len({e["EventId"] for e in events}) == len(events)
    stamps = [e["Timestamp"] for e in events]
    assert stamps == sorted(stamps, reverse=True)
    reasons = [e.get("ResourceStatusReason") for e in events if e["LogicalResourceId"] == "Records"]
    assert "Requested update requires the creation of a new physical resource; hence creating one." in reasons
    # The function now writes to the new queue (its environment followed the Ref).
    s3.put_object(Bucket=out["BucketName"], Key="second", Body=b"x")
    got = wait_for(lambda: sqs.receive_message(QueueUrl=new_url, WaitTimeSeconds=1).get("Messages"))
    assert got[0]["Body"] == "second"

    # No change: the CLI's change set is FAILED with AWS's reason, which it reports as "No changes".
    again = deploy(endpoint, tmp_path, stack, PIPELINE, "--parameter-overrides", "QueueSuffix=two")
    assert "No changes to deploy" in again.stdout + again.stderr
    with pytest.raises(ClientError) as nothing:
        client.update_stack(StackName=stack, TemplateBody=PIPELINE, Capabilities=["CAPABILITY_IAM"],
                            Parameters=[{"ParameterKey": "Greeting", "UsePreviousValue": True},
                                        {"ParameterKey": "QueueSuffix", "UsePreviousValue": True}])
    assert nothing.value.response["Error"]["Message"] == "No updates are to be performed."

    s3.delete_object(Bucket=out["BucketName"], Key="in/data.csv")
    s3.delete_object(Bucket=out["BucketName"], Key="second")
    delete(client, stack)
    with pytest.raises(ClientError):
        lam.get_function(FunctionName=out["FunctionName"])
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket=out["BucketName"])

VERSIONED = """
Parameters:
  Answer: {Type: String}
  Visibility: {Type: Number, Default: 30}
Resources:
  Function:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python3.12
      Handler: index.handler
      Role: arn:aws:iam::000000000000:role/r
      Code:
        ZipFile: !Sub |
          def handler(event, context):
              return "${Answer}"
  Later:
    Type: AWS::SQS::Queue
    DependsOn: Function
    Properties:
      VisibilityTimeout: !Ref Visibility
Outputs:
  Name: {Value: !Ref Function}
"""


def test_failed_update_rolls_back_and_the_previous_function_still_answers(server):
    endpoint, stack = server.endpoint, unique_name("roll")
    client, lam = cfn(endpoint), aws_client("lambda", endpoint)
    client.create_stack(StackName=stack, TemplateBody=VERSIONED, Parameters=[{"ParameterKey": "Answer", "ParameterValue": "v1"}])
    client.get_waiter("stack_create_complete").wait(StackName=stack, WaiterConfig={"Delay": 1})
    name = outputs(client, stack)["Name"]
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "v1"
    # The function changes first, then the queue fails (SQS refuses the timeout): all rolls back.
    client.update_stack(StackName=stack, TemplateBody=VERSIONED, Parameters=[
        {"ParameterKey": "Answer", "ParameterValue": "v2"}, {"ParameterKey": "Visibility", "ParameterValue": "99999"}])
    assert wait_status(client, stack) == "UPDATE_ROLLBACK_COMPLETE"
    with pytest.raises(WaiterError):
        client.get_waiter("stack_update_complete").wait(StackName=stack, WaiterConfig={"Delay": 1, "MaxAttempts": 2})
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "v1"
    events = client.describe_stack_events(StackName=stack)["StackEvents"]
    failed = [e for e in events if e["ResourceStatus"] == "UPDATE_FAILED"]
    assert failed and failed[0]["LogicalResourceId"] == "Later" and "VisibilityTimeout" in failed[0]["ResourceStatusReason"]
    statuses = [e["ResourceStatus"] for e in events if e["LogicalResourceId"] == stack]
    assert statuses[:3] == ["UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS"]
    described = client.describe_stacks(StackName=stack)["Stacks"][0]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}["Answer"] == "v1"
    # The stack can be updated again after the rollback.
    client.update_stack(StackName=stack, TemplateBody=VERSIONED, Parameters=[{"ParameterKey": "Answer", "ParameterValue": "v3"}])
    client.get_waiter("stack_update_complete").wait(StackName=stack, WaiterConfig={"Delay": 1})
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "v3"
    delete(client, stack)

def test_create_failure_rolls_back_and_unknown_types_are_named(server):
    endpoint = server.endpoint
    client, sqs = cfn(endpoint), aws_client("sqs", endpoint)
    stack = unique_name("unknown")
    queue = unique_name("kept-until-rollback")
    client.create_stack(StackName=stack, TemplateBody=json.dumps({"Resources": {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": queue}},
        "Thing": {"Type": "AWS::Foo::Bar", "DependsOn": "Queue"}}}))
    with pytest.raises(WaiterError):
        client.get_waiter("stack_create_complete").wait(StackName=stack, WaiterConfig={"Delay": 1})
    described = client.describe_stacks(StackName=stack)["Stacks"][0]
    assert described["StackStatus"] == "ROLLBACK_COMPLETE"
    events = client.describe_stack_events(StackName=stack)["StackEvents"]
    failed = next(e for e in events if e["ResourceStatus"] == "CREATE_FAILED")
    assert failed["LogicalResourceId"] == "Thing" and "AWS::Foo::Bar" in failed["ResourceStatusReason"]
    assert any(e["LogicalResourceId"] == "Queue" and e["ResourceStatus"] == "DELETE_COMPLETE" for e in events)
    with pytest.raises(ClientError):
        sqs.get_queue_url(QueueName=queue)
    # A ROLLBACK_COMPLETE stack cannot be updated, only deleted.
    with pytest.raises(ClientError) as refused:
        client.update_stack(StackName=stack, TemplateBody=json.dumps({"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}))
    assert "ROLLBACK_COMPLETE state and can not be updated" in refused.value.response["Error"]["Message"]
    delete(client, stack)
    # OnFailure=DO_NOTHING keeps the failed stack as it is.
    kept = unique_name("nothing")
    client.create_stack(StackName=kept, OnFailure="DO_NOTHING", TemplateBody=json.dumps({"Resources": {
        "Thing": {"Type": "AWS::Foo::Bar"}}}))
    assert wait_status(client, kept) == "CREATE_FAILED"
    client.delete_stack(StackName=kept)

def test_delete_keeps_retained_resources_and_deleted_stacks_are_listed(server):
    endpoint, stack = server.endpoint, unique_name("retain")
    client, s3 = cfn(endpoint), aws_client("s3", endpoint)
    template = """
Resources:
  Kept:
    Type: AWS::S3::Bucket
    DeletionPolicy: Retain
    Properties:
      VersioningConfiguration: {Status: Enabled}
      Tags: [{Key: team, Value: data}]
  Gone:
    Type: AWS::S3::Bucket
Outputs:
  Kept: {Value: !Ref Kept}
  Gone: {Value: !Ref Gone}
"""
    created = client.create_stack(StackName=stack, TemplateBody=template)
    client.get_waiter("stack_create_complete").wait(StackName=stack, WaiterConfig={"Delay": 1})
    out = outputs(client, stack)
    assert s3.get_bucket_versioning(Bucket=out["Kept"])["Status"] == "Enabled"
    assert s3.get_bucket_tagging(Bucket=out["Kept"])["TagSet"] == [{"Key": "team", "Value": "data"}]
    delete(client, stack)
    s3.head_bucket(Bucket=out["Kept"])
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket=out["Gone"])
    events = client.describe_stack_events(StackName=created["StackId"])["StackEvents"]
    assert any(e["LogicalResourceId"] == "Kept" and e["ResourceStatus"] == "DELETE_SKIPPED" for e in events)
    with pytest.raises(ClientError) as missing:
        client.describe_stacks(StackName=stack)
    assert missing.value.response["Error"]["Code"] == "ValidationError"
    assert missing.value.response["Error"]["Message"] == f"Stack with id {stack} does not exist"
    deleted = client.list_stacks(StackStatusFilter=["DELETE_COMPLETE"])["StackSummaries"]
    assert any(s["StackId"] == created["StackId"] for s in deleted)
    assert client.describe_stacks(StackName=created["StackId"])["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"
    s3.delete_bucket(Bucket=out["Kept"])

def test_bad_templates_and_requests_get_aws_errors(server):
    client = cfn(server.endpoint)
    name = unique_name("bad")
    create = lambda body, **kw: client.create_stack(StackName=name, TemplateBody=body, **kw)  # noqa: E731
    code, message = message_of(lambda: create("Resources: [unclosed"))
    assert code == "ValidationError" and message.startswith("Template format error: YAML not well-formed.")
    assert message_of(lambda: create('{"Resources": {"A": {"Type": "AWS::SQS::Queue", "Properties": {"X": {"Ref": "Nope"}}}}}'))[1] == \
        "Template format error: Unresolved resource dependencies [Nope] in the Resources block of the template"
    cycle = {"Resources": {"A": {"Type": "AWS::SQS::Queue", "DependsOn": "B"}, "B": {"Type": "AWS::SQS::Queue", "DependsOn": "A"}}}
    assert message_of(lambda: create(json.dumps(cycle)))[1] == "Circular dependency between resources: [A, B]"
    needs = {"Parameters": {"Size": {"Type": "Number", "MaxValue": 5}}, "Resources": {"A": {"Type": "AWS::SQS::Queue"}}}
    assert message_of(lambda: create(json.dumps(needs)))[1] == "Parameters: [Size] must have values"
    assert message_of(lambda: create(json.dumps(needs), Parameters=[{"ParameterKey": "Size", "ParameterValue": "9"}]))[1] == \
        "Parameter 'Size' must be a number not greater than 5"
    role = {"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}}}}
    code, message = message_of(lambda: create(json.dumps(role)))
    assert code == "InsufficientCapabilitiesException" and message == "Requires capabilities : [CAPABILITY_IAM]"
    assert message_of(lambda: client.describe_stacks(StackName=name)) == ("ValidationError", f"Stack with id {name} does not exist")
    code, message = message_of(lambda: client.create_change_set(
        StackName=name, ChangeSetName="imp", ChangeSetType="IMPORT", TemplateBody=json.dumps(cycle)))
    assert code == "ValidationError" and "IMPORT" in message
    code, message = message_of(lambda: client.detect_stack_drift(StackName=name))
    assert "DetectStackDrift" in message
    sam = "Transform: AWS::Serverless-2016-10-31\nResources:\n  F: {Type: AWS::Serverless::Function}\n"
    assert "AWS::Serverless-2016-10-31" in message_of(lambda: create(sam))[1]
    validated = client.validate_template(TemplateBody="Description: d\nParameters:\n  P: {Type: String, NoEcho: true, Default: x}\n"
                                         "Resources:\n  Q: {Type: AWS::SQS::Queue}\n")
    assert validated["Description"] == "d" and validated["Parameters"][0]["NoEcho"] is True

def test_change_sets_review_in_progress_and_templates_as_submitted(server):
    endpoint, stack = server.endpoint, unique_name("review")
    client = cfn(endpoint)
    body = "# as submitted\nParameters:\n  Secret: {Type: String, NoEcho: true}\nResources:\n  Queue:\n    Type: AWS::SQS::Queue\n"
    created = client.create_change_set(StackName=stack, ChangeSetName="first", ChangeSetType="CREATE", TemplateBody=body,
                                       Parameters=[{"ParameterKey": "Secret", "ParameterValue": "s3cr3t"}],
                                       Tags=[{"Key": "ManagedStackSource", "Value": "AwsSamCli"}])
    described = client.describe_stacks(StackName=stack)["Stacks"][0]
    assert described["StackStatus"] == "REVIEW_IN_PROGRESS"
    events = client.describe_stack_events(StackName=stack)["StackEvents"]
    assert events[0]["ResourceStatus"] == "REVIEW_IN_PROGRESS"
    change = client.describe_change_set(ChangeSetName=created["Id"], StackName=stack)
    assert change["Status"] == "CREATE_COMPLETE" and change["ExecutionStatus"] == "AVAILABLE"
    assert [c["ResourceChange"]["Action"] for c in change["Changes"]] == ["Add"]
    assert client.list_change_sets(StackName=stack)["Summaries"][0]["ChangeSetName"] == "first"
    client.execute_change_set(ChangeSetName=created["Id"], StackName=stack)
    client.get_waiter("stack_create_complete").wait(StackName=created["StackId"], WaiterConfig={"Delay": 1})
    described = client.describe_stacks(StackName=stack)["Stacks"][0]
    assert described["Tags"] == [{"Key": "ManagedStackSource", "Value": "AwsSamCli"}]
    assert described["Parameters"] == [{"ParameterKey": "Secret", "ParameterValue": "****"}]
    assert described["Outputs"] == [] or "Outputs" in described
    assert described["EnableTerminationProtection"] is False
    assert client.get_template(StackName=stack)["TemplateBody"] == body
    processed = client.get_template(StackName=stack, TemplateStage="Processed")["TemplateBody"]
    assert processed["Resources"]["Queue"]["Type"] == "AWS::SQS::Queue"
    assert [p["ParameterKey"] for p in client.get_template_summary(StackName=stack)["Parameters"]] == ["Secret"]
    empty = client.create_change_set(StackName=stack, ChangeSetName="same", TemplateBody=body,
                                     Parameters=[{"ParameterKey": "Secret", "UsePreviousValue": True}])
    with pytest.raises(WaiterError):
        client.get_waiter("change_set_create_complete").wait(ChangeSetName=empty["Id"], StackName=stack,
                                                              WaiterConfig={"Delay": 1})
    failed = client.describe_change_set(ChangeSetName="same", StackName=stack)
    assert failed["Status"] == "FAILED" and failed["ExecutionStatus"] == "UNAVAILABLE"
    assert failed["StatusReason"] == ("The submitted information didn't contain changes. "
                                      "Submit different information to create a change set.")
    client.delete_change_set(ChangeSetName="same", StackName=stack)
    client.update_termination_protection(StackName=stack, EnableTerminationProtection=True)
    code, message = message_of(lambda: client.delete_stack(StackName=stack))
    assert message == f"Stack [{stack}] cannot be deleted while TerminationProtection is enabled"
    client.update_termination_protection(StackName=stack, EnableTerminationProtection=False)
    delete(client, stack)

def test_kill_mid_deploy_ends_in_a_recoverable_status(server_factory):
    srv = server_factory()
    client = cfn(srv.endpoint)
    stack = unique_name("killed")
    queue = unique_name("made-before-kill")
    client.create_stack(StackName=stack, TemplateBody=json.dumps({"Resources": {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": queue}},
        "Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"},
        "Wait": {"Type": "AWS::CloudFormation::WaitCondition", "DependsOn": "Queue",
                 "Properties": {"Handle": {"Ref": "Handle"}, "Timeout": "600"}}}}))
    wait_for(lambda: resources(client, stack).get("Wait", {}).get("ResourceStatus") == "CREATE_IN_PROGRESS")
    srv.kill()  # kill -9 while the stack waits
    srv.start(port=srv.port)
    client = cfn(srv.endpoint)
    assert wait_status(client, stack) == "ROLLBACK_COMPLETE"
    described = client.describe_stacks(StackName=stack)["Stacks"][0]
    events = client.describe_stack_events(StackName=stack)["StackEvents"]
    assert any("nimbus stopped" in (e.get("ResourceStatusReason") or "") for e in events)
    with pytest.raises(ClientError):
        aws_client("sqs", srv.endpoint).get_queue_url(QueueName=queue)
    assert described["StackStatus"] == "ROLLBACK_COMPLETE"
    delete(client, stack)

def test_disable_rollback_keeps_the_failed_update_until_rollback_stack(server):
    endpoint, stack = server.endpoint, unique_name("norollback")
    client, lam = cfn(endpoint), aws_client("lambda", endpoint)
    client.create_stack(StackName=stack, TemplateBody=VERSIONED, Parameters=[{"ParameterKey": "Answer", "ParameterValue": "v1"}])
    assert wait_status(client, stack) == "CREATE_COMPLETE"
    name = outputs(client, stack)["Name"]
    client.update_stack(StackName=stack, TemplateBody=VERSIONED, DisableRollback=True, Parameters=[
        {"ParameterKey": "Answer", "ParameterValue": "v2"}, {"ParameterKey": "Visibility", "ParameterValue": "99999"}])
    assert wait_status(client, stack) == "UPDATE_FAILED"
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "v2"
    client.rollback_stack(StackName=stack)
    assert wait_status(client, stack) == "UPDATE_ROLLBACK_COMPLETE"
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "v1"
    delete(client, stack)

def waiting(queue):
    return json.dumps({"Resources": {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": queue}},
        "Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"},
        "Wait": {"Type": "AWS::CloudFormation::WaitCondition", "DependsOn": "Queue",
                 "Properties": {"Handle": {"Ref": "Handle"}, "Timeout": "600"}}}})


def test_cancel_update_and_delete_during_create_stop_a_waiting_stack(server):
    endpoint = server.endpoint
    client, sqs = cfn(endpoint), aws_client("sqs", endpoint)
    stack, queue = unique_name("stuck"), unique_name("stuck-queue")
    created = client.create_stack(StackName=stack, TemplateBody=waiting(queue))
    wait_for(lambda: resources(client, stack).get("Wait", {}).get("ResourceStatus") == "CREATE_IN_PROGRESS")
    client.delete_stack(StackName=stack)
    assert wait_status(client, created["StackId"]) == "DELETE_COMPLETE"
    events = client.describe_stack_events(StackName=created["StackId"])["StackEvents"]
    assert any(e["LogicalResourceId"] == "Wait" and e.get("ResourceStatusReason") == "Resource creation cancelled" for e in events)
    with pytest.raises(ClientError):
        sqs.get_queue_url(QueueName=queue)

    updated = unique_name("cancelled")
    client.create_stack(StackName=updated, TemplateBody=json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}))
    assert wait_status(client, updated) == "CREATE_COMPLETE"
    code, message = message_of(lambda: client.cancel_update_stack(StackName=updated))
    assert message == "CancelUpdateStack cannot be called from current stack status CREATE_COMPLETE"
    client.update_stack(StackName=updated, TemplateBody=waiting(unique_name("added")))
    wait_for(lambda: resources(client, updated).get("Wait", {}).get("ResourceStatus") == "CREATE_IN_PROGRESS")
    client.cancel_update_stack(StackName=updated)
    assert wait_status(client, updated) == "UPDATE_ROLLBACK_COMPLETE"
    assert sorted(resources(client, updated)) == ["Queue"]
    delete(client, updated)

SAM_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Greeting: {Type: String, Default: hi}
Resources:
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python3.12
      Handler: app.handler
      Role: arn:aws:iam::000000000000:role/r
      Code: ./src
      Environment:
        Variables:
          GREETING: !Ref Greeting
Outputs:
  FunctionName: {Value: !Ref Fn}
"""


def sam_binary():
    import os
    import shutil
    return os.environ.get("NIMBUS_SAM") or shutil.which("sam")


@pytest.mark.skipif(not sam_binary(), reason="the SAM CLI (pip install aws-sam-cli) is not installed")
def test_real_sam_cli_deploys_updates_and_deletes_a_plain_template(server, tmp_path):
    endpoint, stack = server.endpoint, unique_name("samapp")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("import os\ndef handler(e, c):\n    return os.environ['GREETING'] + ' 1'\n")
    (tmp_path / "template.yaml").write_text(SAM_TEMPLATE)
    env = {**aws_cli_env(endpoint, tmp_path), "SAM_CLI_TELEMETRY": "0", "SAM_CLI_POLL_DELAY": "0.5",
           "SAM_CLI_CONTEXT": "", "HOME": str(tmp_path)}

    def sam(*args):
        return subprocess.run([sam_binary(), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)

    deploy_args = ("deploy", "--stack-name", stack, "--resolve-s3", "--no-confirm-changeset",
                   "--parameter-overrides", "Greeting=hello")
    first = sam(*deploy_args)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"Successfully created/updated stack - {stack}" in first.stdout
    client, lam = cfn(endpoint), aws_client("lambda", endpoint)
    managed = client.describe_stacks(StackName="aws-sam-cli-managed-default")["Stacks"][0]
    assert {"Key": "ManagedStackSource", "Value": "AwsSamCli"} in managed["Tags"]
    assert managed["Outputs"][0]["OutputKey"] == "SourceBucket"
    name = outputs(client, stack)["FunctionName"]
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "hello 1"
    (tmp_path / "src" / "app.py").write_text("import os\ndef handler(e, c):\n    return os.environ['GREETING'] + ' 2'\n")
    second = sam(*deploy_args)
    assert second.returncode == 0, second.stdout + second.stderr
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "hello 2"
    same = sam(*deploy_args)
    assert "No changes to deploy" in same.stdout + same.stderr
    gone = sam("delete", "--stack-name", stack, "--no-prompts")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    with pytest.raises(ClientError):
        client.describe_stacks(StackName=stack)
