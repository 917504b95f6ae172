"""CloudWatch alarms acting on capacity: Auto Scaling policies (simple, step, target tracking with
the alarms AWS creates for it) change a group's desired capacity and real instances follow; EC2
alarm actions stop an instance. On a virtual clock, so alarm periods pass at once."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from support import aws_cli_env, aws_client
from test_ec2 import X86_AMI, admin, error_code, state, until


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(extra_args=["--clock", "virtual", "--capacity", "vcpus=32,memory=32"])


def advance(srv, seconds=60):
    admin(srv.endpoint, f"/_nimbus/clock/advance?seconds={seconds}", method="POST")


def group_of(autoscaling, name):
    return autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def make_group(srv, name, desired=1, maximum=3):
    ec2 = aws_client("ec2", srv.endpoint)
    autoscaling = aws_client("autoscaling", srv.endpoint)
    ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": X86_AMI, "InstanceType": "t3.nano"})
    autoscaling.create_auto_scaling_group(AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateName": name},
                                          MinSize=1, MaxSize=maximum, DesiredCapacity=desired,
                                          AvailabilityZones=["us-east-1a"])
    return autoscaling


def test_an_alarm_runs_a_simple_policy_and_instances_follow(srv, tmp_path):
    name = f"simple-{uuid.uuid4().hex[:8]}"
    autoscaling = make_group(srv, name)
    cw = aws_client("cloudwatch", srv.endpoint)
    policy = autoscaling.put_scaling_policy(AutoScalingGroupName=name, PolicyName="out", PolicyType="SimpleScaling",
                                            AdjustmentType="ChangeInCapacity", ScalingAdjustment=1, Cooldown=120)
    arn = policy["PolicyARN"]
    assert arn.startswith("arn:aws:autoscaling:us-east-1:") and f":autoScalingGroupName/{name}:policyName/out" in arn
    alarm = f"load-{name}"
    cw.put_metric_alarm(AlarmName=alarm, Namespace="App", MetricName=f"Load-{name}", Statistic="Average", Period=60,
                        EvaluationPeriods=1, Threshold=50, ComparisonOperator="GreaterThanThreshold", AlarmActions=[arn])
    cw.put_metric_data(Namespace="App", MetricData=[{"MetricName": f"Load-{name}", "Value": 90}])
    advance(srv)
    until("the alarm scaled the group out", lambda: group_of(autoscaling, name)["DesiredCapacity"] == 2)
    described = cw.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]
    assert described["StateValue"] == "ALARM"
    assert json.loads(described["StateReasonData"])["recentDatapoints"] == [90.0]
    until("two instances in service", lambda: len([i for i in group_of(autoscaling, name)["Instances"]
                                                    if i["LifecycleState"] == "InService"]) == 2)
    causes = [a["Cause"] for a in autoscaling.describe_scaling_activities(AutoScalingGroupName=name)["Activities"]]
    assert any(f"a monitor alarm {alarm} in state ALARM triggered policy out changing the desired capacity from 1 to 2." in c
               for c in causes), causes

    # Still in ALARM a period later, but inside the policy's cooldown: no second step.
    cw.put_metric_data(Namespace="App", MetricData=[{"MetricName": f"Load-{name}", "Value": 95}])
    advance(srv)
    cw.describe_alarms(AlarmNames=[alarm])
    assert group_of(autoscaling, name)["DesiredCapacity"] == 2

    # ExecutePolicy by hand, honouring the cooldown.
    with pytest.raises(ClientError) as excinfo:
        autoscaling.execute_policy(AutoScalingGroupName=name, PolicyName="out", HonorCooldown=True)
    assert error_code(excinfo)[0] == "ScalingActivityInProgress"
    autoscaling.execute_policy(AutoScalingGroupName=name, PolicyName="out")
    assert group_of(autoscaling, name)["DesiredCapacity"] == 3

    env = aws_cli_env(srv.endpoint, tmp_path)
    listed = subprocess.run(["aws", "autoscaling", "describe-policies", "--auto-scaling-group-name", name, "--output", "json"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    [stored] = json.loads(listed.stdout)["ScalingPolicies"]
    assert (stored["PolicyName"], stored["PolicyType"], stored["ScalingAdjustment"], stored["Cooldown"]) == ("out", "SimpleScaling", 1, 120)
    autoscaling.delete_policy(AutoScalingGroupName=name, PolicyName="out")
    assert autoscaling.describe_policies(AutoScalingGroupName=name)["ScalingPolicies"] == []
    with pytest.raises(ClientError) as excinfo:
        autoscaling.delete_policy(AutoScalingGroupName=name, PolicyName="out")
    assert error_code(excinfo) == ("ValidationError", "No such policy: out")
    cw.delete_alarms(AlarmNames=[alarm])
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)


def test_step_policies_pick_the_step_by_the_breach(srv):
    name = f"step-{uuid.uuid4().hex[:8]}"
    autoscaling = make_group(srv, name, desired=2, maximum=6)
    autoscaling.put_scaling_policy(
        AutoScalingGroupName=name, PolicyName="steps", PolicyType="StepScaling", AdjustmentType="ChangeInCapacity",
        StepAdjustments=[{"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 20, "ScalingAdjustment": 1},
                         {"MetricIntervalLowerBound": 20, "ScalingAdjustment": 3}])
    # 85 is 35 above a threshold of 50: the second step.
    autoscaling.execute_policy(AutoScalingGroupName=name, PolicyName="steps", MetricValue=85, BreachThreshold=50)
    assert group_of(autoscaling, name)["DesiredCapacity"] == 5
    with pytest.raises(ClientError) as excinfo:
        autoscaling.execute_policy(AutoScalingGroupName=name, PolicyName="steps")
    assert error_code(excinfo)[0] == "ValidationError"
    [stored] = autoscaling.describe_policies(AutoScalingGroupName=name, PolicyTypes=["StepScaling"])["ScalingPolicies"]
    assert stored["StepAdjustments"][1] == {"MetricIntervalLowerBound": 20.0, "ScalingAdjustment": 3}
    with pytest.raises(ClientError) as excinfo:
        autoscaling.put_scaling_policy(AutoScalingGroupName=name, PolicyName="bad", PolicyType="StepScaling",
                                       AdjustmentType="ChangeInCapacity")
    assert error_code(excinfo) == ("ValidationError", "StepAdjustments is required for policy type StepScaling")
    autoscaling.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=1)
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)


def test_target_tracking_creates_its_alarms_and_scales_out_above_target(srv):
    name = f"track-{uuid.uuid4().hex[:8]}"
    autoscaling = make_group(srv, name)
    cw = aws_client("cloudwatch", srv.endpoint)
    metric = {"MetricName": f"Depth-{name}", "Namespace": "Jobs", "Statistic": "Average",
              "Dimensions": [{"Name": "Queue", "Value": name}]}
    made = autoscaling.put_scaling_policy(
        AutoScalingGroupName=name, PolicyName="track", PolicyType="TargetTrackingScaling",
        TargetTrackingConfiguration={"CustomizedMetricSpecification": metric, "TargetValue": 10.0})
    names = sorted(a["AlarmName"] for a in made["Alarms"])
    assert len(names) == 2
    assert names[0].startswith(f"TargetTracking-{name}-AlarmHigh-") and names[1].startswith(f"TargetTracking-{name}-AlarmLow-")
    alarms = {a["AlarmName"]: a for a in cw.describe_alarms(AlarmNames=names)["MetricAlarms"]}
    high, low = alarms[names[0]], alarms[names[1]]
    assert (high["Threshold"], high["ComparisonOperator"], high["EvaluationPeriods"]) == (10.0, "GreaterThanThreshold", 3)
    assert (low["Threshold"], low["ComparisonOperator"], low["EvaluationPeriods"]) == (9.0, "LessThanThreshold", 15)
    assert high["AlarmActions"] == [made["PolicyARN"]] and high["Dimensions"] == metric["Dimensions"]

    for _ in range(3):
        cw.put_metric_data(Namespace="Jobs", MetricData=[{"MetricName": metric["MetricName"], "Value": 25,
                                                          "Dimensions": metric["Dimensions"]}])
        advance(srv)
    # 25 against a target of 10 from 1 instance: ceil(1 × 25 / 10) = 3.
    until("target tracking scaled out", lambda: group_of(autoscaling, name)["DesiredCapacity"] == 3)
    [stored] = autoscaling.describe_policies(AutoScalingGroupName=name)["ScalingPolicies"]
    assert stored["TargetTrackingConfiguration"]["TargetValue"] == 10.0
    assert sorted(a["AlarmName"] for a in stored["Alarms"]) == names
    autoscaling.delete_policy(AutoScalingGroupName=name, PolicyName="track")
    assert cw.describe_alarms(AlarmNames=names)["MetricAlarms"] == []
    autoscaling.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=1)
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)


def test_an_ec2_alarm_action_stops_the_instance(srv):
    ec2 = aws_client("ec2", srv.endpoint)
    cw = aws_client("cloudwatch", srv.endpoint)
    [instance] = ec2.run_instances(ImageId=X86_AMI, InstanceType="t3.nano", MinCount=1, MaxCount=1)["Instances"]
    iid = instance["InstanceId"]
    until("running", lambda: state(ec2, iid) == "running")
    alarm = f"idle-{iid}"
    cw.put_metric_alarm(AlarmName=alarm, Namespace="App", MetricName="Idle", Statistic="Average", Period=60,
                        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold",
                        Dimensions=[{"Name": "InstanceId", "Value": iid}],
                        AlarmActions=["arn:aws:automate:us-east-1:ec2:stop"])
    cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="testing")
    until("stopped by the alarm", lambda: state(ec2, iid) == "stopped")
    ec2.terminate_instances(InstanceIds=[iid])
    cw.delete_alarms(AlarmNames=[alarm])


def test_a_template_wires_an_alarm_to_a_scaling_policy(srv, tmp_path):
    from cfn_support import cfn, delete, deploy, failures, outputs

    name = f"cfn-{uuid.uuid4().hex[:8]}"
    aws_client("ec2", srv.endpoint).create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData={"ImageId": X86_AMI, "InstanceType": "t3.nano"})
    template = f"""
