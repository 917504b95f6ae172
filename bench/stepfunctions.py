#!/usr/bin/env python3
"""Step Functions figures with boto3: state transitions per second of a Pass-only machine
(EXPRESS through StartSyncExecution, STANDARD through StartExecution with its durable history),
and StartSyncExecution latency of a two-Lambda workflow against the two direct invokes.

    cargo build --bin nimbus && python3 bench/stepfunctions.py [--states 50] [--executions 200] [--jsonata]

`--jsonata` makes every Pass state a JSONata one with an `Output` expression
(`{"n": "{% $states.input.n + 1 %}"}`), which nimbus evaluates in its worker processes.

Starts its own nimbus on a free port with a temporary data directory and stops it at the end.
The debug build is the default (`--nimbus` for another): its figures are far below a release
build's; compare runs of the same build only.
"""

import argparse
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLE = "arn:aws:iam::000000000000:role/r"
ECHO = "def handler(event, context):\n    return event\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x",
                        config=Config(retries={"total_max_attempts": 1}, inject_host_prefix=False,
                                      max_pool_connections=16, read_timeout=120))


def pass_chain(n, jsonata=False):
    states = {f"S{i}": {"Type": "Pass", "Next": f"S{i + 1}"} for i in range(n - 1)}
    states[f"S{n - 1}"] = {"Type": "Pass", "End": True}
    if jsonata:
        for state in states.values():
            state["Output"] = {"n": "{% $states.input.n + 1 %}"}
        return {"QueryLanguage": "JSONata", "StartAt": "S0", "States": states}
    return {"StartAt": "S0", "States": states}


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--states", type=int, default=50)
    parser.add_argument("--executions", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--latency-runs", type=int, default=100)
    parser.add_argument("--nimbus", default=os.path.join(REPO, "target", "debug", "nimbus"))
    parser.add_argument("--jsonata", action="store_true", help="JSONata Pass states with an Output expression")
    parser.add_argument("--only-express", action="store_true", help="the EXPRESS transitions figure only")
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="nimbus-sfn-bench-")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([args.nimbus, "up", "--port", str(port), "--data-dir", data, "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(endpoint + "/_nimbus/health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        sfn = client("stepfunctions", endpoint)
        definition = json.dumps(pass_chain(args.states, args.jsonata))
        express = sfn.create_state_machine(name="bench-express", definition=definition, roleArn=ROLE,
                                           type="EXPRESS")["stateMachineArn"]
        standard = sfn.create_state_machine(name="bench-standard", definition=definition,
                                            roleArn=ROLE)["stateMachineArn"]
        sfn.start_sync_execution(stateMachineArn=express, input='{"n": 1}')  # warm

        def sync_run(_):
            assert sfn.start_sync_execution(stateMachineArn=express, input='{"n": 1}')["status"] == "SUCCEEDED"

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(sync_run, range(args.executions)))
        elapsed = time.perf_counter() - started
        print(f"EXPRESS  {args.executions} sync executions x {args.states} Pass states, {args.clients} clients: "
              f"{args.executions * args.states / elapsed:,.0f} transitions/s ({args.executions / elapsed:,.0f} executions/s)")
        if args.only_express:
            return

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            arns = list(pool.map(lambda _: sfn.start_execution(stateMachineArn=standard, input='{"n": 1}')["executionArn"],
                                 range(args.executions)))
        accepted = time.perf_counter() - started
        pending = set(arns)
        while pending:
            done = {a for a in list(pending)[:50] if sfn.describe_execution(executionArn=a)["status"] != "RUNNING"}
            pending -= done
            if not done:
                time.sleep(0.02)
        elapsed = time.perf_counter() - started
        print(f"STANDARD {args.executions} executions x {args.states} Pass states (history on SQLite): "
              f"{args.executions * args.states / elapsed:,.0f} transitions/s, "
              f"StartExecution {args.executions / accepted:,.0f}/s accepted")

        lam = client("lambda", endpoint)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr("app.py", ECHO)
        lam.create_function(FunctionName="bench-echo", Runtime="python3.12", Role=ROLE, Handler="app.handler",
                            Code={"ZipFile": buffer.getvalue()})
        lam.get_waiter("function_active_v2").wait(FunctionName="bench-echo")
        function = lam.get_function(FunctionName="bench-echo")["Configuration"]["FunctionArn"]
        two = {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": function, "Next": "B"},
                                          "B": {"Type": "Task", "Resource": function, "End": True}}}
        workflow = sfn.create_state_machine(name="bench-two-lambdas", definition=json.dumps(two), roleArn=ROLE,
                                            type="EXPRESS")["stateMachineArn"]
        direct, through = [], []
        for _ in range(5):
            lam.invoke(FunctionName="bench-echo", Payload=b"{}")
            sfn.start_sync_execution(stateMachineArn=workflow)
        for _ in range(args.latency_runs):
            t = time.perf_counter()
            lam.invoke(FunctionName="bench-echo", Payload=b'{"k": 1}')
            lam.invoke(FunctionName="bench-echo", Payload=b'{"k": 1}')
            direct.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            sfn.start_sync_execution(stateMachineArn=workflow, input='{"k": 1}')
            through.append((time.perf_counter() - t) * 1000)
        print(f"two-Lambda workflow, StartSyncExecution: p50 {statistics.median(through):.2f} ms, "
              f"p99 {percentile(through, 0.99):.2f} ms; two direct invokes: p50 {statistics.median(direct):.2f} ms, "
              f"p99 {percentile(direct, 0.99):.2f} ms")
    finally:
        server.terminate()
        server.wait(timeout=15)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
