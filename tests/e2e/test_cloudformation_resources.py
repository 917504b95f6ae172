"""CloudFormation end to end, what stacks hold: every resource type the services provision,
nested stacks from nimbus's S3, custom resources answering through cfn-response (Python and
Node.js), wait conditions, exports and imports, language extensions, layers of other accounts."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError

from cfn_support import cfn, delete, failures, outputs, resources, wait_for, wait_status
from support import aws_client, make_zip, unique_name


CHILD = """
Parameters:
  Prefix: {Type: String}
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${Prefix}-child"
Outputs:
  QueueName: {Value: !GetAtt Queue.QueueName}
"""


def test_nested_stack_from_nimbus_s3(server):
    endpoint, stack = server.endpoint, unique_name("parent")
    client, s3 = cfn(endpoint), aws_client("s3", endpoint)
    bucket = unique_name("templates")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="nested/child.yaml", Body=CHILD.encode())
    parent = f"""
Resources:
  Child:
    Type: AWS::CloudFormation::Stack
    Properties:
      TemplateURL: {endpoint}/{bucket}/nested/child.yaml
      Parameters:
        Prefix: !Ref AWS::StackName
Outputs:
  FromChild: {{Value: !GetAtt Child.Outputs.QueueName}}
"""
    client.create_stack(StackName=stack, TemplateBody=parent)
    client.get_waiter("stack_create_complete").wait(StackName=stack, WaiterConfig={"Delay": 1})
    assert outputs(client, stack)["FromChild"] == f"{stack}-child"
    child_id = resources(client, stack)["Child"]["PhysicalResourceId"]
    child = client.describe_stacks(StackName=child_id)["Stacks"][0]
    assert child["ParentId"] == client.describe_stacks(StackName=stack)["Stacks"][0]["StackId"]
    assert resources(client, child_id)["Queue"]["ResourceStatus"] == "CREATE_COMPLETE"
    # The amazonaws.com form of the same URL names the same local object.
    aws_form = parent.replace(f"{endpoint}/{bucket}", f"https://{bucket}.s3.us-east-1.amazonaws.com")
    summary = client.get_template_summary(TemplateURL=f"https://s3.amazonaws.com/{bucket}/nested/child.yaml")
    assert [p["ParameterKey"] for p in summary["Parameters"]] == ["Prefix"]
    client.update_stack(StackName=stack, TemplateBody=aws_form.replace("Prefix: !Ref AWS::StackName", "Prefix: renamed"))
    client.get_waiter("stack_update_complete").wait(StackName=stack, WaiterConfig={"Delay": 1})
    assert outputs(client, stack)["FromChild"] == "renamed-child"
    delete(client, stack)
    assert client.describe_stacks(StackName=child_id)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"

CUSTOM = """
Resources:
  Handler:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python3.12
      Handler: index.handler
      Role: arn:aws:iam::000000000000:role/r
      Timeout: 30
      Code:
        ZipFile: |
          import cfnresponse
          def handler(event, context):
              props = event["ResourceProperties"]
              if event["RequestType"] == "Delete":
                  cfnresponse.send(event, context, cfnresponse.SUCCESS, {}, event["PhysicalResourceId"])
              elif props.get("Fail") == "yes":
                  cfnresponse.send(event, context, cfnresponse.FAILED, {}, reason="told to fail")
              else:
                  data = {"Greeting": "hello " + props["Name"], "Size": props["Size"]}
                  cfnresponse.send(event, context, cfnresponse.SUCCESS, data, "greeter-" + props["Name"])
  Greeter:
    Type: Custom::Greeter
    Properties:
      ServiceToken: !GetAtt Handler.Arn
      Name: world
      Size: 3
      Fail: FAILFLAG
Outputs:
  Greeting: {Value: !GetAtt Greeter.Greeting}
  Size: {Value: !GetAtt Greeter.Size}
  Id: {Value: !Ref Greeter}
