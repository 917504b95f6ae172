#!/usr/bin/env python3
"""API Gateway and function URL front doors against a direct Invoke of the same function, in
one run: p50/p99 over raw keep-alive HTTP (no SDK in the way), and requests/s from N clients.
Budget (ARCHITECTURE.md): an HTTP API or function URL request adds ≤ 0.2 ms at p50.

    cargo build --release --bin nimbus && python3 bench/front_doors.py [--requests 5000] [--clients 8]

Starts its own nimbus on a free port with a temporary data directory and stops it at the end.
"""

import argparse
import http.client
import io
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
import zipfile

import boto3
from botocore.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANDLER = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'}\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def latencies(port, method, path, requests):
    connection = http.client.HTTPConnection("127.0.0.1", port)
    samples = []
    for i in range(requests + 200):
        started = time.perf_counter()
        connection.request(method, path, body=b"{}" if method == "POST" else None)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"{method} {path} answered {response.status}")
        if i >= 200:  # warm-up
            samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)]


def throughput(port, method, path, clients, seconds=3.0):
    done, stop = [0] * clients, time.monotonic() + seconds

    def client(index):
        connection = http.client.HTTPConnection("127.0.0.1", port)
        while time.monotonic() < stop:
            connection.request(method, path, body=b"{}" if method == "POST" else None)
            connection.getresponse().read()
            done[index] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--nimbus", default=os.path.join(REPO, "target/release/nimbus"))
    args = parser.parse_args()
    port, data = free_port(), tempfile.mkdtemp(prefix="nimbus-front-doors-")
    server = subprocess.Popen([args.nimbus, "up", "--port", str(port), "--data-dir", data, "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{endpoint}/_nimbus/health")
                break
            except OSError:
                time.sleep(0.05)
        client = lambda service: boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                                              aws_access_key_id="x", aws_secret_access_key="x",
                                              config=Config(retries={"total_max_attempts": 1}))
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            entry = zipfile.ZipInfo("app.py")
            entry.external_attr = 0o644 << 16  # readable in the sandbox, as AWS requires too
            archive.writestr(entry, HANDLER)
        lam = client("lambda")
        arn = lam.create_function(FunctionName="front", Runtime="python3.12", Handler="app.handler",
                                  Role="arn:aws:iam::000000000000:role/r", Code={"ZipFile": code.getvalue()})["FunctionArn"]
        api = client("apigatewayv2").create_api(Name="front", ProtocolType="HTTP", Target=arn)["ApiId"]
        url = lam.create_function_url_config(FunctionName="front", AuthType="NONE")["FunctionUrl"]
        url_id = url.split("//", 1)[1].split(".", 1)[0]
        doors = [("direct Invoke", "POST", "/2015-03-31/functions/front/invocations"),
                 ("HTTP API ($default)", "GET", f"/_aws/execute-api/{api}/bench"),
                 ("function URL", "GET", f"/_aws/lambda-url/{url_id}/bench")]
        print(f"| door | p50 ms | p99 ms | req/s ({args.clients} clients) |\n|---|---:|---:|---:|")
        for name, method, path in doors:
            p50, p99 = latencies(port, method, path, args.requests)
            rate = throughput(port, method, path, args.clients)
            print(f"| {name} | {p50:.3f} | {p99:.3f} | {rate:.0f} |")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