Resources:
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      AutoScalingGroupName: {name}
      MinSize: 1
      MaxSize: 2
      DesiredCapacity: 1
      AvailabilityZones: [us-east-1a]
      LaunchTemplate: {{LaunchTemplateName: {name}, Version: "1"}}
  ScaleOut:
    Type: AWS::AutoScaling::ScalingPolicy
    Properties:
      AutoScalingGroupName: !Ref Group
      PolicyType: SimpleScaling
      AdjustmentType: ChangeInCapacity
      ScalingAdjustment: 1
  Busy:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: busy-{name}
      Namespace: App
      MetricName: Busy-{name}
      Statistic: Maximum
      Period: 60
      EvaluationPeriods: "1"
      Threshold: 1
      ComparisonOperator: GreaterThanOrEqualToThreshold
      AlarmActions: [!Ref ScaleOut]
Outputs:
  Policy:
    Value: !Ref ScaleOut
"""
    client = cfn(srv.endpoint)
    done = deploy(srv.endpoint, tmp_path, name, template)
    assert done.returncode == 0, (done.stderr, failures(client, name))
    policy = outputs(client, name)["Policy"]
    assert policy.startswith("arn:aws:autoscaling:") and f":autoScalingGroupName/{name}:" in policy
    autoscaling = aws_client("autoscaling", srv.endpoint)
    cw = aws_client("cloudwatch", srv.endpoint)
    [alarm] = cw.describe_alarms(AlarmNames=[f"busy-{name}"])["MetricAlarms"]
    assert alarm["AlarmActions"] == [policy] and alarm["EvaluationPeriods"] == 1
    cw.put_metric_data(Namespace="App", MetricData=[{"MetricName": f"Busy-{name}", "Value": 3}])
    advance(srv)
    until("the template's alarm scaled out", lambda: group_of(autoscaling, name)["DesiredCapacity"] == 2)
    delete(client, name)
    assert autoscaling.describe_policies(AutoScalingGroupName=name)["ScalingPolicies"] == []
    assert cw.describe_alarms(AlarmNames=[f"busy-{name}"])["MetricAlarms"] == []