"""


def test_custom_resource_answers_through_cfn_response(server):
    endpoint, stack = server.endpoint, unique_name("custom")
    client = cfn(endpoint)
    client.create_stack(StackName=stack, TemplateBody=CUSTOM.replace("FAILFLAG", "no"))
    client.get_waiter("stack_create_complete").wait(StackName=stack, WaiterConfig={"Delay": 1})
    assert outputs(client, stack) == {"Greeting": "hello world", "Size": "3", "Id": "greeter-world"}
    # A new physical id from an update replaces the resource: the old one is deleted in cleanup.
    client.update_stack(StackName=stack, TemplateBody=CUSTOM.replace("FAILFLAG", "no").replace("Name: world", "Name: moon"))
    assert wait_status(client, stack) == "UPDATE_COMPLETE", failures(client, stack)
    assert outputs(client, stack)["Id"] == "greeter-moon"
    events = client.describe_stack_events(StackName=stack)["StackEvents"]
    assert any(e["LogicalResourceId"] == "Greeter" and e["ResourceStatus"] == "DELETE_COMPLETE"
               and e["PhysicalResourceId"] == "greeter-world" for e in events)
    client.update_stack(StackName=stack, TemplateBody=CUSTOM.replace("FAILFLAG", "yes"))
    assert wait_status(client, stack) == "UPDATE_ROLLBACK_COMPLETE"
    events = client.describe_stack_events(StackName=stack)["StackEvents"]
    failed = next(e for e in events if e["ResourceStatus"] == "UPDATE_FAILED")
    assert "Received response status [FAILED] from custom resource. Message returned: told to fail" in failed["ResourceStatusReason"]
    delete(client, stack)

NODE_CUSTOM = """
Resources:
  Handler:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: nodejs20.x
      Handler: index.handler
      Role: arn:aws:iam::000000000000:role/r
      Code:
        ZipFile: |
          const response = require("cfn-response");
          exports.handler = function (event, context) {
            const id = event.PhysicalResourceId || "node-" + event.ResourceProperties.Name;
            response.send(event, context, response.SUCCESS, {Upper: event.ResourceProperties.Name.toUpperCase()}, id);
          };
  Shout:
    Type: AWS::CloudFormation::CustomResource
    Properties:
      ServiceToken: !GetAtt Handler.Arn
      Name: quiet
Outputs:
  Upper: {Value: !GetAtt Shout.Upper}
