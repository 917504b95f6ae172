"""EC2 Auto Scaling end to end with boto3: groups over launch templates that keep their desired
capacity through a spot interruption (mixed on-demand and spot), capacity rebalancing at the
notice, and scheduled actions on a virtual clock."""

from __future__ import annotations

import time
import uuid

import pytest
from botocore.exceptions import ClientError

from support import aws_client
from test_ec2 import ARM_AMI, NOTICE_SECONDS, X86_AMI, admin, ec2, ec2_server, error_code, instance, state, until  # noqa: F401


def test_an_auto_scaling_group_keeps_its_desired_capacity_through_an_interruption(ec2, ec2_server):
    autoscaling = aws_client("autoscaling", ec2_server.endpoint)
    name = f"asg-{uuid.uuid4().hex[:8]}"
    template = ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={
        "ImageId": X86_AMI, "InstanceType": "t3.micro",
        "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "data"}]}]})
    assert template["LaunchTemplate"]["LatestVersionNumber"] == 1
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name, MinSize=1, MaxSize=3, DesiredCapacity=2, AvailabilityZones=["us-east-1a", "us-east-1b"],
        MixedInstancesPolicy={
            "LaunchTemplate": {"LaunchTemplateSpecification": {"LaunchTemplateName": name, "Version": "$Latest"},
                               "Overrides": [{"InstanceType": "t3.nano"}]},
            "InstancesDistribution": {"OnDemandBaseCapacity": 1, "OnDemandPercentageAboveBaseCapacity": 0}})

    def members():
        group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
        return [i for i in group["Instances"] if i["LifecycleState"] == "InService"]

    def running_members():
        found = members()
        return found if len(found) == 2 and all(state(ec2, i["InstanceId"]) == "running" for i in found) else None

    first = until("two members in service", running_members)
    described = {i["InstanceId"]: instance(ec2, i["InstanceId"]) for i in first}
    spot = [iid for iid, i in described.items() if i.get("InstanceLifecycle") == "spot"]
    assert len(spot) == 1, described  # the on-demand base is 1, 0 % above it
    assert all(i["InstanceType"] == "t3.nano" for i in described.values())
    assert all({"Key": "aws:autoscaling:groupName", "Value": name} in i["Tags"] and {"Key": "team", "Value": "data"} in i["Tags"]
               for i in described.values())
    with pytest.raises(ClientError) as excinfo:
        autoscaling.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=5)
    assert error_code(excinfo) == ("ValidationError", "New SetDesiredCapacity value 5 is above max value 3 for the AutoScalingGroup.")

    admin(ec2_server.endpoint, f"/_nimbus/ec2/interrupt?instance={spot[0]}", method="POST")
    until("the interrupted one terminated", lambda: state(ec2, spot[0]) == "terminated", timeout=NOTICE_SECONDS + 30)
    replaced = until("a replacement in service", lambda: (r := running_members()) and spot[0] not in [i["InstanceId"] for i in r] and r)
    assert len(replaced) == 2
    activities = autoscaling.describe_scaling_activities(AutoScalingGroupName=name)["Activities"]
    assert activities[0]["Description"].startswith("Launching a new EC2 instance: ")
    assert "an instance was started in response to a difference between desired and actual capacity" in activities[0]["Cause"]
    assert "a user request created an AutoScalingGroup changing the desired capacity from 0 to 2." in activities[-1]["Cause"]

    autoscaling.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=1)
    until("one member", lambda: len(members()) == 1)
    with pytest.raises(ClientError) as excinfo:
        autoscaling.delete_auto_scaling_group(AutoScalingGroupName=name)
    assert error_code(excinfo)[0] == "ResourceInUse"
    remaining = members()[0]["InstanceId"]
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
    until("the last member terminated", lambda: state(ec2, remaining) == "terminated")
    assert autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"] == []


