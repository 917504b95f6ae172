#!/usr/bin/env python3
"""EC2 capacity figures with boto3: RunInstances → running (the client polling DescribeInstances,
so boto3's cost is in it), nimbus's memory and CPU per running instance (100 by default), and a
spot interruption's notice → terminated with the instance's processes gone.

    cargo build --release --bin nimbus && python3 bench/ec2.py [--instances 100]

Starts its own nimbus (`--capacity` large enough, `--spot-notice-seconds 0`) on a free port with a
temporary data directory and stops it at the end.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

import boto3
import psutil
from botocore.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AMI = "ami-0a1b2c3d4e5f60001"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--nimbus", default=os.path.join(REPO, "target", "release", "nimbus"))
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="nimbus-ec2-bench-")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [args.nimbus, "up", "--port", str(port), "--data-dir", data, "--quiet",
         "--capacity", f"vcpus={2 * args.instances + 8},memory={args.instances + 8}", "--spot-notice-seconds", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(endpoint + "/_nimbus/health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
                           aws_secret_access_key="x", config=Config(retries={"total_max_attempts": 1}))
        process = psutil.Process(server.pid)
        ec2.describe_instance_types(InstanceTypes=["t3.nano"])  # opens EC2
        rss_before = process.memory_info().rss
        to_running, ids = [], []
        for _ in range(args.instances):
            started = time.perf_counter()
            iid = ec2.run_instances(ImageId=AMI, InstanceType="t3.nano", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
            while ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"] != "running":
                pass
            to_running.append(time.perf_counter() - started)
            ids.append(iid)
        time.sleep(1)
        rss_after = process.memory_info().rss
        children = process.children(recursive=True)
        children_rss = sum(c.memory_info().rss for c in children if c.is_running())
        cpu_before = process.cpu_times()
        time.sleep(5)
        cpu_after = process.cpu_times()
        idle_cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / 5 * 100
        ec2.terminate_instances(InstanceIds=ids)

        spot = ec2.run_instances(ImageId=AMI, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                 InstanceMarketOptions={"MarketType": "spot"})["Instances"][0]["InstanceId"]
        while ec2.describe_instances(InstanceIds=[spot])["Reservations"][0]["Instances"][0]["State"]["Name"] != "running":
            pass
        started = time.perf_counter()
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/_nimbus/ec2/interrupt?instance={spot}", method="POST"))
        while ec2.describe_instances(InstanceIds=[spot])["Reservations"][0]["Instances"][0]["State"]["Name"] != "terminated":
            pass
        interruption = time.perf_counter() - started

        ms = sorted(t * 1000 for t in to_running)
        print(f"RunInstances → running (boto3 polling), {args.instances} instances: "
              f"p50 {statistics.median(ms):.1f} ms, p90 {ms[int(len(ms) * 0.9)]:.1f} ms, max {ms[-1]:.1f} ms")
        print(f"nimbus RSS {rss_before / 2**20:.1f} → {rss_after / 2**20:.1f} MiB "
              f"({(rss_after - rss_before) / args.instances / 1024:.0f} KiB per instance); "
              f"{len(children)} child processes (instances and their network relays), "
              f"{children_rss / args.instances / 2**20:.2f} MiB RSS per instance")
        print(f"nimbus CPU with {args.instances} idle instances: {idle_cpu:.2f} %")
        print(f"spot interruption (notice 0 s) → terminated, processes gone: {interruption * 1000:.1f} ms")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