"""


def test_inline_node_code_gets_the_cfn_response_module(server):
    endpoint, stack = server.endpoint, unique_name("node-custom")
    client = cfn(endpoint)
    client.create_stack(StackName=stack, TemplateBody=NODE_CUSTOM)
    assert wait_status(client, stack) == "CREATE_COMPLETE", failures(client, stack)
    assert outputs(client, stack) == {"Upper": "QUIET"}
    delete(client, stack)

def test_exports_imports_and_an_export_in_use_blocks_deletion(server):
    endpoint = server.endpoint
    client = cfn(endpoint)
    exporter, importer = unique_name("exporter"), unique_name("importer")
    export = f"{exporter}-queue-url"
    client.create_stack(StackName=exporter, TemplateBody=json.dumps({
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"Url": {"Value": {"Ref": "Queue"}, "Export": {"Name": {"Fn::Sub": "${AWS::StackName}-queue-url"}}}}}))
    client.get_waiter("stack_create_complete").wait(StackName=exporter, WaiterConfig={"Delay": 1})
    exports = {e["Name"]: e for e in client.list_exports()["Exports"]}
    assert exports[export]["Value"] == outputs(client, exporter)["Url"]
    client.create_stack(StackName=importer, TemplateBody=json.dumps({
        "Resources": {"Policy": {"Type": "AWS::SQS::QueuePolicy", "Properties": {
            "Queues": [{"Fn::ImportValue": export}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": "*"}]}}}}}))
    client.get_waiter("stack_create_complete").wait(StackName=importer, WaiterConfig={"Delay": 1})
    assert client.list_imports(ExportName=export)["Imports"] == [importer]
    # The export may not change while imported: the update rolls back.
    client.update_stack(StackName=exporter, TemplateBody=json.dumps({
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"Url": {"Value": "changed", "Export": {"Name": {"Fn::Sub": "${AWS::StackName}-queue-url"}}}}}))
    assert wait_status(client, exporter) == "UPDATE_ROLLBACK_COMPLETE"
    events = client.describe_stack_events(StackName=exporter)["StackEvents"]
    reason = next(e for e in events if e["ResourceStatus"] == "UPDATE_ROLLBACK_IN_PROGRESS")["ResourceStatusReason"]
    assert reason == f"Cannot update export {export} as it is in use by {importer}"
    client.delete_stack(StackName=exporter)
    assert wait_status(client, exporter) == "DELETE_FAILED"
    reason = client.describe_stacks(StackName=exporter)["Stacks"][0]["StackStatusReason"]
    assert reason == f"Export {export} cannot be deleted as it is in use by {importer}"
    client.delete_stack(StackName=importer)
    client.get_waiter("stack_delete_complete").wait(StackName=importer, WaiterConfig={"Delay": 1})
    with pytest.raises(ClientError) as none:
        client.list_imports(ExportName=export)
    assert none.value.response["Error"]["Message"] == f"Export '{export}' is not imported by any stack."
    client.delete_stack(StackName=exporter)
    client.get_waiter("stack_delete_complete").wait(StackName=exporter, WaiterConfig={"Delay": 1})

def test_wait_condition_signalled_through_its_handle_url(server):
    import urllib.request
    client = cfn(server.endpoint)
    stack = unique_name("signal")
    client.create_stack(StackName=stack, TemplateBody=json.dumps({"Resources": {
        "Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"},
        "Wait": {"Type": "AWS::CloudFormation::WaitCondition",
                 "Properties": {"Handle": {"Ref": "Handle"}, "Timeout": "60"}}},
        "Outputs": {"Data": {"Value": {"Fn::GetAtt": ["Wait", "Data"]}}}}))
    url = wait_for(lambda: resources(client, stack).get("Handle", {}).get("PhysicalResourceId"))
    signal = json.dumps({"Status": "SUCCESS", "UniqueId": "i-1", "Data": "ready", "Reason": "done"}).encode()
    urllib.request.urlopen(urllib.request.Request(url, data=signal, method="PUT"))
    client.get_waiter("stack_create_complete").wait(StackName=stack, WaiterConfig={"Delay": 1})
    assert json.loads(outputs(client, stack)["Data"]) == {"i-1": "ready"}
    client.delete_stack(StackName=stack)

EVERY_TYPE = """
Parameters:
  Bucket: {Type: String}
  Description: {Type: String, Default: first}
Conditions:
  First: !Equals [!Ref Description, first]
