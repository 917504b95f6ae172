#!/usr/bin/env python3
"""Container images: a 50 MB, 5-layer image pushed through the registry (monolithic blob
uploads) and unpacked the first time, the same import as a `docker save` tarball (which unpacks
too), Lambda cold starts from that busybox image against a zip function with the same
bootstrap (`provided.al2023`), and Batch submit → RUNNING for a job in a pushed, unpacked
busybox image against a `nimbus/host` job, interleaved on the same warm capacity, in one run.

    cargo build --release --bin nimbus && python3 bench/images.py [--cold-starts 10] [--jobs 30]

Starts its own nimbus on a free port with a temporary data directory and stops it at the end.
Needs Debian's busybox-static (/bin/busybox).
"""

import argparse
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile

import boto3
from botocore.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
from oci_images import BOOTSTRAP, Image, busybox_layer, docker_save, layer  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "bench"))
from batch import CAPACITY, submit_to_running, warm_queue  # noqa: E402

ROLE = "arn:aws:iam::000000000000:role/bench"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(endpoint, method, path, body=None, headers=None):
    request = urllib.request.Request(endpoint + path, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=600) as response:
        return response.status, response.read()


def big_image(total_mb=50, layers=5):
    """Layers of half random, half repetitive files (gzip gets about 2:1)."""
    per = total_mb * (1 << 20) // layers
    made = []
    for i in range(layers):
        files = [("dir", f"l{i}")]
        for j in range(10):
            half = per // 20
            files.append(("file", f"l{i}/f{j}", os.urandom(half) + bytes(half)))
        made.append(layer(files))
    return Image(made)


def push(endpoint, repository, tag, image):
    """The image's blobs (monolithic uploads) and manifest through the registry."""
    for d, blob in image.blobs.items():
        if d != image.digest:
            http(endpoint, "POST", f"/v2/{repository}/blobs/uploads/?digest={d}", blob)
    http(endpoint, "PUT", f"/v2/{repository}/manifests/{tag}", image.manifest,
         {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})


