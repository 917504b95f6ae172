"""CodeDeploy traffic shifting for SAM's `DeploymentPreference`, on nimbus's virtual clock: a
stack update that publishes a new version runs the PreTraffic hook (which reports through
`PutLifecycleEventHookExecutionStatus`), moves the alias by the deployment configuration while
the stack stays UPDATE_IN_PROGRESS, runs the PostTraffic hook, and ends with the alias on the
new version; a hook reporting Failed or an alarm in ALARM rolls the alias and the stack back.
Also the CodeDeploy API the hooks and users call, with boto3 and the aws CLI."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from apps_support import advance
from cfn_support import delete, failures, wait_for, wait_status
from support import aws_cli_env, aws_client, unique_name

CAPS = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]

# `Type` and the alias name come from parameters: the SAM transform resolves them on the
# stack's parameter values.
TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  ShiftType: {Type: String, Default: Canary10Percent5Minutes}
  AliasName: {Type: String, Default: live}
  Verdict: {Type: String, Default: Succeeded}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.11
      Handler: index.handler
      InlineCode: |
        def handler(event, context):
            return "%(answer)s"
      AutoPublishAlias: !Ref AliasName
      DeploymentPreference:
        Type: !Ref ShiftType
        Hooks: {PreTraffic: !Ref PreHook, PostTraffic: !Ref PostHook}
%(alarms)s
  PreHook:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.11
      Handler: index.handler
      Environment: {Variables: {VERDICT: !Ref Verdict}}
      InlineCode: |
        import boto3, os
        def handler(event, context):
            boto3.client("codedeploy").put_lifecycle_event_hook_execution_status(
                deploymentId=event["DeploymentId"],
                lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
                status=os.environ["VERDICT"])
  PostHook:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.11
      Handler: index.handler
      InlineCode: |
        import boto3
        def handler(event, context):
            boto3.client("codedeploy").put_lifecycle_event_hook_execution_status(
                deploymentId=event["DeploymentId"],
                lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
                status="Succeeded")
Outputs:
  Name: {Value: !Ref Fn}
"""


def template(answer, alarm=None):
    alarms = f"        Alarms: [{alarm}]" if alarm else ""
    return TEMPLATE % {"answer": answer, "alarms": alarms}


@pytest.fixture(scope="module")
def clocked(server_factory):
    return server_factory(extra_args=["--clock", "virtual"])


def status(client, stack):
    return client.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]


def deployed(endpoint, stack, parameters=(), alarm=None):
    """A stack on version 1 ("one"), then an update to "two" started; the clients and names."""
    client, lam = aws_client("cloudformation", endpoint), aws_client("lambda", endpoint)
    params = [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters]
    client.create_stack(StackName=stack, TemplateBody=template("one", alarm), Parameters=params, Capabilities=CAPS)
    assert wait_status(client, stack, timeout=120) == "CREATE_COMPLETE", failures(client, stack)
    name = client.describe_stacks(StackName=stack)["Stacks"][0]["Outputs"][0]["OutputValue"]
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"
    client.update_stack(StackName=stack, TemplateBody=template("two", alarm), Parameters=params, Capabilities=CAPS)
    return client, lam, name


def deployment_of(endpoint, function):
    """The CodeDeploy client and the deployment moving `function`'s alias."""
    cd = aws_client("codedeploy", endpoint)

    def find():
        ids = cd.list_deployments()["deployments"]
        return [d for d in ids if function in cd.get_deployment(deploymentId=d)["deploymentInfo"]["description"]]

    return cd, wait_for(find)[0]


def weights(lam, name):
    return lam.get_alias(FunctionName=name, Name="live").get("RoutingConfig", {}).get("AdditionalVersionWeights")


