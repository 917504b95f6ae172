#!/usr/bin/env python3
"""AWS Batch figures with boto3: SubmitJob → RUNNING on warm capacity (nimbus's own `createdAt` →
`startedAt`, and as a polling client sees it), trivial jobs per second through one queue, a
1,000-child array from submit to all SUCCEEDED, and SubmitJob → RUNNING while 10,000 jobs wait
in another queue (the scheduler's cost with a deep backlog).

    cargo build --bin nimbus && python3 bench/batch.py --nimbus target/debug/nimbus

Starts its own nimbus (`--capacity` large and scaled) on a free port with a temporary data
directory and stops it at the end. Debug builds give debug figures: say which in RESULTS.md.
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

import boto3
from botocore.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What the bench's nimbus lends to EC2 instances: room for the warm capacity below on any host.
CAPACITY = ["--capacity", "vcpus=512,memory=512,scale=32"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until(check, timeout=600.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise SystemExit("timed out")


def cpu_seconds(pid):
    """CPU time of a process and of its reaped children (the jobs' sandboxes, set-up included)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / ticks
    children = (int(fields[13]) + int(fields[14])) / ticks
    return own, children


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def warm_queue(batch, endpoint, queue, environment="warm"):
    """A job queue on warm capacity: 32 vCPUs kept launched (minvCpus), four c6i.2xlarge, waited
    for until every instance runs."""
    batch.create_compute_environment(computeEnvironmentName=environment, type="MANAGED", computeResources={
        "type": "EC2", "minvCpus": 32, "maxvCpus": 64, "instanceTypes": ["c6i.2xlarge"]})
    until(lambda: batch.describe_compute_environments(computeEnvironments=[environment])
          ["computeEnvironments"][0]["status"] == "VALID")
    batch.create_job_queue(jobQueueName=queue, priority=1,
                           computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}])
    until(lambda: (lambda hosts: hosts and all(h["state"] == "Running" for h in hosts))(
        urllib_json(endpoint, "/_nimbus/batch/jobs")["instances"]))


def submit_to_running(batch, queue, definition):
    """One job submitted and waited for until it ends: (nimbus's `startedAt − createdAt`, submit →
    RUNNING as a client polling DescribeJobs sees it), in ms."""
    def describe():
        return batch.describe_jobs(jobs=[job_id])["jobs"][0]

    started = time.perf_counter()
    job_id = batch.submit_job(jobName="w", jobQueue=queue, jobDefinition=definition)["jobId"]
    until(lambda: describe()["status"] in ("RUNNING", "SUCCEEDED", "FAILED"))
    client_ms = (time.perf_counter() - started) * 1000
    done = until(lambda: (lambda j: j if j["status"] in ("SUCCEEDED", "FAILED") else None)(describe()))
    if done["status"] != "SUCCEEDED":
        raise SystemExit(f"job on {definition} failed: {done.get('statusReason')}")
    return done["startedAt"] - done["createdAt"], client_ms


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nimbus", default=os.path.join(REPO, "target", "release", "nimbus"))
    parser.add_argument("--warm", type=int, default=50, help="jobs for submit → RUNNING")
    parser.add_argument("--throughput", type=int, default=500, help="trivial jobs through one queue")
    parser.add_argument("--array", type=int, default=1000)
    parser.add_argument("--backlog", type=int, default=10000)
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="nimbus-batch-bench-")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [args.nimbus, "up", "--port", str(port), "--data-dir", data, "--quiet", *CAPACITY],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until(lambda: _healthy(endpoint), timeout=20)
        batch = boto3.client("batch", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
                             aws_secret_access_key="x", config=Config(retries={"total_max_attempts": 1}))
        warm_queue(batch, endpoint, "q")
        batch.create_compute_environment(computeEnvironmentName="parked", type="MANAGED", state="DISABLED",
                                         computeResources={"type": "EC2", "maxvCpus": 4, "instanceTypes": ["c6i"]})
        until(lambda: all(c["status"] == "VALID" for c in batch.describe_compute_environments()["computeEnvironments"]))
        batch.create_job_queue(jobQueueName="backlog", priority=1,
                               computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "parked"}])
        batch.register_job_definition(jobDefinitionName="true", type="container", containerProperties={
            "image": "nimbus/host", "command": ["true"], "vcpus": 1, "memory": 128})
        batch.register_job_definition(jobDefinitionName="hold", type="container", containerProperties={
            "image": "nimbus/host", "command": ["sleep", "0.3"], "vcpus": 1, "memory": 128})

        def describe(job_id):
            return batch.describe_jobs(jobs=[job_id])["jobs"][0]

        def warm_run(queue_label):
            server_ms, client_ms = [], []
            for _ in range(args.warm):
                server, client = submit_to_running(batch, "q", "hold")
                server_ms.append(server)
                client_ms.append(client)
            print(f"submit → RUNNING, warm {queue_label}: nimbus createdAt→startedAt p50 {statistics.median(server_ms):.1f} ms "
                  f"p99 {percentile(server_ms, 0.99):.1f} ms; client polling p50 {statistics.median(client_ms):.1f} ms "
                  f"(budget ≤ 20 ms)")

        warm_run("(empty backlog)")

        if args.throughput:
            throughput(batch, server, args.throughput)
        if args.array:
            started = time.perf_counter()
            parent = batch.submit_job(jobName="arr", jobQueue="q", jobDefinition="true",
                                      arrayProperties={"size": args.array})["jobId"]
            until(lambda: describe(parent)["status"] in ("SUCCEEDED", "FAILED"))
            print(f"array of {args.array}: submit → all SUCCEEDED {time.perf_counter() - started:.2f} s")

        if args.backlog:
            batch.submit_job(jobName="deep", jobQueue="backlog", jobDefinition="true",
                             arrayProperties={"size": args.backlog})
            until(lambda: batch.list_jobs(jobQueue="backlog", jobStatus="PENDING")["jobSummaryList"])
            warm_run(f"({args.backlog} jobs waiting in another queue)")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data, ignore_errors=True)


def throughput(batch, server, count):
    """`count` trivial jobs submitted one after the other and waited for until all ended; with the
    CPU time nimbus and its jobs' processes (sandbox set-up included) spent per job."""
    started = time.perf_counter()
    cpu_before = cpu_seconds(server.pid)
    ids = [batch.submit_job(jobName="t", jobQueue="q", jobDefinition="true")["jobId"] for _ in range(count)]
    submitted = time.perf_counter() - started
    for chunk in range(0, len(ids), 100):
        until(lambda: all(j["status"] in ("SUCCEEDED", "FAILED")
                          for j in batch.describe_jobs(jobs=ids[chunk:chunk + 100])["jobs"]))
    elapsed = time.perf_counter() - started
    cpu_after = cpu_seconds(server.pid)
    own, children = ((after - before) * 1000 / count for before, after in zip(cpu_before, cpu_after))
    print(f"throughput: {count} trivial jobs in {elapsed:.2f} s = {count / elapsed:.0f} jobs/s "
          f"(SubmitJob alone {count / submitted:.0f}/s; anchor: Slurm ~500 jobs/s); CPU per job: "
          f"nimbus {own:.1f} ms, its jobs' processes {children:.1f} ms")


def _healthy(endpoint):
    try:
        urllib.request.urlopen(endpoint + "/_nimbus/health", timeout=1)
        return True
    except OSError:
        return False


def urllib_json(endpoint, path):
    import json
    with urllib.request.urlopen(endpoint + path, timeout=10) as response:
        return json.loads(response.read())


if __name__ == "__main__":
    main()
