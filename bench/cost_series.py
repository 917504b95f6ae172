#!/usr/bin/env python3
"""The meter's series at the size of a busy week: 100 instances (on-demand and spot, t3 and m5;
the on-demand ones stopped and started once, so ~150 stretches in the ledger) launched through
boto3 in four batches across a week of a virtual clock, then the time of
`GET /_nimbus/ec2/meter/series` (the whole week in hourly buckets; the last hour by minutes; the
week in 10-minute buckets, far more than the console asks for) beside
`GET /_nimbus/ec2/meter`, medians of repeated calls.

    cargo build --bin nimbus && python3 bench/cost_series.py [--instances 100] [--rounds 30]

Starts its own nimbus (`--clock virtual`) on a free port with a temporary data directory and stops
it at the end. The debug build is the default (`--nimbus` for another).
"""

import argparse
import json
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
from botocore.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AMI = "ami-0a1b2c3d4e5f60001"
WEEK = 7 * 86400
# (type, spot): each batch of a quarter of the instances runs for a quarter of the week.
BATCHES = [("t3.micro", False), ("t3.small", True), ("m5.large", False), ("m5.large", True)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(endpoint, path):
    with urllib.request.urlopen(endpoint + path, timeout=60) as response:
        return json.loads(response.read())


def advance(endpoint, seconds):
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/_nimbus/clock/advance?seconds={seconds}", method="POST", data=b""))


def settle(ec2, ids, state):
    while True:
        reservations = ec2.describe_instances(InstanceIds=ids)["Reservations"]
        if all(i["State"]["Name"] == state for r in reservations for i in r["Instances"]):
            return
        time.sleep(0.1)


def timed(endpoint, path, rounds):
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        get(endpoint, path)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), min(samples), max(samples)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--nimbus", default=os.path.join(REPO, "target", "debug", "nimbus"))
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="nimbus-cost-bench-")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [args.nimbus, "up", "--port", str(port), "--data-dir", data, "--quiet", "--clock", "virtual",
         "--capacity", f"vcpus={2 * args.instances + 8},memory={8 * args.instances + 8}"],
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
        per_batch = args.instances // len(BATCHES)
        quarter = WEEK // len(BATCHES)
        for instance_type, spot in BATCHES:
            extra = {"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}
            ids = [i["InstanceId"] for i in ec2.run_instances(ImageId=AMI, InstanceType=instance_type, MinCount=per_batch,
                                                              MaxCount=per_batch, **extra)["Instances"]]
            settle(ec2, ids, "running")
            advance(endpoint, quarter // 2)
            if not spot:  # a second stretch each
                ec2.stop_instances(InstanceIds=ids)
                settle(ec2, ids, "stopped")
                ec2.start_instances(InstanceIds=ids)
                settle(ec2, ids, "running")
            advance(endpoint, quarter // 2)
            ec2.terminate_instances(InstanceIds=ids)
            settle(ec2, ids, "terminated")
        week = get(endpoint, "/_nimbus/ec2/meter/series")
        meter = get(endpoint, "/_nimbus/ec2/meter")
        print(f"ledger: {args.instances} instances, {sum(l['instances'] for l in meter['lines'])} metered, "
              f"{len(meter['lines'])} meter lines, total {meter['total_usd']:.4f} USD; "
              f"series total {week['totals']['instances_usd']:.4f} USD in {len(week['buckets'])} buckets of {week['bucket_seconds']:.0f} s")
        for label, path in [("series, the week (auto: hourly)", "/_nimbus/ec2/meter/series"),
                            ("series, the last hour (auto: per minute)", "/_nimbus/ec2/meter/series?since=3600"),
                            ("series, the week in 10-minute buckets (1,008)", "/_nimbus/ec2/meter/series?bucket=600"),
                            ("meter (totals), the week", "/_nimbus/ec2/meter")]:
            median, low, high = timed(endpoint, path, args.rounds)
            print(f"{label}: median {median:.2f} ms ({low:.2f}–{high:.2f}), {args.rounds} calls")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
