"""EC2 capacity end to end with boto3 and the aws CLI: the catalog, instances that are real
processes (user data, console output, stop/start/terminate killing and rebooting them),
capacity refusal, spot interruptions with their notice (instance metadata, EventBridge), IMDSv2,
Graviton through qemu-user, reservations and the meter, and a restart of nimbus."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import psutil
import pytest
from botocore.exceptions import ClientError

from support import aws_cli_env, aws_client
from test_sandbox import aarch64_exit

X86_AMI = "ami-0a1b2c3d4e5f60001"
ARM_AMI = "ami-0a1b2c3d4e5f60002"
NOTICE_SECONDS = 3


@pytest.fixture(scope="module")
def ec2_server(server_factory):
    return server_factory(extra_args=["--capacity", "vcpus=64,memory=64", "--spot-notice-seconds", str(NOTICE_SECONDS)])


@pytest.fixture(scope="module")
def ec2(ec2_server):
    return aws_client("ec2", ec2_server.endpoint)


def until(what, check, timeout=30.0):
    """Polls `check` until it returns something truthy; fails naming `what` at the deadline."""
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def instance(ec2, iid):
    return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]


def state(ec2, iid):
    return instance(ec2, iid)["State"]["Name"]


def console(ec2, iid):
    return ec2.get_console_output(InstanceId=iid).get("Output") or ""


def marker_processes(marker):
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in (p.info["cmdline"] or [])):
                found.append(p)
        except psutil.Error:
            pass
    return found


def admin(endpoint, path, method="GET"):
    request = urllib.request.Request(endpoint + path, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def run(ec2, user_data="", instance_type="t3.micro", image=X86_AMI, **extra):
    kwargs = dict(ImageId=image, InstanceType=instance_type, MinCount=1, MaxCount=1, **extra)
    if user_data:
        kwargs["UserData"] = user_data
    return ec2.run_instances(**kwargs)["Instances"][0]["InstanceId"]


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["Error"]["Message"]


def test_catalog_answers_as_ec2(ec2, ec2_server, tmp_path):
    m7g = ec2.describe_instance_types(InstanceTypes=["m7g.large"])["InstanceTypes"][0]
    assert m7g["VCpuInfo"]["DefaultVCpus"] == 2 and m7g["MemoryInfo"]["SizeInMiB"] == 8192
    assert m7g["ProcessorInfo"] == {"SupportedArchitectures": ["arm64"], "Manufacturer": "AWS"}
    assert "spot" in m7g["SupportedUsageClasses"]
    pages = ec2.get_paginator("describe_instance_types").paginate(
        Filters=[{"Name": "processor-info.supported-architecture", "Values": ["arm64"]},
                 {"Name": "vcpu-info.default-vcpus", "Values": ["2"]}],
        PaginationConfig={"PageSize": 20})
    found = [t["InstanceType"] for page in pages for t in page["InstanceTypes"]]
    assert "m7g.large" in found and "c5.large" not in found and len(found) > 20
    with pytest.raises(ClientError) as excinfo:
        ec2.describe_instance_types(InstanceTypes=["m9z.huge"])
    assert error_code(excinfo) == ("InvalidInstanceType", "The following supplied instance types do not exist: [m9z.huge]")

    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    assert zones == ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert "eu-west-1" in [r["RegionName"] for r in ec2.describe_regions()["Regions"]]
    offerings = ec2.describe_instance_type_offerings(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["c7g.*"]}])["InstanceTypeOfferings"]
    assert {o["Location"] for o in offerings} == set(zones)
    images = ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "architecture", "Values": ["arm64"]}])["Images"]
    assert [i["ImageId"] for i in images] == [ARM_AMI]

    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]
    assert sorted(s["AvailabilityZone"] for s in subnets) == zones and vpc["CidrBlock"] == "172.31.0.0/16"
    name = f"sg-{uuid.uuid4().hex[:8]}"
    group = ec2.create_security_group(GroupName=name, Description="batch", VpcId=vpc["VpcId"])["GroupId"]
    assert ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]["GroupName"] == name
    key = f"key-{uuid.uuid4().hex[:8]}"
    assert ec2.create_key_pair(KeyName=key)["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert [k["KeyName"] for k in ec2.describe_key_pairs(KeyNames=[key])["KeyPairs"]] == [key]

    history = ec2.describe_spot_price_history(InstanceTypes=["c5.large"], AvailabilityZone="us-east-1a")["SpotPriceHistory"]
    assert history and all(0 < float(h["SpotPrice"]) < 0.085 for h in history)
    assert all(len(h["SpotPrice"].split(".")[1]) == 6 and h["ProductDescription"] == "Linux/UNIX" for h in history)
    started = time.time()
    everything = ec2.describe_spot_price_history(StartTime="2000-01-01T00:00:00Z", MaxResults=50)
    assert len(everything["SpotPriceHistory"]) == 50 and everything["NextToken"] and time.time() - started < 5

    cli = subprocess.run(["aws", "ec2", "describe-instance-types", "--instance-types", "t4g.nano", "--output", "json"],
                         env=aws_cli_env(ec2_server.endpoint, tmp_path), capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["InstanceTypes"][0]["ProcessorInfo"]["SupportedArchitectures"] == ["arm64"]

    with pytest.raises(ClientError) as excinfo:
        ec2.create_fleet(LaunchTemplateConfigs=[], TargetCapacitySpecification={"TotalTargetCapacity": 1})
    assert excinfo.value.response["Error"]["Code"] == "InvalidAction"
    assert "CreateFleet" in excinfo.value.response["Error"]["Message"]


def test_an_instance_is_real_processes_through_its_life(ec2, ec2_server):
    marker = f"marker-{uuid.uuid4().hex}"
    sqs = aws_client("sqs", ec2_server.endpoint)
    queue = sqs.create_queue(QueueName=f"booted-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    user_data = (
        "#!/bin/sh\n"
        f"echo booted $NIMBUS_INSTANCE_ID > /tmp/boot.txt && cat /tmp/boot.txt\n"
        f"curl -s -o /dev/null -d \"Action=SendMessage&Version=2012-11-05&QueueUrl={queue}&MessageBody=up-$NIMBUS_INSTANCE_ID\" $AWS_ENDPOINT_URL/\n"
        f"sh -c 'while :; do sleep 1; done' {marker} &\n"
    )
    iid = run(ec2, user_data, TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "worker"}]}])
    until("running", lambda: state(ec2, iid) == "running")
    until("the user data's output", lambda: f"booted {iid}" in console(ec2, iid))
    until("the user data's process", lambda: marker_processes(marker))
    message = until("the boot message", lambda: sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages"))
    assert message[0]["Body"] == f"up-{iid}"

    described = instance(ec2, iid)
    assert described["InstanceType"] == "t3.micro" and described["Architecture"] == "x86_64"
    assert described["Tags"] == [{"Key": "Name", "Value": "worker"}] and "InstanceLifecycle" not in described
    tagged = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["worker"]},
                                             {"Name": "instance-state-name", "Values": ["running"]}])
    assert iid in [i["InstanceId"] for r in tagged["Reservations"] for i in r["Instances"]]

    stopping = ec2.stop_instances(InstanceIds=[iid])["StoppingInstances"][0]
    assert stopping["PreviousState"]["Name"] == "running" and stopping["CurrentState"] == {"Code": 64, "Name": "stopping"}
    until("stopped", lambda: state(ec2, iid) == "stopped")
    assert not marker_processes(marker)
    stopped = instance(ec2, iid)
    assert stopped["StateReason"]["Code"] == "Client.UserInitiatedShutdown"
    assert stopped["StateTransitionReason"].startswith("User initiated (")

    ec2.modify_instance_attribute(InstanceId=iid, InstanceType={"Value": "t3.small"})
    ec2.start_instances(InstanceIds=[iid])
    until("running again", lambda: state(ec2, iid) == "running")
    assert instance(ec2, iid)["InstanceType"] == "t3.small"
    until("the user data's process after start", lambda: marker_processes(marker))
    with pytest.raises(ClientError) as excinfo:
        ec2.modify_instance_attribute(InstanceId=iid, InstanceType={"Value": "t3.medium"})
    assert error_code(excinfo) == ("IncorrectInstanceState", f"The instance '{iid}' is not in the 'stopped' state.")

    terminating = ec2.terminate_instances(InstanceIds=[iid])["TerminatingInstances"][0]
    assert terminating["CurrentState"] == {"Code": 32, "Name": "shutting-down"}
    until("terminated", lambda: state(ec2, iid) == "terminated")
    assert not marker_processes(marker)
    with pytest.raises(ClientError) as excinfo:
        ec2.start_instances(InstanceIds=[iid])
    assert excinfo.value.response["Error"]["Code"] == "IncorrectInstanceState"
    with pytest.raises(ClientError) as excinfo:
        ec2.describe_instances(InstanceIds=["i-0123456789abcdef0"])
    assert error_code(excinfo) == ("InvalidInstanceID.NotFound", "The instance ID 'i-0123456789abcdef0' does not exist")


def test_launches_past_the_declared_capacity_are_refused(server_factory):
    srv = server_factory(extra_args=["--capacity", "vcpus=4,memory=4"])
    ec2 = aws_client("ec2", srv.endpoint)
    with pytest.raises(ClientError) as excinfo:
        run(ec2, instance_type="c5.2xlarge")
    code, message = error_code(excinfo)
    assert code == "InsufficientInstanceCapacity"
    assert message.startswith("We currently do not have sufficient c5.2xlarge capacity in the Availability Zone you requested (us-east-1a).")
    launched = ec2.run_instances(ImageId=X86_AMI, InstanceType="t3.micro", MinCount=1, MaxCount=5)["Instances"]
    assert len(launched) == 2  # 2 vCPUs each, 4 lent
    with pytest.raises(ClientError) as excinfo:
        run(ec2, instance_type="t3.nano")
    assert error_code(excinfo)[0] == "InsufficientInstanceCapacity"
    ec2.terminate_instances(InstanceIds=[launched[0]["InstanceId"]])
    until("terminated", lambda: state(ec2, launched[0]["InstanceId"]) == "terminated")
    until("room again", lambda: run(ec2, instance_type="t3.nano"))
    with pytest.raises(ClientError) as excinfo:
        run(ec2, instance_type="m7g.large")
    assert "does not match the architecture 'x86_64' of the specified AMI" in error_code(excinfo)[1]


def test_a_spot_interruption_gives_notice_then_ends_the_processes(ec2, ec2_server):
    sqs = aws_client("sqs", ec2_server.endpoint)
    events = aws_client("events", ec2_server.endpoint)
    queue = sqs.create_queue(QueueName=f"spot-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"spot-{uuid.uuid4().hex[:8]}"
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": queue_arn}])
    marker = f"spot-{uuid.uuid4().hex}"
    user_data = (
        "#!/bin/sh\n"
        f"sh -c 'while :; do sleep 1; done' {marker} &\n"
        "until curl -sf $AWS_EC2_METADATA_SERVICE_ENDPOINT/latest/meta-data/spot/instance-action; do sleep 0.2; done\n"
        "echo ' <- notice seen inside'\n"
    )
    iid = run(ec2, user_data, InstanceMarketOptions={"MarketType": "spot", "SpotOptions": {"MaxPrice": "0.0104"}})
    until("running", lambda: state(ec2, iid) == "running")
    described = instance(ec2, iid)
    assert described["InstanceLifecycle"] == "spot"
    request = ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[described["SpotInstanceRequestId"]])["SpotInstanceRequests"][0]
    assert request["State"] == "active" and request["Status"]["Code"] == "fulfilled" and request["InstanceId"] == iid
    until("the process", lambda: marker_processes(marker))
    imds = f"/_nimbus/ec2/imds/{iid}/latest/meta-data/spot/instance-action"
    with pytest.raises(urllib.error.HTTPError) as missing:
        admin(ec2_server.endpoint, imds)
    assert missing.value.code == 404

    notice = admin(ec2_server.endpoint, f"/_nimbus/ec2/interrupt?instance={iid}", method="POST")
    assert notice["instance-action"] == "terminate"
    assert state(ec2, iid) == "running"  # the two minutes (scaled) are not over
    assert admin(ec2_server.endpoint, imds)["action"] == "terminate"
    # The instance's own program saw the notice before the end.
    assert until("the notice inside", lambda: "notice seen inside" in console(ec2, iid))
    body = json.loads(until("the warning event", lambda: sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages"))[0]["Body"])
    assert body["detail-type"] == "EC2 Spot Instance Interruption Warning" and body["source"] == "aws.ec2"
    assert body["detail"] == {"instance-id": iid, "instance-action": "terminate"}

    until("terminated", lambda: state(ec2, iid) == "terminated", timeout=NOTICE_SECONDS + 30)
    assert not marker_processes(marker)
    ended = instance(ec2, iid)
    assert ended["StateReason"] == {"Code": "Server.SpotInstanceTermination",
                                    "Message": "Server.SpotInstanceTermination: Spot instance termination"}
    request = ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[ended["SpotInstanceRequestId"]])["SpotInstanceRequests"][0]
    assert request["State"] == "closed" and request["Status"]["Code"] == "instance-terminated-no-capacity"
    with pytest.raises(ClientError) as excinfo:
        run(ec2, instance_type="c5.large", InstanceMarketOptions={"MarketType": "spot", "SpotOptions": {"MaxPrice": "0.001"}})
    assert error_code(excinfo)[0] == "SpotMaxPriceTooLow"


def test_spot_requests_and_cancellation(ec2):
    requests = ec2.request_spot_instances(InstanceCount=1, LaunchSpecification={"ImageId": ARM_AMI, "InstanceType": "t4g.nano"})
    request = requests["SpotInstanceRequests"][0]
    iid = request["InstanceId"]
    until("running", lambda: state(ec2, iid) == "running")
    cancelled = ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=[request["SpotInstanceRequestId"]])
    assert cancelled["CancelledSpotInstanceRequests"][0]["State"] == "cancelled"
    after = ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[request["SpotInstanceRequestId"]])["SpotInstanceRequests"][0]
    assert after["Status"]["Code"] == "request-canceled-and-instance-running"
    assert state(ec2, iid) == "running"  # cancelling a request leaves its instance running, as on AWS
    with pytest.raises(ClientError) as excinfo:
        ec2.stop_instances(InstanceIds=[iid])
    assert error_code(excinfo)[0] == "UnsupportedOperation"
    ec2.terminate_instances(InstanceIds=[iid])
    until("terminated", lambda: state(ec2, iid) == "terminated")


def test_imdsv2_from_inside_and_required_tokens(ec2, ec2_server):
    user_data = (
        "#!/bin/sh\n"
        "T=$(curl -s -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' $NIMBUS_IMDS/latest/api/token)\n"
        "echo id=$(curl -s -H \"X-aws-ec2-metadata-token: $T\" $NIMBUS_IMDS/latest/meta-data/instance-id)\n"
        "echo type=$(curl -s -H \"X-aws-ec2-metadata-token: $T\" $NIMBUS_IMDS/latest/meta-data/instance-type)\n"
        "echo v1=$(curl -s -o /dev/null -w '%{http_code}' $NIMBUS_IMDS/latest/meta-data/instance-id)\n"
        "echo life=$(curl -s -H \"X-aws-ec2-metadata-token: $T\" $NIMBUS_IMDS/latest/meta-data/instance-life-cycle)\n"
    )
    iid = run(ec2, user_data, instance_type="t3.nano", MetadataOptions={"HttpTokens": "required"})
    out = until("the metadata answers", lambda: "life=" in console(ec2, iid) and console(ec2, iid))
    assert f"id={iid}" in out and "type=t3.nano" in out and "v1=401" in out and "life=on-demand" in out
    ec2.terminate_instances(InstanceIds=[iid])


def test_graviton_instances_run_arm64_programs(ec2):
    if not any(os.path.exists(p) for p in ("/usr/bin/qemu-aarch64-static", "/usr/bin/qemu-aarch64")):
        pytest.skip("qemu-user (qemu-aarch64-static) is not installed: arm64 programs cannot run on this host")
    iid = run(ec2, aarch64_exit(7), instance_type="t4g.nano", image=ARM_AMI)
    assert until("the arm64 program's exit", lambda: "user data exited with status 7" in console(ec2, iid))
    assert instance(ec2, iid)["Architecture"] == "arm64"
    ec2.terminate_instances(InstanceIds=[iid])


def test_reservations_and_the_meter(ec2, ec2_server):
    offerings = ec2.describe_reserved_instances_offerings(
        InstanceType="m6i.large", OfferingClass="standard", OfferingType="No Upfront", MinDuration=31536000, MaxDuration=31536000)
    offering = offerings["ReservedInstancesOfferings"][0]
    hourly = offering["RecurringCharges"][0]["Amount"]
    assert offering["Duration"] == 31536000 and 0 < hourly < 0.096
    reserved = ec2.purchase_reserved_instances_offering(ReservedInstancesOfferingId=offering["ReservedInstancesOfferingId"], InstanceCount=1)
    described = ec2.describe_reserved_instances(ReservedInstancesIds=[reserved["ReservedInstancesId"]])["ReservedInstances"][0]
    assert described["State"] == "active" and described["InstanceType"] == "m6i.large"
    covered = run(ec2, instance_type="m6i.large")
    until("running", lambda: state(ec2, covered) == "running")
    beyond = run(ec2, instance_type="m6i.large")  # the reservation covers one instance
    until("running", lambda: state(ec2, beyond) == "running")
    ec2.terminate_instances(InstanceIds=[covered, beyond])
    until("terminated", lambda: state(ec2, covered) == "terminated" and state(ec2, beyond) == "terminated")
    meter = admin(ec2_server.endpoint, "/_nimbus/ec2/meter")
    lines = {l["market"]: l for l in meter["lines"] if l["instance_type"] == "m6i.large"}
    assert lines["reserved"]["instances"] == 1 and lines["on-demand"]["instances"] >= 1
    # Billed per second with AWS's 60-second minimum, at the reserved and on-demand rates.
    assert lines["reserved"]["billed_seconds"] == 60 and abs(lines["reserved"]["usd"] - hourly / 60) < 1e-6
    assert abs(lines["on-demand"]["usd"] - lines["on-demand"]["billed_seconds"] * 0.096 / 3600) < 1e-6
    assert lines["on-demand"]["graviton_type"] is None or lines["on-demand"]["graviton_type"].endswith(".large")
    assert "karpenter" in meter["source"]


def test_the_nimbus_cli_lists_instances_prices_them_and_interrupts_spot(ec2, ec2_server, nimbus_bin):
    def nimbus(*args):
        done = subprocess.run([str(nimbus_bin), *args, "--endpoint", ec2_server.endpoint], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    iid = run(ec2, instance_type="t3.nano", InstanceMarketOptions={"MarketType": "spot"})
    until("running", lambda: state(ec2, iid) == "running")
    listed = {i["instance_id"]: i for i in json.loads(nimbus("instances", "--json"))["instances"]}
    assert listed[iid]["market"] == "spot" and 0 < listed[iid]["usd_per_hour"] < 0.0052
    assert iid in nimbus("instances")
    assert f"{iid}: terminate at " in nimbus("spot", "interrupt", iid)
    until("terminated", lambda: state(ec2, iid) == "terminated", timeout=NOTICE_SECONDS + 30)
    cost = nimbus("cost", "--since", "1h")
    assert "t3.nano" in cost and "spot" in cost and "total " in cost
    # The what-if comparison: every option, with the price lists' dates.
    what_if = nimbus("cost", "--what-if")
    assert what_if.count("Batch") == 6 and what_if.count("Lambda") >= 2 and "(2026-07-20)" in what_if, what_if
    answer = json.loads(nimbus("cost", "--what-if", "--since", "1h", "--json"))
    assert answer["workload"]["instances"]["billed_seconds"] >= 60 and len(answer["options"]) == 8


def test_instances_running_when_nimbus_stops_come_back_stopped(server_factory):
    srv = server_factory(extra_args=["--capacity", "vcpus=8,memory=8"])
    ec2 = aws_client("ec2", srv.endpoint)
    marker = f"restart-{uuid.uuid4().hex}"
    iid = run(ec2, f"#!/bin/sh\nsh -c 'while :; do sleep 1; done' {marker} &\n")
    until("running", lambda: state(ec2, iid) == "running")
    until("the process", lambda: marker_processes(marker))
    srv.stop()
    assert not marker_processes(marker)
    srv.start()
    ec2 = aws_client("ec2", srv.endpoint)
    described = instance(ec2, iid)
    assert described["State"]["Name"] == "stopped"
    assert described["StateReason"]["Code"] == "Server.InternalError"
    ec2.start_instances(InstanceIds=[iid])
    until("running again", lambda: state(ec2, iid) == "running")
    until("the process again", lambda: marker_processes(marker))
    ec2.terminate_instances(InstanceIds=[iid])
    until("terminated", lambda: state(ec2, iid) == "terminated")


def test_an_instance_is_held_to_its_vcpus_and_memory(ec2):
    marker = f"burn-{uuid.uuid4().hex}"
    user_data = (
        "#!/bin/sh\n"
        "head -c 800M /dev/zero | tail > /dev/null || echo hog ended $?\n"
        f"sh -c 'while :; do :; done' {marker} &\n"
        f"sh -c 'while :; do :; done' {marker} &\n"
    )
    iid = run(ec2, user_data, instance_type="t2.nano")  # 1 vCPU, 512 MiB
    # The memory hog is killed at the type's memory, the instance itself lives on.
    assert until("the hog's end", lambda: "hog ended 137" in console(ec2, iid), timeout=30)
    assert state(ec2, iid) == "running"
    burners = until("the burners", lambda: len(marker_processes(marker)) == 2 and marker_processes(marker))
    before = sum(p.cpu_times().user + p.cpu_times().system for p in burners)
    started = time.time()
    time.sleep(2)
    used = sum(p.cpu_times().user + p.cpu_times().system for p in burners) - before
    # Two busy loops in one vCPU: together at most about one CPU's time.
    assert used / (time.time() - started) < 1.25, used
    ec2.terminate_instances(InstanceIds=[iid])
    until("terminated", lambda: state(ec2, iid) == "terminated")
    assert not marker_processes(marker)
