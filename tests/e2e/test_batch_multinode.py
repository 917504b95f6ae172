"""AWS Batch multi-node parallel jobs end to end: a 3-node job whose nodes run on instances of
their own, the workers connecting over TCP to the main node at
AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS, and no other job reaching the main node there;
a failing main node failing the job (the others stopped); TerminateJob ending every node; definitions and overrides refused as AWS refuses them; Spot refused; a kill -9 of
nimbus while the nodes run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError

from batch_support import (CAPACITY, batch, batch_server, finished, job, log_lines,  # noqa: F401
                           make_env, make_queue, until)
from support import aws_client

# The main node listens and waits for a line from every other node; the others connect to it.
NODE = r"""
import os, socket, sys, time
index = int(os.environ["AWS_BATCH_JOB_NODE_INDEX"])
nodes = int(os.environ["AWS_BATCH_JOB_NUM_NODES"])
main = int(os.environ["AWS_BATCH_JOB_MAIN_NODE_INDEX"])
if index == main:
    assert "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS" not in os.environ
    server = socket.create_server(("0.0.0.0", 7777))
    heard = set()
    while len(heard) < nodes - 1:
        peer, (address, _) = server.accept()
        line = peer.makefile().readline().strip()
        print(f"main {index} heard '{line}' from {address}", flush=True)
        heard.add(line)
    sys.exit(0)
address = os.environ["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"]
print(f"node {index} of {nodes} reaches main {main} at {address}", flush=True)
deadline = time.time() + 60
while True:
    try:
        with socket.create_connection((address, 7777), timeout=2) as peer:
            peer.sendall(f"hello from {index}\n".encode())
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.1)
"""


def needs_root():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("nodes' networks are joined with veth pairs and a bridge: needs root and iproute2's ip")


@pytest.fixture(scope="module")
def mnp_queue(batch):
    env = make_env(batch, f"mnp-{uuid.uuid4().hex[:6]}", max_vcpus=8, types=("c6i.large",))
    return make_queue(batch, env)


def register(batch, command, num_nodes=3, main=0, **extra):
    name = f"mnp-{uuid.uuid4().hex[:8]}"
    container = {"image": "nimbus/host", "command": command, "vcpus": 1, "memory": 256}
    batch.register_job_definition(
        jobDefinitionName=name, type="multinode",
        nodeProperties={"numNodes": num_nodes, "mainNode": main,
                        "nodeRangeProperties": [{"targetNodes": "0:", "container": container}]}, **extra)
    return name


def node_statuses(batch, job_id, num_nodes):
    """The nodes' statuses by index (the nodes are made by the scheduler, after SubmitJob)."""
    found = batch.describe_jobs(jobs=[f"{job_id}#{i}" for i in range(num_nodes)])["jobs"]
    return [j["status"] for j in sorted(found, key=lambda j: j["nodeDetails"]["nodeIndex"])]


def nodes_of(batch, job_id):
    return batch.list_jobs(multiNodeJobId=job_id, jobStatus="SUCCEEDED")["jobSummaryList"] + \
        batch.list_jobs(multiNodeJobId=job_id, jobStatus="FAILED")["jobSummaryList"]


def test_workers_reach_the_main_node_over_tcp(batch, batch_server, mnp_queue):
    needs_root()
    definition = register(batch, ["python3", "-c", NODE], main=1)
    described = batch.describe_job_definitions(jobDefinitions=[definition])["jobDefinitions"][0]
    assert described["type"] == "multinode" and described["nodeProperties"]["numNodes"] == 3
    submitted = batch.submit_job(jobName="mnp", jobQueue=mnp_queue, jobDefinition=definition)
    job_id = submitted["jobId"]
    done = finished(batch, job_id, timeout=120)
    assert done["status"] == "SUCCEEDED", done
    assert done["nodeProperties"]["mainNode"] == 1
    nodes = {n["jobId"]: n for n in nodes_of(batch, job_id)}
    assert sorted(nodes) == [f"{job_id}#{i}" for i in range(3)]
    details = [job(batch, f"{job_id}#{i}") for i in range(3)]
    assert [d["nodeDetails"] for d in details] == [
        {"nodeIndex": 0, "isMainNode": False}, {"nodeIndex": 1, "isMainNode": True},
        {"nodeIndex": 2, "isMainNode": False}]
    # The job ends with its main node; a worker still exiting then is stopped (as on AWS).
    assert details[1]["status"] == "SUCCEEDED", details[1]
    assert all(d["status"] in ("SUCCEEDED", "FAILED") for d in details), details
    # The main node started first; each node ran on an instance of its own.
    assert details[1]["startedAt"] <= min(details[0]["startedAt"], details[2]["startedAt"])
    instances = {d["container"]["containerInstanceArn"] for d in details}
    assert len(instances) == 3
    stream = lambda d: d["attempts"][-1]["container"]["logStreamName"]  # noqa: E731
    main_lines = until("the main node's output", lambda: (lambda lines: lines if len(lines) == 2 else None)(
        log_lines(batch_server.endpoint, stream(details[1]))))
    assert sorted(line.split("'")[1] for line in main_lines) == ["hello from 0", "hello from 2"]
    main_address = until("node 0's output", lambda: log_lines(batch_server.endpoint, stream(details[0])))[0].rsplit(" ", 1)[1]
    assert main_address.startswith("172.31.")
    assert details[1]["container"]["networkInterfaces"] == [{"privateIpv4Address": main_address}]
    # The workers connected from their own private addresses, not the main node's.
    peers = {line.rsplit(" ", 1)[1] for line in main_lines}
    assert len(peers) == 2 and main_address not in peers
    # ListJobs summaries carry the nodes' properties; the aws CLI lists them too.
    summary = nodes[f"{job_id}#1"]["nodeProperties"]
    assert summary == {"isMainNode": True, "numNodes": 3, "nodeIndex": 1}
    out = subprocess.run(["aws", "batch", "list-jobs", "--multi-node-job-id", job_id, "--job-status", "SUCCEEDED",
                          "--endpoint-url", batch_server.endpoint, "--region", "us-east-1", "--output", "json"],
                         capture_output=True, text=True, env={**os.environ, "AWS_ACCESS_KEY_ID": "x",
                                                              "AWS_SECRET_ACCESS_KEY": "x"}, timeout=60)
    assert out.returncode == 0, out.stderr
    listed = {j["jobId"] for j in json.loads(out.stdout)["jobSummaryList"]}
    assert listed == {d["jobId"] for d in details if d["status"] == "SUCCEEDED"}


