"""Sandboxes on the host's root look like Amazon Linux 2023 where programs notice: a
`provided.al2023` function and a `nimbus/host` Batch job read AL2023's `/etc/os-release`, and
their `/bin/sh` is bash; an image's root keeps its own os-release."""

from __future__ import annotations

import json
import uuid

import pytest

from batch_support import batch, batch_server, finished, log_lines, make_env, make_queue, shell_def, until  # noqa: F401

BOOTSTRAP = '''#!/usr/bin/env python3
import json, os, subprocess, urllib.request
base = "http://%s/2018-06-01/runtime" % os.environ["AWS_LAMBDA_RUNTIME_API"]
while True:
    with urllib.request.urlopen(base + "/invocation/next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
    fields = dict(line.split("=", 1) for line in open("/etc/os-release").read().splitlines() if "=" in line)
    shell = subprocess.run(["/bin/sh", "-c", "echo ${BASH_VERSION:+bash}"], capture_output=True, text=True).stdout.strip()
    answer = {"id": fields["ID"].strip('"'), "version": fields["VERSION_ID"].strip('"'), "sh": shell}
    urllib.request.urlopen(urllib.request.Request(base + "/invocation/%s/response" % rid, data=json.dumps(answer).encode(), method="POST")).read()
'''


def isolated(server) -> bool:
    return server.health()["isolation"].startswith("namespaces")


def test_a_provided_al2023_function_sees_amazon_linux(server, client, create_fn):
    if not isolated(server):
        pytest.skip("the AL2023 look is the sandbox's (namespaces)")
    name = create_fn("al2023", {"bootstrap": BOOTSTRAP}, runtime="provided.al2023", handler="x", executable=("bootstrap",))
    answer = client.invoke(FunctionName=name, Payload=b"{}")
    assert json.loads(answer["Payload"].read()) == {"id": "amzn", "version": "2023", "sh": "bash"}


def test_a_host_image_job_sees_amazon_linux(batch, batch_server):
    if not isolated(batch_server):
        pytest.skip("the AL2023 look is the sandbox's (namespaces)")
    queue = make_queue(batch, make_env(batch, f"al2023-{uuid.uuid4().hex[:6]}", max_vcpus=2))
    definition = shell_def(batch, '. /etc/os-release; echo "$ID $VERSION_ID $PLATFORM_ID ${BASH_VERSION:+bash}"')
    done = finished(batch, batch.submit_job(jobName="al2023", jobQueue=queue, jobDefinition=definition)["jobId"])
    assert done["status"] == "SUCCEEDED", done.get("statusReason")
    stream = done["attempts"][-1]["container"]["logStreamName"]
    assert until("the job's output", lambda: log_lines(batch_server.endpoint, stream)) == ["amzn 2023 platform:al2023 bash"]