Resources:
  Layer:
    Type: AWS::Lambda::LayerVersion
    Properties:
      Content: {S3Bucket: !Ref Bucket, S3Key: layer.zip}
      CompatibleRuntimes: [python3.12]
  LayerShare:
    Type: AWS::Lambda::LayerVersionPermission
    Properties:
      LayerVersionArn: !Ref Layer
      Action: lambda:GetLayerVersion
      Principal: "*"
  Function:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python3.12
      Handler: index.handler
      Role: !GetAtt Role.Arn
      Layers: [!Ref Layer]
      MemorySize: "256"
      Code:
        ZipFile: |
          import shared
          def handler(event, context):
              return shared.VALUE
  Version:
    Type: AWS::Lambda::Version
    Properties:
      FunctionName: !Ref Function
      Description: !Ref Description
  Alias:
    Type: AWS::Lambda::Alias
    Properties:
      FunctionName: !Ref Function
      FunctionVersion: !GetAtt Version.Version
      Name: live
  Url:
    Type: AWS::Lambda::Url
    Properties:
      TargetFunctionArn: !Ref Alias
      AuthType: NONE
  InvokeConfig:
    Type: AWS::Lambda::EventInvokeConfig
    Properties:
      FunctionName: !Ref Function
      Qualifier: $LATEST
      MaximumRetryAttempts: 1
  Queue:
    Type: AWS::SQS::Queue
  QueueAccess:
    Type: AWS::SQS::QueueInlinePolicy
    Properties:
      Queue: !Ref Queue
      PolicyDocument: {Statement: [{Effect: Allow, Principal: "*", Action: sqs:SendMessage, Resource: !GetAtt Queue.Arn}]}
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      EventSourceArn: !GetAtt Queue.Arn
      FunctionName: !Ref Function
      BatchSize: 5
  Logs:
    Type: AWS::Logs::LogGroup
    Properties:
      RetentionInDays: 7
  Stream:
    Type: AWS::Logs::LogStream
    Properties: {LogGroupName: !Ref Logs, LogStreamName: app}
  Metric:
    Type: AWS::Logs::MetricFilter
    Properties:
      LogGroupName: !Ref Logs
      FilterPattern: ERROR
      MetricTransformations: [{MetricName: Errors, MetricNamespace: App, MetricValue: "1"}]
  Subscription:
    Type: AWS::Logs::SubscriptionFilter
    Properties: {LogGroupName: !Ref Logs, FilterPattern: "", DestinationArn: !GetAtt Function.Arn}
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {Statement: [{Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}]}
      Policies:
        - PolicyName: inline
          PolicyDocument: {Statement: [{Effect: Allow, Action: sqs:*, Resource: "*"}]}
  Managed:
    Type: AWS::IAM::ManagedPolicy
    Properties:
      PolicyDocument: {Statement: [{Effect: Allow, Action: s3:GetObject, Resource: "*"}]}
      Roles: [!Ref Role]
  Profile:
    Type: AWS::IAM::InstanceProfile
    Properties:
      Roles: [!Ref Role]
  Team:
    Type: AWS::IAM::Group
    Properties:
      ManagedPolicyArns: [!Ref Managed]
  Person:
    Type: AWS::IAM::User
    Properties:
      Groups: [!Ref Team]
      Policies:
        - PolicyName: own
          PolicyDocument: {Statement: [{Effect: Allow, Action: s3:ListBucket, Resource: "*"}]}
  Key:
    Type: AWS::IAM::AccessKey
    Properties:
      UserName: !Ref Person
      Status: !If [First, Active, Inactive]
  BucketPolicy:
    Type: AWS::S3::BucketPolicy
    Properties:
      Bucket: !Ref Bucket
      PolicyDocument: {Statement: [{Effect: Allow, Principal: "*", Action: s3:GetObject, Resource: !Sub "arn:aws:s3:::${Bucket}/*"}]}
Outputs:
  Function: {Value: !Ref Function}
  Version: {Value: !GetAtt Version.Version}
  Url: {Value: !GetAtt Url.FunctionUrl}
  Mapping: {Value: !Ref Mapping}
  Logs: {Value: !Ref Logs}
  Role: {Value: !Ref Role}
  Managed: {Value: !Ref Managed}
  Profile: {Value: !Ref Profile}
  Layer: {Value: !Ref Layer}
  Person: {Value: !Ref Person}
  Key: {Value: !Ref Key}
  Secret: {Value: !GetAtt Key.SecretAccessKey}