def test_canary_shifts_with_hooks_on_the_clock(clocked):
    endpoint, stack = clocked.endpoint, unique_name("canary")
    client, lam, name = deployed(endpoint, stack)
    # The PreTraffic hook reports, then 10% of invocations go to version 2 for five minutes.
    assert wait_for(lambda: weights(lam, name), timeout=60) == {"2": 0.1}
    assert status(client, stack) == "UPDATE_IN_PROGRESS"
    cd, deployment = deployment_of(endpoint, name)
    info = cd.get_deployment(deploymentId=deployment)["deploymentInfo"]
    assert info["status"] == "InProgress" and info["computePlatform"] == "Lambda"
    assert info["deploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    answers = [json.loads(lam.invoke(FunctionName=name, Qualifier="live")["Payload"].read()) for _ in range(100)]
    assert 0 < answers.count("two") < 35 and answers.count("one") + answers.count("two") == 100
    advance(endpoint, 240)
    time.sleep(0.5)
    assert status(client, stack) == "UPDATE_IN_PROGRESS" and weights(lam, name) == {"2": 0.1}
    advance(endpoint, 61)
    assert wait_status(client, stack, timeout=60) == "UPDATE_COMPLETE", failures(client, stack)
    alias = lam.get_alias(FunctionName=name, Name="live")
    assert alias["FunctionVersion"] == "2" and "RoutingConfig" not in alias
    assert json.loads(lam.invoke(FunctionName=name, Qualifier="live")["Payload"].read()) == "two"
    info = cd.get_deployment(deploymentId=deployment)["deploymentInfo"]
    assert info["status"] == "Succeeded" and "completeTime" in info
    assert info["deploymentGroupName"].startswith(f"{stack}-FnDeploymentGroup")
    listed = cd.list_deployments(applicationName=info["applicationName"], deploymentGroupName=info["deploymentGroupName"],
                                 includeOnlyStatuses=["Succeeded"])["deployments"]
    assert listed == [deployment]
    delete(client, stack)


def test_a_failed_pre_traffic_hook_rolls_the_update_back(server):
    stack = unique_name("hookfail")
    client, lam, name = deployed(server.endpoint, stack, parameters=[("Verdict", "Failed"), ("ShiftType", "AllAtOnce")])
    assert wait_status(client, stack, timeout=120) == "UPDATE_ROLLBACK_COMPLETE", failures(client, stack)
    reasons = [r for _, s, r in failures(client, stack) if s == "UPDATE_FAILED" and r and "HOOK_EXECUTION_FAILURE" in r]
    assert reasons, failures(client, stack)
    alias = lam.get_alias(FunctionName=name, Name="live")
    assert alias["FunctionVersion"] == "1" and "RoutingConfig" not in alias
    assert json.loads(lam.invoke(FunctionName=name, Qualifier="live")["Payload"].read()) == "one"
    cd = aws_client("codedeploy", server.endpoint)
    deployment = reasons[0].split("CodeDeploy deployment ")[1].split()[0]
    info = cd.get_deployment(deploymentId=deployment)["deploymentInfo"]
    assert info["status"] == "Failed" and info["errorInformation"]["code"] == "HOOK_EXECUTION_FAILURE"
    delete(client, stack)


def test_an_alarm_in_alarm_stops_the_shift_and_rolls_back(clocked):
    endpoint, stack = clocked.endpoint, unique_name("alarmed")
    alarm = unique_name("errors")
    cw = aws_client("cloudwatch", endpoint)
    cw.put_metric_alarm(AlarmName=alarm, Namespace="App", MetricName="Errors", Statistic="Sum", Period=60,
                        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")
    client, lam, name = deployed(endpoint, stack, alarm=alarm)
    assert wait_for(lambda: weights(lam, name), timeout=60) == {"2": 0.1}
    cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="errors went up")
    assert wait_status(client, stack, timeout=60) == "UPDATE_ROLLBACK_COMPLETE", failures(client, stack)
    assert any("ALARM_ACTIVE" in (r or "") and alarm in r for _, _, r in failures(client, stack))
    alias = lam.get_alias(FunctionName=name, Name="live")
    assert alias["FunctionVersion"] == "1" and "RoutingConfig" not in alias


def test_stop_deployment_rolls_back_and_the_api_answers_aws_errors(clocked, tmp_path):
    endpoint, stack = clocked.endpoint, unique_name("stopped")
    client, lam, name = deployed(endpoint, stack, parameters=[("ShiftType", "Linear10PercentEvery1Minute")])
    assert wait_for(lambda: weights(lam, name), timeout=60) == {"2": 0.1}
    advance(endpoint, 61)
    assert wait_for(lambda: weights(lam, name) == {"2": 0.2}, timeout=30)
    cd, deployment = deployment_of(endpoint, name)
    # The aws CLI (v2, JSON 1.1) sees the same deployment.
    out = subprocess.run(["/usr/bin/aws", "deploy", "get-deployment", "--deployment-id", deployment, "--endpoint-url", endpoint],
                         env=aws_cli_env(endpoint, tmp_path), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["deploymentInfo"]["status"] == "InProgress"
    assert cd.stop_deployment(deploymentId=deployment)["status"] == "Pending"
    assert wait_status(client, stack, timeout=60) == "UPDATE_ROLLBACK_COMPLETE", failures(client, stack)
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"
    assert cd.get_deployment(deploymentId=deployment)["deploymentInfo"]["status"] == "Stopped"
    with pytest.raises(ClientError) as error:
        cd.stop_deployment(deploymentId=deployment)
    assert error.value.response["Error"]["Code"] == "DeploymentAlreadyCompletedException"
    with pytest.raises(cd.exceptions.DeploymentDoesNotExistException):
        cd.get_deployment(deploymentId="d-ABCDEFGHI")
    with pytest.raises(cd.exceptions.InvalidDeploymentIdException):
        cd.get_deployment(deploymentId="nope")
    with pytest.raises(cd.exceptions.InvalidLifecycleEventHookExecutionIdException):
        cd.put_lifecycle_event_hook_execution_status(deploymentId=deployment, lifecycleEventHookExecutionId="x",
                                                     status="Succeeded")
    with pytest.raises(ClientError) as error:
        cd.create_application(applicationName="x")
    assert error.value.response["Error"]["Code"] == "UnknownOperationException"
    assert "CreateApplication" in error.value.response["Error"]["Message"]


def test_cancel_update_stack_mid_shift_puts_the_alias_back(clocked):
    endpoint, stack = clocked.endpoint, unique_name("cancelled")
    client, lam, name = deployed(endpoint, stack)
    assert wait_for(lambda: weights(lam, name), timeout=60) == {"2": 0.1}
    cd, deployment = deployment_of(endpoint, name)
    client.cancel_update_stack(StackName=stack)
    assert wait_status(client, stack, timeout=60) == "UPDATE_ROLLBACK_COMPLETE", failures(client, stack)
    alias = lam.get_alias(FunctionName=name, Name="live")
    assert alias["FunctionVersion"] == "1" and "RoutingConfig" not in alias
    info = cd.get_deployment(deploymentId=deployment)["deploymentInfo"]
    assert info["status"] == "Stopped" and info["errorInformation"]["code"] == "MANUAL_STOP"
    delete(client, stack)