def test_a_failing_main_node_fails_the_job_and_stops_the_others(batch, mnp_queue):
    needs_root()
    script = 'if [ "$AWS_BATCH_JOB_NODE_INDEX" = "$AWS_BATCH_JOB_MAIN_NODE_INDEX" ]; then sleep 1; exit 4; fi; exec sleep 600'
    definition = register(batch, ["sh", "-c", script], num_nodes=2)
    job_id = batch.submit_job(jobName="mnp-fail", jobQueue=mnp_queue, jobDefinition=definition)["jobId"]
    done = finished(batch, job_id, timeout=120)
    assert done["status"] == "FAILED", done
    assert done["container"]["exitCode"] == 4
    assert done["statusReason"] == "Essential container in task exited"
    worker = finished(batch, f"{job_id}#1")
    assert worker["status"] == "FAILED"
    assert worker["statusReason"] == "Main node 0 of the multi-node parallel job exited"


# The main node greets whoever connects, until stopped; the other node waits. (A job's first
# process is its PID namespace's init: SIGTERM reaches it only through a handler.)
LISTEN = r"""
import os, signal, socket, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
if os.environ["AWS_BATCH_JOB_NODE_INDEX"] == os.environ["AWS_BATCH_JOB_MAIN_NODE_INDEX"]:
    server = socket.create_server(("0.0.0.0", 7777))
    while True:
        peer = server.accept()[0]
        peer.sendall(b"main node here\n")
        peer.close()
time.sleep(600)
"""

# An ordinary job: exits 3 when the main node at argv[1] greets it, 0 otherwise. (A connection
# alone proves nothing: the network outside may accept any connection.)
PROBE = r"""
import socket, sys
try:
    with socket.create_connection((sys.argv[1], 7777), timeout=3) as peer:
        greeting = peer.makefile().readline()
except OSError as error:
    greeting = f"unreachable: {error}"
print(greeting.strip())
sys.exit(3 if greeting == "main node here\n" else 0)
"""


def test_terminating_the_job_ends_every_node_and_no_other_job_reaches_them(batch, mnp_queue):
    needs_root()
    definition = register(batch, ["python3", "-c", LISTEN], num_nodes=2)
    job_id = batch.submit_job(jobName="mnp-stop", jobQueue=mnp_queue, jobDefinition=definition)["jobId"]
    until("both nodes running", lambda: node_statuses(batch, job_id, 2) == ["RUNNING", "RUNNING"], timeout=60)
    assert job(batch, job_id)["status"] == "RUNNING"
    # The nodes' network is theirs: a job of the same queue, on another instance, cannot reach
    # the main node at its address.
    [interface] = job(batch, f"{job_id}#0")["container"]["networkInterfaces"]
    probe = f"probe-{uuid.uuid4().hex[:8]}"
    batch.register_job_definition(jobDefinitionName=probe, type="container", containerProperties={
        "image": "nimbus/host", "command": ["python3", "-c", PROBE, interface["privateIpv4Address"]],
        "vcpus": 1, "memory": 256})
    probed = finished(batch, batch.submit_job(jobName="probe", jobQueue=mnp_queue, jobDefinition=probe)["jobId"])
    assert probed["status"] == "SUCCEEDED", (probed["statusReason"], probed["container"].get("exitCode"), probed["container"].get("reason"))
    batch.terminate_job(jobId=job_id, reason="stopped by the test")
    done = finished(batch, job_id)
    assert done["status"] == "FAILED" and done["isTerminated"], done
    assert done["statusReason"] == "stopped by the test"
    assert node_statuses(batch, job_id, 2) == ["FAILED", "FAILED"]