"""


def test_every_provider_type_is_provisioned_by_its_service(server):
    import io
    import zipfile
    endpoint, stack = server.endpoint, unique_name("every")
    client, lam, s3, iam, logs = (cfn(endpoint), aws_client("lambda", endpoint), aws_client("s3", endpoint),
                                  aws_client("iam", endpoint), aws_client("logs", endpoint))
    bucket = unique_name("code")
    s3.create_bucket(Bucket=bucket)
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as archive:
        entry = zipfile.ZipInfo("python/shared.py")
        entry.external_attr = 0o644 << 16
        archive.writestr(entry, "VALUE = 'from the layer'\n")
    s3.put_object(Bucket=bucket, Key="layer.zip", Body=layer.getvalue())
    params = [{"ParameterKey": "Bucket", "ParameterValue": bucket}]
    client.create_stack(StackName=stack, TemplateBody=EVERY_TYPE, Parameters=params, Capabilities=["CAPABILITY_IAM"])
    assert wait_status(client, stack) == "CREATE_COMPLETE", failures(client, stack)
    out = outputs(client, stack)
    assert json.loads(lam.invoke(FunctionName=out["Function"], Qualifier="live")["Payload"].read()) == "from the layer"
    config = lam.get_function_configuration(FunctionName=out["Function"])
    assert config["MemorySize"] == 256 and config["Layers"][0]["Arn"] == out["Layer"]
    assert lam.get_alias(FunctionName=out["Function"], Name="live")["FunctionVersion"] == out["Version"] == "1"
    assert lam.get_function_url_config(FunctionName=out["Function"], Qualifier="live")["FunctionUrl"] == out["Url"]
    assert lam.get_function_event_invoke_config(FunctionName=out["Function"])["MaximumRetryAttempts"] == 1
    assert lam.get_event_source_mapping(UUID=out["Mapping"])["BatchSize"] == 5
    queue_url = resources(client, stack)["Queue"]["PhysicalResourceId"]
    policy = aws_client("sqs", endpoint).get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy"])
    assert "sqs:SendMessage" in policy["Attributes"]["Policy"]
    group = logs.describe_log_groups(logGroupNamePrefix=out["Logs"])["logGroups"][0]
    assert group["retentionInDays"] == 7
    assert [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=out["Logs"])["logStreams"]] == ["app"]
    metric = logs.describe_metric_filters(logGroupName=out["Logs"])["metricFilters"][0]
    assert metric["filterPattern"] == "ERROR" and metric["metricTransformations"][0]["metricName"] == "Errors"
    subscription = logs.describe_subscription_filters(logGroupName=out["Logs"])["subscriptionFilters"][0]
    assert subscription["destinationArn"].endswith(":function:" + out["Function"])
    assert iam.get_role_policy(RoleName=out["Role"], PolicyName="inline")["PolicyName"] == "inline"
    attached = iam.list_attached_role_policies(RoleName=out["Role"])["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [out["Managed"]]
    assert iam.get_instance_profile(InstanceProfileName=out["Profile"])["InstanceProfile"]["Roles"][0]["RoleName"] == out["Role"]
    assert "s3:GetObject" in s3.get_bucket_policy(Bucket=bucket)["Policy"]
    assert iam.get_user_policy(UserName=out["Person"], PolicyName="own")["PolicyName"] == "own"
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName=out["Person"])["Groups"]] == [
        resources(client, stack)["Team"]["PhysicalResourceId"]]
    keys = iam.list_access_keys(UserName=out["Person"])["AccessKeyMetadata"]
    assert [(k["AccessKeyId"], k["Status"]) for k in keys] == [(out["Key"], "Active")] and len(out["Secret"]) >= 20
    layer_name, layer_version = out["Layer"].split(":")[6:8]
    shared = lam.get_layer_version_policy(LayerName=layer_name, VersionNumber=int(layer_version))["Policy"]
    assert "lambda:GetLayerVersion" in shared
    # A new version (versions are immutable: replaced) moves the alias; the old version goes.
    client.update_stack(StackName=stack, TemplateBody=EVERY_TYPE, Capabilities=["CAPABILITY_IAM"],
                        Parameters=params + [{"ParameterKey": "Description", "ParameterValue": "second"}])
    assert wait_status(client, stack) == "UPDATE_COMPLETE", failures(client, stack)
    assert lam.get_alias(FunctionName=out["Function"], Name="live")["FunctionVersion"] == "2"
    versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName=out["Function"])["Versions"]]
    assert versions == ["$LATEST", "2"]
    keys = iam.list_access_keys(UserName=out["Person"])["AccessKeyMetadata"]
    assert [k["Status"] for k in keys] == ["Inactive"] and outputs(client, stack)["Secret"] == out["Secret"]
    delete(client, stack)
    with pytest.raises(ClientError):
        lam.get_function(FunctionName=out["Function"])
    with pytest.raises(ClientError):
        iam.get_role(RoleName=out["Role"])
    with pytest.raises(ClientError):
        iam.get_user(UserName=out["Person"])
    assert logs.describe_log_groups(logGroupNamePrefix=out["Logs"])["logGroups"] == []
    with pytest.raises(ClientError):
        s3.get_bucket_policy(Bucket=bucket)

LAYER_PROBE = """
def handler(e, c):
    try:
        import powertools_marker
        return powertools_marker.VALUE
    except ImportError:
        return "missing"
