#!/usr/bin/env python3
"""Recovery and spread of asynchronous invocations, with boto3 as users drive them.

    cargo build --release --bin nimbus && python3 bench/drain.py [--events 1000] [--nodes 1|3]
        [--database postgres://superuser@host:port/postgres]

drain: `--events` asynchronous invokes of a python function that imports boto3 and leaves one S3
object per event are accepted by one node (held back by reserved concurrency 0, so that all are
queued), which is then killed (-9). With one node it is restarted; with three the other two take
its events over; the reserved concurrency is lifted then. The figure is the time from the kill
to the last event's object, and how many ran twice (at least once, as on AWS).
rate: acknowledged `Event` invokes per second, 8 client threads spread over the nodes.

Several nodes need `--database` (a PostgreSQL superuser URL; a fresh database is made). Starts its
own nimbus processes on free ports with temporary directories and stops them at the end.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
import zipfile
import io

import boto3
from botocore.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NIMBUS = os.path.join(REPO, "target/release/nimbus")
MARK = """
import boto3
s3 = boto3.client("s3")
def handler(event, context):
    s3.put_object(Bucket=event["bucket"], Key=f"done/{event['n']}/{context.aws_request_id}", Body=b"x")
"""
NOOP = "def handler(event, context):\n    return None\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x",
                        config=Config(retries={"mode": "standard", "max_attempts": 10}, max_pool_connections=16))


def zipped(source):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("app.py")
        info.external_attr = 0o100644 << 16  # rw-r--r--: Lambda honours the recorded mode
        z.writestr(info, source)
    return buf.getvalue()


class Node:
    def __init__(self, name, work, database, shared, binary):
        self.name, self.port, self.binary = name, free_port(), binary
        self.data = os.path.join(work, name)
        self.args = ["--data-dir", self.data, "--port", str(self.port), *([] if os.environ.get("KEEP") else ["--quiet"])]
        if database:  # the binary before the storage layer knows none of these
            self.args += ["--node", name, "--node-expiry", "2"]
        if database:
            self.args += ["--database", database, "--shared-dir", shared]
        self.log = open(os.path.join(work, f"{name}.log"), "ab")
        self.proc = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen([self.binary, "up", *self.args],
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.endpoint}/_nimbus/health", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not start")

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


def fresh_database(url):
    name = f"nimbus_bench_{uuid.uuid4().hex[:8]}"
    subprocess.run(["psql", "-X", "-q", "-d", url, "-c", f'CREATE DATABASE "{name}"'], check=True)
    return urllib.parse.urlsplit(url)._replace(path="/" + name).geturl(), name


def done(s3, bucket):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="done/"):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def drain(nodes, events):
    first = nodes[0]
    lam, s3 = client("lambda", first.endpoint), client("s3", first.endpoint)
    bucket = f"drain-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    name = f"mark-{uuid.uuid4().hex[:8]}"
    lam.create_function(FunctionName=name, Runtime="python3.12", Role="arn:aws:iam::000000000000:role/x",
                        Handler="app.handler", Timeout=60, Code={"ZipFile": zipped(MARK)})
    # Held back (reserved concurrency 0) so that all of them are queued when the node dies.
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    for n in range(events):
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"bucket": bucket, "n": n}))
    first.kill()
    killed = time.monotonic()
    if len(nodes) == 1:
        first.start()
    client("lambda", nodes[-1].endpoint).delete_function_concurrency(FunctionName=name)
    watcher = client("s3", nodes[-1].endpoint)
    while True:
        keys = done(watcher, bucket)
        if len({k.split("/")[1] for k in keys}) == events:
            return time.monotonic() - killed, len(keys) - events
        if time.monotonic() - killed > 600:
            raise RuntimeError(f"only {len(keys)} of {events} ran in 10 minutes")
        if os.environ.get("KEEP") and time.monotonic() - killed > 30:
            raise RuntimeError(f"only {len(keys)} of {events} ran in 30 s")
        time.sleep(0.1)


def rate(nodes, count):
    lam = client("lambda", nodes[0].endpoint)
    name = f"noop-{uuid.uuid4().hex[:8]}"
    lam.create_function(FunctionName=name, Runtime="python3.12", Role="arn:aws:iam::000000000000:role/x",
                        Handler="app.handler", Code={"ZipFile": zipped(NOOP)})
    time.sleep(1)  # every node has seen it
    clients = [client("lambda", nodes[i % len(nodes)].endpoint) for i in range(8)]
    per = count // len(clients)

    def send(c):
        for _ in range(per):
            c.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")

    threads = [threading.Thread(target=send, args=(c,)) for c in clients]
    start = time.monotonic()
    [t.start() for t in threads]
    [t.join() for t in threads]
    return per * len(clients) / (time.monotonic() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--database")
    parser.add_argument("--rate-invokes", type=int, default=2000)
    parser.add_argument("--nimbus", default=NIMBUS, help="the binary (compare two builds)")
    parser.add_argument("--skip-drain", action="store_true", help="only the rate")
    args = parser.parse_args()
    if args.nodes > 1 and not args.database:
        parser.error("several nodes need --database")
    work = tempfile.mkdtemp(prefix="nimbus-drain-")
    database, made = fresh_database(args.database) if args.database else (None, None)
    nodes = [Node(f"n{i}", work, database, os.path.join(work, "shared"), args.nimbus) for i in range(args.nodes)]
    try:
        for node in nodes:
            node.start()
        backend = "PostgreSQL" if database else "SQLite"
        invokes = rate(nodes, args.rate_invokes)
        print(f"| async invokes acknowledged per second, {args.nodes} node(s), {backend} | {invokes:.0f}/s |")
        if args.skip_drain:
            return
        seconds, twice = drain(nodes, args.events)
        print(f"| {args.events} queued events after kill -9, {args.nodes} node(s), {backend}: kill → last delivery "
              f"| {seconds:.1f} s ({twice} ran twice) |")
    finally:
        for node in nodes:
            node.stop()
        if made:
            subprocess.run(["psql", "-X", "-q", "-d", args.database, "-c", f'DROP DATABASE "{made}" WITH (FORCE)'])
        if os.environ.get("KEEP"):
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