def test_definitions_and_overrides_are_refused_as_aws_refuses_them(batch, mnp_queue):
    container = {"image": "nimbus/host", "command": ["true"], "vcpus": 1, "memory": 256}
    bad = [
        {"numNodes": 3, "mainNode": 0, "nodeRangeProperties": [{"targetNodes": "0:1", "container": container}]},
        {"numNodes": 2, "mainNode": 2, "nodeRangeProperties": [{"targetNodes": "0:", "container": container}]},
        {"numNodes": 2, "mainNode": 0, "nodeRangeProperties": [{"targetNodes": "0:7", "container": container}]},
    ]
    for properties in bad:
        with pytest.raises(ClientError) as refused:
            batch.register_job_definition(jobDefinitionName="bad", type="multinode", nodeProperties=properties)
        assert refused.value.response["Error"]["Code"] == "ClientException"
    with pytest.raises(ClientError) as fargate:
        batch.register_job_definition(jobDefinitionName="bad", type="multinode", nodeProperties=bad[0],
                                      platformCapabilities=["FARGATE"])
    assert "Fargate" in fargate.value.response["Error"]["Message"]
    definition = register(batch, ["true"], num_nodes=2)
    with pytest.raises(ClientError) as mismatch:
        batch.submit_job(jobName="m", jobQueue=mnp_queue, jobDefinition=definition,
                         nodeOverrides={"nodePropertyOverrides": [{"targetNodes": "0:0"}]})
    assert mismatch.value.response["Error"]["Message"] == \
        "NodeOverride targets should match job definition. Non matching targets - 0:0"
    # numNodes overridden through the open range: the job has 4 nodes (it waits, queued).
    job_id = batch.submit_job(jobName="m", jobQueue=mnp_queue, jobDefinition=definition,
                              nodeOverrides={"numNodes": 4})["jobId"]
    assert job(batch, job_id)["nodeProperties"]["numNodes"] == 4
    batch.cancel_job(jobId=job_id, reason="not needed")
    cancelled = finished(batch, job_id)
    assert cancelled["status"] == "FAILED" and cancelled["isCancelled"]


def test_spot_environments_do_not_run_nodes(batch):
    spot = make_env(batch, f"mnp-spot-{uuid.uuid4().hex[:6]}", kind="SPOT", max_vcpus=8, types=("c6i.large",),
                    allocationStrategy="SPOT_PRICE_CAPACITY_OPTIMIZED", bidPercentage=100)
    queue = make_queue(batch, spot)
    job_id = batch.submit_job(jobName="m", jobQueue=queue, jobDefinition=register(batch, ["true"], num_nodes=2))["jobId"]
    main = until("the main node's reason", lambda: next(
        (j for j in batch.describe_jobs(jobs=[f"{job_id}#0"])["jobs"] if j.get("statusReason")), None))
    assert main["status"] == "RUNNABLE"
    assert "aren't supported on compute environments that use Spot Instances" in main["statusReason"]
    until("the job's reason", lambda: job(batch, job_id).get("statusReason") == main["statusReason"])
    batch.terminate_job(jobId=job_id, reason="spot")
    assert finished(batch, job_id)["status"] == "FAILED"
    assert finished(batch, f"{job_id}#0")["status"] == "FAILED"


def test_after_kill_9_the_nodes_are_found_dead_and_the_job_retried(server_factory):
    needs_root()
    srv = server_factory(extra_args=[*CAPACITY])
    batch = aws_client("batch", srv.endpoint)
    env = make_env(batch, "mnp-durable", max_vcpus=4, types=("c6i.large",))
    queue = make_queue(batch, env)
    script = '[ "$AWS_BATCH_JOB_ATTEMPT" -ge 2 ] || exec sleep 600'
    definition = register(batch, ["sh", "-c", script], num_nodes=2, retryStrategy={"attempts": 2})
    job_id = batch.submit_job(jobName="durable", jobQueue=queue, jobDefinition=definition)["jobId"]
    until("both nodes running", lambda: node_statuses(batch, job_id, 2) == ["RUNNING", "RUNNING"], timeout=60)
    srv.kill()
    srv.start()
    batch = aws_client("batch", srv.endpoint)
    done = finished(batch, job_id, timeout=120)
    assert done["status"] == "SUCCEEDED", done
    assert len(done["attempts"]) == 2
    assert done["attempts"][0]["statusReason"].startswith("Host EC2 (instance i-")
    # The worker was found dead too; its second attempt ends with the main node.
    worker = finished(batch, f"{job_id}#1")
    assert worker["attempts"][0]["statusReason"].startswith("Host EC2 (instance i-"), worker
