"""EC2, Auto Scaling and Batch per region end to end with boto3 and the aws CLI: an instance run
with `region_name="us-west-2"` is us-west-2's (its zone, subnet, ARNs, instance metadata and
events), invisible from us-east-1; every region draws on the one host's capacity; both regions'
instances outlive a kill -9; a group launches in its region; a Batch job submitted in us-west-2
runs on us-west-2's instances; a stack makes its EC2 resources in its region."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from batch_support import CAPACITY, finished, make_env, make_queue, shell_def
from support import aws_cli_env
from test_regions import ACCOUNT, client, receive_one, wait_stack

X86_AMI = "ami-0a1b2c3d4e5f60001"
REGIONS = ("us-west-2", "us-east-1")


def until(what, check, timeout=30.0):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def run(ec2, user_data="", instance_type="t3.nano", count=1):
    return ec2.run_instances(ImageId=X86_AMI, InstanceType=instance_type, MinCount=count, MaxCount=count,
                             UserData=user_data)["Instances"]


def ids(ec2):
    return {i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}


def state(ec2, iid):
    return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]


def log_lines(logs, stream):
    try:
        events = logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=stream, startFromHead=True)["events"]
    except ClientError as error:  # not written (yet, or in this region)
        assert error.response["Error"]["Code"] == "ResourceNotFoundException"
        return []
    return [e["message"] for e in events]


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory(extra_args=["--capacity", "vcpus=16,memory=16"])


def test_instances_live_in_their_region(srv, tmp_path):
    ec2 = {region: client("ec2", srv.endpoint, region) for region in REGIONS}
    metadata = ("#!/bin/sh\nT=$(curl -s -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' $NIMBUS_IMDS/latest/api/token)\n"
                "echo where=$(curl -s -H \"X-aws-ec2-metadata-token: $T\" $NIMBUS_IMDS/latest/meta-data/placement/region)"
                "/$(curl -s -H \"X-aws-ec2-metadata-token: $T\" $NIMBUS_IMDS/latest/meta-data/placement/availability-zone)"
                "/$AWS_REGION\n")
    launched = {region: run(ec2[region], metadata)[0] for region in REGIONS}
    zone_ids = {"us-west-2": "usw2-az", "us-east-1": "use1-az"}
    for region, other in (REGIONS, REGIONS[::-1]):
        mine, theirs = launched[region]["InstanceId"], launched[other]["InstanceId"]
        placement = launched[region]["Placement"]
        assert placement["AvailabilityZone"] == f"{region}a"
        assert placement["AvailabilityZoneId"].startswith(zone_ids[region])
        subnets = ec2[region].describe_subnets()["Subnets"]
        assert {s["AvailabilityZone"] for s in subnets} == {f"{region}{z}" for z in "abc"}
        assert all(s["SubnetArn"].startswith(f"arn:aws:ec2:{region}:{ACCOUNT}:subnet/") for s in subnets)
        assert launched[region]["SubnetId"] in {s["SubnetId"] for s in subnets}
        zones = ec2[region].describe_availability_zones()["AvailabilityZones"]
        assert {z["RegionName"] for z in zones} == {region}
        listed = ids(ec2[region])
        assert mine in listed and theirs not in listed
        for call in (ec2[region].describe_instances, ec2[region].terminate_instances):
            with pytest.raises(ClientError) as excinfo:
                call(InstanceIds=[theirs])
            assert error_code(excinfo) == ("InvalidInstanceID.NotFound", f"The instance ID '{theirs}' does not exist")
        # The instance's metadata and environment name its own region and zone.
        console = until(f"{region}'s instance reports", lambda: "where=" in (out := ec2[region].get_console_output(
            InstanceId=mine).get("Output") or "") and out)
        assert f"where={region}/{region}a/{region}" in console, console
    # The aws CLI, signing for us-west-2, sees us-west-2's instance only.
    out = subprocess.run(["aws", "ec2", "describe-instances", "--region", "us-west-2", "--output", "json"],
                         env=aws_cli_env(srv.endpoint, tmp_path), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = {i["InstanceId"] for r in json.loads(out.stdout)["Reservations"] for i in r["Instances"]}
    assert launched["us-west-2"]["InstanceId"] in seen and launched["us-east-1"]["InstanceId"] not in seen
    for region in REGIONS:
        ec2[region].terminate_instances(InstanceIds=[launched[region]["InstanceId"]])


def test_groups_and_key_pairs_of_the_same_name_are_separate_per_region(srv):
    name = f"dup-{uuid.uuid4().hex[:8]}"
    ec2 = {region: client("ec2", srv.endpoint, region) for region in REGIONS}
    made = {region: ec2[region].create_security_group(GroupName=name, Description="d")["GroupId"] for region in REGIONS}
    assert made["us-west-2"] != made["us-east-1"]
    for region in REGIONS:
        [group] = ec2[region].describe_security_groups(GroupNames=[name])["SecurityGroups"]
        assert group["GroupId"] == made[region]
        assert group["SecurityGroupArn"] == f"arn:aws:ec2:{region}:{ACCOUNT}:security-group/{made[region]}"
    ec2["us-west-2"].create_key_pair(KeyName=name)
    with pytest.raises(ClientError) as excinfo:
        ec2["us-east-1"].describe_key_pairs(KeyNames=[name])
    assert error_code(excinfo)[0] == "InvalidKeyPair.NotFound"


def test_a_region_ec2_does_not_serve_is_refused(srv):
    with pytest.raises(ClientError) as excinfo:
        client("ec2", srv.endpoint, "moon-east-1").describe_instances()
    assert error_code(excinfo) == ("SignatureDoesNotMatch", "Credential should be scoped to a valid region, not 'moon-east-1'.")
    # A real AWS region outside EC2's catalog is refused, not served as nimbus's own.
    with pytest.raises(ClientError) as excinfo:
        client("ec2", srv.endpoint, "ap-east-1").describe_instances()
    assert error_code(excinfo)[0] == "AuthFailure" and "ap-east-1 is not one of them" in error_code(excinfo)[1]
    with pytest.raises(ClientError) as excinfo:
        client("autoscaling", srv.endpoint, "moon-east-1").describe_auto_scaling_groups()
    assert error_code(excinfo)[0] == "SignatureDoesNotMatch"
    with pytest.raises(ClientError) as excinfo:
        client("batch", srv.endpoint, "moon-east-1").describe_job_queues()
    assert error_code(excinfo) == ("InvalidSignatureException", "Credential should be scoped to a valid region, not 'moon-east-1'.")


def test_state_change_events_reach_the_instances_region(srv):
    name = f"ec2ev-{uuid.uuid4().hex[:8]}"
    queues = {}
    for region in REGIONS:
        sqs, events = client("sqs", srv.endpoint, region), client("events", srv.endpoint, region)
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=name, EventPattern=json.dumps(
            {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]}))
        events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])
        queues[region] = (sqs, url)
    west = client("ec2", srv.endpoint, "us-west-2")
    iid = run(west)[0]["InstanceId"]
    sqs, url = queues["us-west-2"]
    event = json.loads(receive_one(sqs, url)["Body"])
    assert event["region"] == "us-west-2" and event["detail"]["instance-id"] == iid
    assert event["resources"] == [f"arn:aws:ec2:us-west-2:{ACCOUNT}:instance/{iid}"]
    west.terminate_instances(InstanceIds=[iid])
    until("terminated", lambda: state(west, iid) == "terminated")
    # Its state changes reached us-west-2's bus only (the events are sent in order: by the time
    # the west queue holds `terminated`, an east delivery would have been made).
    until("terminated event", lambda: any(json.loads(m["Body"])["detail"]["state"] == "terminated"
                                           for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                                        WaitTimeSeconds=1).get("Messages", [])))
    east_sqs, east_url = queues["us-east-1"]
    got = east_sqs.receive_message(QueueUrl=east_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert not [m for m in got if iid in m["Body"]]


def test_an_auto_scaling_group_launches_in_its_region(srv):
    name = f"asg-{uuid.uuid4().hex[:8]}"
    west, scaling = client("ec2", srv.endpoint, "us-west-2"), client("autoscaling", srv.endpoint, "us-west-2")
    west.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": X86_AMI, "InstanceType": "t3.nano"})
    scaling.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=1, MaxSize=1, DesiredCapacity=1,
                                      AvailabilityZones=["us-west-2b"], LaunchTemplate={"LaunchTemplateName": name})
    group = scaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    assert group["AutoScalingGroupARN"].startswith(f"arn:aws:autoscaling:us-west-2:{ACCOUNT}:autoScalingGroup:")
    members = until("a member", lambda: scaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[name])["AutoScalingGroups"][0]["Instances"])
    assert members[0]["AvailabilityZone"] == "us-west-2b"
    assert members[0]["InstanceId"] in ids(west)
    east = client("autoscaling", srv.endpoint, "us-east-1")
    assert east.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"] == []
    assert members[0]["InstanceId"] not in ids(client("ec2", srv.endpoint, "us-east-1"))
    # The launch template is us-west-2's: a group in us-east-1 cannot use it.
    with pytest.raises(ClientError) as excinfo:
        east.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=0, MaxSize=1,
                                       AvailabilityZones=["us-east-1a"], LaunchTemplate={"LaunchTemplateName": name})
    assert error_code(excinfo)[0] == "ValidationError"
    # A group of the same name in us-east-1 is another group.
    client("ec2", srv.endpoint, "us-east-1").create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData={"ImageId": X86_AMI, "InstanceType": "t3.nano"})
    east.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=0, MaxSize=1, DesiredCapacity=0,
                                   AvailabilityZones=["us-east-1a"], LaunchTemplate={"LaunchTemplateName": name})
    [east_group] = east.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    assert east_group["AutoScalingGroupARN"].startswith("arn:aws:autoscaling:us-east-1:")
    assert east_group["DesiredCapacity"] == 0 and east_group["Instances"] == []
    # A target tracking policy's alarms are in the group's region's CloudWatch.
    scaling.put_scaling_policy(AutoScalingGroupName=name, PolicyName="cpu", PolicyType="TargetTrackingScaling",
                               TargetTrackingConfiguration={"TargetValue": 50.0, "PredefinedMetricSpecification": {
                                   "PredefinedMetricType": "ASGAverageCPUUtilization"}})
    prefix = f"TargetTracking-{name}-"
    alarms = client("cloudwatch", srv.endpoint, "us-west-2").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    assert len(alarms) == 2 and all(a["AlarmArn"].startswith("arn:aws:cloudwatch:us-west-2:") for a in alarms)
    assert client("cloudwatch", srv.endpoint, "us-east-1").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"] == []
    scaling.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
    assert client("cloudwatch", srv.endpoint, "us-west-2").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"] == []
    assert east.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"] == [east_group]
    east.delete_auto_scaling_group(AutoScalingGroupName=name)


def test_a_stack_makes_its_ec2_resources_in_its_region(srv):
    name = f"ec2stack-{uuid.uuid4().hex[:8]}"
    template = {"Resources": {"Group": {"Type": "AWS::EC2::SecurityGroup",
                                        "Properties": {"GroupName": name, "GroupDescription": "stack's"}}},
                "Outputs": {"GroupId": {"Value": {"Fn::GetAtt": ["Group", "GroupId"]}}}}
    cfn = client("cloudformation", srv.endpoint, "us-west-2")
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template))
    stack = wait_stack(cfn, name)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    group_id = stack["Outputs"][0]["OutputValue"]
    assert client("ec2", srv.endpoint, "us-west-2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    with pytest.raises(ClientError) as excinfo:
        client("ec2", srv.endpoint, "us-east-1").describe_security_groups(GroupIds=[group_id])
    assert error_code(excinfo)[0] == "InvalidGroup.NotFound"
    cfn.delete_stack(StackName=name)


def test_every_region_draws_on_the_one_host(server_factory):
    host = server_factory(extra_args=["--capacity", "vcpus=4,memory=4"])
    west, east = client("ec2", host.endpoint, "us-west-2"), client("ec2", host.endpoint, "us-east-1")
    held = run(west, instance_type="t3.micro", count=2)  # 2 vCPUs each: the whole host
    with pytest.raises(ClientError) as excinfo:
        run(east)
    code, message = error_code(excinfo)
    assert code == "InsufficientInstanceCapacity"
    assert message.startswith("We currently do not have sufficient t3.nano capacity in the Availability Zone you requested (us-east-1a).")
    west.terminate_instances(InstanceIds=[held[0]["InstanceId"]])
    until("terminated", lambda: state(west, held[0]["InstanceId"]) == "terminated")
    iid = run(east)[0]["InstanceId"]
    with pytest.raises(ClientError) as excinfo:
        run(west, instance_type="t3.micro")
    assert error_code(excinfo)[0] == "InsufficientInstanceCapacity"
    east.terminate_instances(InstanceIds=[iid])
    west.terminate_instances(InstanceIds=[held[1]["InstanceId"]])


def test_both_regions_instances_outlive_a_kill_9(server_factory):
    host = server_factory(extra_args=["--capacity", "vcpus=8,memory=8"])
    launched = {region: run(client("ec2", host.endpoint, region))[0]["InstanceId"] for region in REGIONS}
    for region, iid in launched.items():
        until(f"{region} running", lambda: state(client("ec2", host.endpoint, region), iid) == "running")
    host.kill()
    host.start()
    for region, other in (REGIONS, REGIONS[::-1]):
        ec2 = client("ec2", host.endpoint, region)
        assert ids(ec2) & set(launched.values()) == {launched[region]}
        # Running when nimbus died: stopped, as after a host failure, and started again in place.
        assert state(ec2, launched[region]) == "stopped"
        ec2.start_instances(InstanceIds=[launched[region]])
        until(f"{region} running again", lambda: state(ec2, launched[region]) == "running")
        ec2.terminate_instances(InstanceIds=[launched[region]])


def test_a_batch_job_in_another_region_runs_on_that_regions_instances(server_factory):
    host = server_factory(extra_args=CAPACITY)
    batch, ec2 = client("batch", host.endpoint, "us-west-2"), client("ec2", host.endpoint, "us-west-2")
    env = make_env(batch, f"west-{uuid.uuid4().hex[:6]}", max_vcpus=4)
    queue = make_queue(batch, env)
    definition = shell_def(batch, 'echo "in $AWS_REGION"')
    submitted = batch.submit_job(jobName="west", jobQueue=queue, jobDefinition=definition)
    assert submitted["jobArn"].startswith(f"arn:aws:batch:us-west-2:{ACCOUNT}:job/")
    done = finished(batch, submitted["jobId"])
    assert done["status"] == "SUCCEEDED", done
    [attempt] = done["attempts"]
    # Its output is in us-west-2's CloudWatch Logs.
    stream = attempt["container"]["logStreamName"]
    assert until("the output", lambda: log_lines(client("logs", host.endpoint, "us-west-2"), stream)) == ["in us-west-2"]
    assert log_lines(client("logs", host.endpoint, "us-east-1"), stream) == []
    assert attempt["container"]["taskArn"].startswith(f"arn:aws:ecs:us-west-2:{ACCOUNT}:task/")
    instance = attempt["container"]["containerInstanceArn"]
    assert instance.startswith(f"arn:aws:ecs:us-west-2:{ACCOUNT}:container-instance/")
    # The compute environment's instance is us-west-2's, launched in its zones.
    placed = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert placed and all(i["Placement"]["AvailabilityZone"].startswith("us-west-2") for i in placed)
    east_batch, east_ec2 = client("batch", host.endpoint, "us-east-1"), client("ec2", host.endpoint, "us-east-1")
    assert not ids(east_ec2) & {i["InstanceId"] for i in placed}
    assert east_batch.describe_jobs(jobs=[submitted["jobId"]])["jobs"] == []
    assert east_batch.describe_compute_environments(computeEnvironments=[env])["computeEnvironments"] == []
    with pytest.raises(ClientError) as excinfo:
        east_batch.terminate_job(jobId=submitted["jobId"], reason="not mine")
    assert error_code(excinfo) == ("ClientException", f"Job {submitted['jobId']} does not exist")