"""


def test_layers_of_other_accounts_are_named_until_imported(server, nimbus_bin, tmp_path):
    endpoint, stack = server.endpoint, unique_name("powertools")
    client, lam = cfn(endpoint), aws_client("lambda", endpoint)
    # A version no other test imports (the layer store is the server's).
    powertools = f"arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-x86_64:{uuid.uuid4().int % 10**6}"
    client.create_stack(StackName=stack, TemplateBody=json.dumps({"Resources": {"Fn": {
        "Type": "AWS::Lambda::Function", "Properties": {
            "Runtime": "python3.12", "Handler": "index.handler", "Role": "arn:aws:iam::000000000000:role/r",
            "Layers": [powertools], "Code": {"ZipFile": LAYER_PROBE}}}},
        "Outputs": {"Name": {"Value": {"Ref": "Fn"}}}}))
    assert wait_status(client, stack) == "CREATE_COMPLETE", failures(client, stack)
    events = client.describe_stack_events(StackName=stack)["StackEvents"]
    done = next(e for e in events if e["LogicalResourceId"] == "Fn" and e["ResourceStatus"] == "CREATE_COMPLETE")
    assert powertools in done["ResourceStatusReason"]
    name = outputs(client, stack)["Name"]
    assert [layer["Arn"] for layer in lam.get_function_configuration(FunctionName=name)["Layers"]] == [powertools]
    # The function runs without it, and its first log line says which layer is missing.
    reply = lam.invoke(FunctionName=name, LogType="Tail")
    assert json.loads(reply["Payload"].read()) == "missing"
    tail = base64.b64decode(reply["LogResult"]).decode()
    assert f"nimbus: layer {powertools} is not in nimbus" in tail.splitlines()[0], tail
    # `nimbus layers import ARN ZIP` brings it: the next environment has it at /opt.
    zip_path = tmp_path / "powertools.zip"
    zip_path.write_bytes(make_zip({"python/powertools_marker.py": "VALUE = 'present'\n"}))
    out = subprocess.run([str(nimbus_bin), "layers", "import", powertools, str(zip_path), "--endpoint", endpoint],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and f"imported {powertools}" in out.stdout, out.stderr
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "present"
    got = lam.get_layer_version_by_arn(Arn=powertools)
    assert got["LayerVersionArn"] == powertools and got["Version"] == int(powertools.rsplit(":", 1)[1])
    # Not this account's layer: ListLayers does not show it.
    assert all("017000801446" not in layer["LayerArn"] for layer in lam.list_layers()["Layers"])
    bad = subprocess.run([str(nimbus_bin), "layers", "import", "arn:aws:lambda:us-east-1:000000000000:layer:mine:1",
                          str(zip_path), "--endpoint", endpoint], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "not the ARN of a layer version of another account" in bad.stderr
    delete(client, stack)

LOOPS = """
Transform: AWS::LanguageExtensions
Parameters:
  Names: {Type: CommaDelimitedList}
Resources:
  Fn::ForEach::Queues:
    - Name
    - !Ref Names
    - Queue${Name}:
        Type: AWS::SQS::Queue
        Properties:
          QueueName: !Sub "${AWS::StackName}-${Name}"
Outputs:
  Count:
    Value: !Length {Ref: Names}
  Json:
    Value: !ToJsonString {names: !Ref Names}
"""


def test_language_extensions_loops_and_functions(server):
    endpoint, stack = server.endpoint, unique_name("loops")
    client, sqs = cfn(endpoint), aws_client("sqs", endpoint)
    client.create_stack(StackName=stack, TemplateBody=LOOPS, Parameters=[{"ParameterKey": "Names", "ParameterValue": "red,blue"}])
    assert wait_status(client, stack) == "CREATE_COMPLETE", failures(client, stack)
    assert sorted(resources(client, stack)) == ["Queueblue", "Queuered"]
    sqs.get_queue_url(QueueName=f"{stack}-blue")
    assert outputs(client, stack) == {"Count": "2", "Json": '{"names":["red","blue"]}'}
    client.update_stack(StackName=stack, TemplateBody=LOOPS, Parameters=[{"ParameterKey": "Names", "ParameterValue": "red"}])
    assert wait_status(client, stack) == "UPDATE_COMPLETE", failures(client, stack)
    assert sorted(resources(client, stack)) == ["Queuered"]
    assert client.get_template(StackName=stack)["TemplateBody"] == LOOPS
    delete(client, stack)