def client(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x", config=Config(retries={"total_max_attempts": 1}, read_timeout=120))


def cold_starts(lam, name, runs):
    samples = []
    for i in range(runs):
        # A configuration change retires the environments: the next invoke is cold.
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"RUN": str(i)}})
        lam.get_waiter("function_updated_v2").wait(FunctionName=name)
        started = time.perf_counter()
        answer = lam.invoke(FunctionName=name, Payload=b"{}")
        answer["Payload"].read()
        samples.append((time.perf_counter() - started) * 1000)
        if "FunctionError" in answer:
            raise SystemExit(f"{name} failed")
    samples.sort()
    return samples[len(samples) // 2]


def job_starts(endpoint, runs):
    """Batch submit → RUNNING: jobs of a `nimbus/host` definition and of a definition naming a
    pushed, unpacked busybox image, taken in turns on the same warm compute environment; both run
    the same `/bin/busybox sleep 0.3` (the host's busybox, the image's copy)."""
    batch = client("batch", endpoint)
    warm_queue(batch, endpoint, "jobs")
    client("ecr", endpoint).create_repository(repositoryName="jobimage")
    push(endpoint, "jobimage", "v1", Image([busybox_layer()], config={"Env": ["PATH=/bin"]}))
    http(endpoint, "POST", "/_nimbus/images/unpack?reference=jobimage:v1")
    command = ["/bin/busybox", "sleep", "0.3"]
    for name, image in (("host", "nimbus/host"), ("image", "jobimage:v1")):
        batch.register_job_definition(jobDefinitionName=name, type="container", containerProperties={
            "image": image, "command": command, "vcpus": 1, "memory": 128})
    samples = {"host": ([], []), "image": ([], [])}
    for i in range(runs + 1):
        for name in ("host", "image") if i % 2 else ("image", "host"):
            server_ms, client_ms = submit_to_running(batch, "jobs", name)
            if i:  # the first of each warms up (the image's root, the job definition)
                samples[name][0].append(server_ms)
                samples[name][1].append(client_ms)
    rows = []
    for label, index in (("createdAt → startedAt", 0), ("client polling, submit → RUNNING", 1)):
        host, image = (statistics.median(samples[name][index]) for name in ("host", "image"))
        rows += [(f"Batch job start, {label}, `nimbus/host`, p50 of {runs}", host),
                 (f"Batch job start, {label}, cached image, p50 of {runs}", image),
                 (f"Batch job start, {label}, image − host (budget ≤ 5 ms)", image - host)]
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nimbus", default=os.path.join(REPO, "target/release/nimbus"))
    parser.add_argument("--cold-starts", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=30, help="Batch jobs of each kind for job start")
    args = parser.parse_args()
    if not os.path.exists("/bin/busybox"):
        raise SystemExit("needs /bin/busybox (apt-get install busybox-static)")
    port, data = free_port(), tempfile.mkdtemp(prefix="nimbus-bench-images-")
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([args.nimbus, "up", "--port", str(port), "--data-dir", data, "--quiet", *CAPACITY],
                              stdout=subprocess.DEVNULL)
    rows = []
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                http(endpoint, "GET", "/_nimbus/health")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        ecr = client("ecr", endpoint)
        image = big_image()
        size_mb = sum(len(b) for b in image.layers) / (1 << 20)

        ecr.create_repository(repositoryName="bench")
        started = time.perf_counter()
        push(endpoint, "bench", "v1", image)
        push_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        http(endpoint, "POST", "/_nimbus/images/unpack?reference=bench:v1")
        unpack_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        http(endpoint, "POST", "/_nimbus/images/unpack?reference=bench:v1")
        cached_ms = (time.perf_counter() - started) * 1000
        saved = docker_save(big_image(), "saved:v1")
        started = time.perf_counter()
        http(endpoint, "POST", "/_nimbus/images/import", saved)
        import_ms = (time.perf_counter() - started) * 1000
        rows += [
            (f"push {size_mb:.0f} MB, 5 gzip layers (registry, monolithic)", push_ms),
            ("first unpack of that image", unpack_ms),
            ("root of an unpacked image (cached)", cached_ms),
            (f"import a docker save tarball ({len(saved) / (1 << 20):.0f} MB, 5 layers) incl. unpack", import_ms),
        ]

        lam = client("lambda", endpoint)
        function_image = Image([busybox_layer(), layer([("dir", "app"), ("file", "app/bootstrap", BOOTSTRAP, 0o755)])],
                               config={"Entrypoint": ["/bin/sh", "/app/bootstrap"], "Env": ["PATH=/bin"]})
        http(endpoint, "POST", "/_nimbus/images/import?repository=fn&tag=v1", docker_save(function_image, "fn:v1"))
        lam.create_function(FunctionName="from-image", PackageType="Image", Role=ROLE,
                            Code={"ImageUri": f"127.0.0.1:{port}/fn:v1"})
        # The same loop on the host's busybox, as a zip for provided.al2023.
        script = BOOTSTRAP.replace(b"#!/bin/sh", b"#!/bin/busybox sh")
        for tool in (b"wget", b"grep", b"tr", b"awk", b"cat", b"pwd"):
            script = script.replace(tool + b" ", b"/bin/busybox " + tool + b" ").replace(b"$(" + tool + b")", b"$(/bin/busybox " + tool + b")")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            info = zipfile.ZipInfo("bootstrap")
            info.external_attr = 0o755 << 16
            archive.writestr(info, script)
        lam.create_function(FunctionName="from-zip", Runtime="provided.al2023", Handler="x", Role=ROLE,
                            Code={"ZipFile": buffer.getvalue()})
        rows.append(("Lambda cold start from the image, p50", cold_starts(lam, "from-image", args.cold_starts)))
        rows.append(("Lambda cold start from a zip (same bootstrap), p50", cold_starts(lam, "from-zip", args.cold_starts)))
        rows += job_starts(endpoint, args.jobs)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)
    print("| figure | ms |\n|---|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} |")
    print(json.dumps({name: round(ms, 2) for name, ms in rows}), file=sys.stderr)


if __name__ == "__main__":
    main()