def test_capacity_rebalancing_replaces_a_spot_member_at_its_notice(ec2, ec2_server):
    autoscaling = aws_client("autoscaling", ec2_server.endpoint)
    name = f"rebalance-{uuid.uuid4().hex[:8]}"
    ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": ARM_AMI, "InstanceType": "t4g.nano"})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name, MinSize=1, MaxSize=1, CapacityRebalance=True, AvailabilityZones=["us-east-1a"],
        MixedInstancesPolicy={
            "LaunchTemplate": {"LaunchTemplateSpecification": {"LaunchTemplateName": name}},
            "InstancesDistribution": {"OnDemandBaseCapacity": 0, "OnDemandPercentageAboveBaseCapacity": 0}})

    def in_service():
        group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
        return [i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService"]

    old = until("a member", lambda: (ids := in_service()) and state(ec2, ids[0]) == "running" and ids[0])
    assert instance(ec2, old)["InstanceLifecycle"] == "spot"
    admin(ec2_server.endpoint, f"/_nimbus/ec2/interrupt?instance={old}", method="POST")
    until("the old one terminated", lambda: state(ec2, old) == "terminated", timeout=NOTICE_SECONDS + 30)
    new = until("the replacement", lambda: [i for i in in_service() if i != old])
    sent = [(e["source"], e["detail-type"], e["detail"]) for e in admin(ec2_server.endpoint, "/_nimbus/ec2/events")["events"]]
    launched = sent.index(("aws.autoscaling", "EC2 Instance Launch Successful",
                           next(d for s, t, d in sent if t == "EC2 Instance Launch Successful" and d["EC2InstanceId"] == new[0])))
    ended = sent.index(("aws.ec2", "EC2 Instance State-change Notification", {"instance-id": old, "state": "terminated"}))
    assert launched < ended, "the replacement starts at the notice, before the interrupted member ends"
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
    until("the replacement terminated", lambda: state(ec2, new[0]) == "terminated")


def test_scheduled_actions_follow_the_virtual_clock(server_factory):
    srv = server_factory(extra_args=["--clock", "virtual", "--capacity", "vcpus=16,memory=16"])
    ec2 = aws_client("ec2", srv.endpoint)
    autoscaling = aws_client("autoscaling", srv.endpoint)
    name = f"sched-{uuid.uuid4().hex[:8]}"
    ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": X86_AMI, "InstanceType": "t3.nano"})
    autoscaling.create_auto_scaling_group(AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateName": name},
                                          MinSize=0, MaxSize=4, DesiredCapacity=1, AvailabilityZones=["us-east-1b"])
    now = admin(srv.endpoint, "/_nimbus/clock")["now_ms"] / 1000
    autoscaling.put_scheduled_update_group_action(AutoScalingGroupName=name, ScheduledActionName="morning",
                                                  StartTime=now + 3600, DesiredCapacity=3)
    later = time.gmtime(now + 3 * 3600)  # a daily recurrence due in 2-3 hours, not in the first hour
    autoscaling.put_scheduled_update_group_action(AutoScalingGroupName=name, ScheduledActionName="nightly",
                                                  Recurrence=f"0 {later.tm_hour} * * *", DesiredCapacity=0)
    listed = autoscaling.describe_scheduled_actions(AutoScalingGroupName=name)["ScheduledUpdateGroupActions"]
    assert sorted(a["ScheduledActionName"] for a in listed) == ["morning", "nightly"]

    def desired():
        group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
        return group["DesiredCapacity"], len([i for i in group["Instances"] if i["LifecycleState"] in ("Pending", "InService")])

    assert desired() == (1, 1)
    admin(srv.endpoint, "/_nimbus/clock/advance?seconds=3660", method="POST")
    until("the morning action", lambda: desired() == (3, 3))
    activities = autoscaling.describe_scaling_activities(AutoScalingGroupName=name)["Activities"]
    assert any("a scheduled action update of AutoScalingGroup constraints to min: 0, max: 4, desired: 3 changing the desired capacity from 1 to 3." in a["Cause"] for a in activities)
    assert [a["ScheduledActionName"] for a in autoscaling.describe_scheduled_actions(AutoScalingGroupName=name)["ScheduledUpdateGroupActions"]] == ["nightly"]
    admin(srv.endpoint, "/_nimbus/clock/advance?seconds=7200", method="POST")
    until("the nightly action", lambda: desired() == (0, 0))
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
