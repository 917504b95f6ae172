#!/usr/bin/env python3
"""Applications: deploying a 10-function SAM stack from an unchanged package (budget ≤ 1 s with
`nimbus deploy`; the real `sam deploy` against the same nimbus beside it), and sync --watch from
an edit to the new code serving (budget ≤ 300 ms) with `nimbus sync --watch` and
`sam sync --watch`, in one run.

    cargo build --release --bin nimbus && python3 bench/deploy.py [--rounds 5] [--sam PATH]

Starts its own nimbus on a free port with a temporary data directory and stops it at the end.
The SAM CLI is the one scripts/test installs (target/sam-venv/bin/sam) unless --sam names one;
without it the SAM figures are skipped.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import boto3
from botocore.config import Config

from services import REPO, start_nimbus, stop_nimbus

FUNCTIONS = 10
CODE = 'VERSION = "{version}"\n\ndef handler(event, context):\n    return {{"version": VERSION, "n": {n}}}\n'


def make_app(root, version="v1"):
    resources = []
    for n in range(FUNCTIONS):
        directory = os.path.join(root, f"fn{n}")
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "app.py"), "w") as f:
            f.write(CODE.format(version=version, n=n))
        resources.append(f"""  Fn{n}:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn{n}/
      Handler: app.handler
      Runtime: python3.11
""")
    with open(os.path.join(root, "template.yaml"), "w") as f:
        f.write("AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\nResources:\n")
        f.write("".join(resources))


def env_for(endpoint, scratch):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="test",
               AWS_SECRET_ACCESS_KEY="test", SAM_CLI_TELEMETRY="0", SAM_CLI_POLL_DELAY="0.1",
               AWS_CONFIG_FILE=os.path.join(scratch, "none"), __SAM_CLI_APP_DIR=os.path.join(scratch, "samdir"))
    return env


def timed_run(command, cwd, env):
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[0:2]} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def nimbus_deploy(binary, app, stack, endpoint, env):
    return timed_run([binary, "deploy", "-t", os.path.join(app, "template.yaml"), "--stack-name", stack, "--yes",
                      "--endpoint", endpoint], app, env)


def sam_deploy(sam, app, stack, env):
    return timed_run([sam, "deploy", "--template-file", "template.yaml", "--stack-name", stack, "--resolve-s3",
                      "--capabilities", "CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND", "--no-confirm-changeset",
                      "--no-fail-on-empty-changeset", "--region", "us-east-1", "--no-progressbar"], app, env)


def watch_latency(command, app, env, lam, stack, cfn, rounds, stdin=""):
    """Edit → the edited function answers the new version, per round (seconds)."""
    process = subprocess.Popen(command, cwd=app, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, text=True)
    if stdin:
        process.stdin.write(stdin)
        process.stdin.flush()
    samples = []
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
                if status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
                    break
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{stack} never deployed")
            time.sleep(0.1)
        function = next(r["PhysicalResourceId"] for r in cfn.list_stack_resources(StackName=stack)
                        ["StackResourceSummaries"] if r["LogicalResourceId"] == "Fn0")
        time.sleep(1.0)  # the watcher is installed after the deploy
        for round_ in range(rounds):
            version = f"w{round_}-{time.time_ns()}"
            started = time.perf_counter()
            with open(os.path.join(app, "fn0", "app.py"), "w") as f:
                f.write(CODE.format(version=version, n=0))
            while True:
                answer = json.loads(lam.invoke(FunctionName=function)["Payload"].read())
                if answer.get("version") == version:
                    break
                if time.perf_counter() - started > 120:
                    raise SystemExit("the edit never went live")
                time.sleep(0.005)
            samples.append(time.perf_counter() - started)
            time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return samples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nimbus", default=os.path.join(REPO, "target/release/nimbus"))
    parser.add_argument("--sam", default=os.path.join(REPO, "target/sam-venv/bin/sam"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    have_sam = os.path.exists(args.sam)
    server, endpoint, data = start_nimbus(args.nimbus, [])
    scratch = tempfile.mkdtemp(prefix="nimbus-bench-deploy-")
    try:
        env = env_for(endpoint, scratch)
        config = Config(retries={"mode": "standard", "total_max_attempts": 1})
        cfn = boto3.client("cloudformation", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="test", aws_secret_access_key="test", config=config)
        lam = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="test", aws_secret_access_key="test", config=config)
        print(f"{FUNCTIONS}-function SAM stack, median of {args.rounds} runs")
        app = os.path.join(scratch, "nimbus-app")
        make_app(app)
        first = nimbus_deploy(args.nimbus, app, "bench-nimbus", endpoint, env)
        unchanged = [nimbus_deploy(args.nimbus, app, "bench-nimbus", endpoint, env) for _ in range(args.rounds)]
        print(f"  nimbus deploy: first {first * 1000:.0f} ms; unchanged package "
              f"{statistics.median(unchanged) * 1000:.0f} ms (budget 1000 ms)")
        if have_sam:
            sam_app = os.path.join(scratch, "sam-app")
            make_app(sam_app)
            first = sam_deploy(args.sam, sam_app, "bench-sam", env)
            unchanged = [sam_deploy(args.sam, sam_app, "bench-sam", env) for _ in range(args.rounds)]
            print(f"  sam deploy:    first {first * 1000:.0f} ms; unchanged package "
                  f"{statistics.median(unchanged) * 1000:.0f} ms")
        watched = watch_latency([args.nimbus, "sync", "--watch", "--stack-name", "bench-nimbus", "-t",
                                 os.path.join(app, "template.yaml"), "--endpoint", endpoint],
                                app, env, lam, "bench-nimbus", cfn, args.rounds)
        print(f"  nimbus sync --watch: edit → new code serving {statistics.median(watched) * 1000:.0f} ms "
              f"(budget 300 ms)")
        if have_sam:
            watched = watch_latency([args.sam, "sync", "--watch", "--stack-name", "bench-sam", "--template-file",
                                     "template.yaml", "--no-dependency-layer", "--region", "us-east-1"],
                                    sam_app, env, lam, "bench-sam", cfn, args.rounds, stdin="y\n")
            print(f"  sam sync --watch:    edit → new code serving {statistics.median(watched) * 1000:.0f} ms")
    finally:
        stop_nimbus(server, data)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
