"""Helpers shared by the end-to-end tests: packaging handlers, naming, waiting.

Everything here is plain Python so that test modules can import it directly
(`from support import ...`); pytest puts this directory on sys.path.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import socket
import time
import uuid
import zipfile
from pathlib import Path

ACCOUNT = "000000000000"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/lambda-role"



def aws_client(service: str, endpoint: str, **config):
    """A boto3 client for nimbus at `endpoint`: any credentials, no retries (a test must see the
    first answer), `config` passed on to botocore's Config."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, **config),
    )

def regional_client(service: str, endpoint: str, region: str, key: str = "test"):
    """As `aws_client`, signed for `region` with access key `key` (twelve digits name an
    account), with a read timeout long enough for a region's first call (it opens its state)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key="test",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=60),
    )


def aws_cli_env(endpoint: str | None, tmp_path) -> dict:
    """The environment for an `aws` CLI subprocess: test credentials, no user config, no retries,
    no pager, and `AWS_ENDPOINT_URL` when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_MAX_ATTEMPTS="1",
        AWS_PAGER="",
    )
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    # The tools' own temporary files (the SAM CLI leaves empty directories) go to the test's
    # directory, which pytest removes, not to /tmp.
    scratch = Path(tmp_path) / "tool-tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    env["TMPDIR"] = str(scratch)
    return env


def unique_name(prefix: str) -> str:
    """A function name no other test (or earlier run on a reused server) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_zip(files: dict[str, str | bytes], executable: tuple[str, ...] = ()) -> bytes:
    """Zip `files` (name -> content) in memory.

    Names listed in `executable` get Unix mode 0755, the others 0644, as `zip`
    would record them on a Unix host (Lambda honours the recorded mode).
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if name in executable else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.create_system = 3  # Unix, so the mode above is honoured
            if isinstance(content, str):
                content = content.encode()
            zf.writestr(info, content)
    return buf.getvalue()


def zip_file_bytes(path: str, arcname: str, mode: int = 0o755) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(arcname, date_time=(2024, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = (0o100000 | mode) << 16
        info.create_system = 3
        zf.writestr(info, data)
    return buf.getvalue()


def zip_bomb(unzipped_bytes: int, name: str = "big.bin") -> bytes:
    """A small zip whose single member inflates to `unzipped_bytes` zeros."""
    buf = io.BytesIO()
    chunk = b"\0" * (1 << 20)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open(name, "w", force_zip64=True) as member:
            left = unzipped_bytes
            while left > 0:
                n = min(left, len(chunk))
                member.write(chunk[:n])
                left -= n
        zf.writestr("app.py", "def handler(event, context):\n    return 1\n")
    return buf.getvalue()


def code_sha256(zip_bytes: bytes) -> str:
    """CodeSha256 as Lambda reports it: base64 of the raw SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


def payload_json(resp) -> object:
    return json.loads(resp["Payload"].read())


def request_id(resp) -> str:
    return resp["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-requestid", "")


def environment_processes(server_pid: int, function_name: str) -> list:
    """Host processes (descendants of the nimbus server) running `function_name`'s environments.

    Found through their environment (AWS_LAMBDA_FUNCTION_NAME), so this works whether or not
    nimbus puts environments in their own pid namespace (where os.getpid() means nothing here).
    """
    import psutil
    found = []
    try:
        children = psutil.Process(server_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return found
    for proc in children:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get("AWS_LAMBDA_FUNCTION_NAME") == function_name:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def all_gone(procs: list) -> bool:
    import psutil
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Handler sources
# ---------------------------------------------------------------------------

# One Python module that does many things, selected by event["op"]; most tests
# share one function built from it so that the suite stays fast.
PY_MULTI = r'''
import json
import os
import sys
import time
import uuid

TOKEN = uuid.uuid4().hex          # one per execution environment (process)
COUNTER = {"n": 0}


def handler(event, context):
    COUNTER["n"] += 1
    op = event.get("op", "echo") if isinstance(event, dict) else "echo"
    if op == "echo":
        return event.get("value", event) if isinstance(event, dict) else event
    if op == "whoami":
        return {"pid": os.getpid(), "token": TOKEN, "count": COUNTER["n"],
                "request_id": context.aws_request_id}
    if op == "sleep":
        time.sleep(event["seconds"])
        return {"i": event.get("i"), "pid": os.getpid(), "token": TOKEN,
                "request_id": context.aws_request_id}
    if op == "print":
        print(event["text"])
        sys.stdout.flush()
        return "printed"
    if op == "raise":
        raise ValueError(event["message"])
    if op == "mark":
        # Leave a trace the test can see through nimbus's API (functions may not share files with
        # the caller): create a function named event["name"] whose description is event["content"].
        import io, zipfile
        import boto3
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("app.py", "def handler(e, c):\n    return 0\n")
        boto3.client("lambda").create_function(
            FunctionName=event["name"], Runtime="python3.12", Handler="app.handler",
            Role="arn:aws:iam::000000000000:role/lambda-role", Code={"ZipFile": buf.getvalue()},
            Description=event.get("content", ""))
        return "marked"
    if op == "env":
        return {"env": dict(os.environ), "cwd": os.getcwd(),
                "task_root_has_handler": os.path.exists(
                    os.path.join(os.environ.get("LAMBDA_TASK_ROOT", "/nonexistent"), "app.py")),
                "python": list(sys.version_info[:3])}
    if op == "context":
        return {
            "remaining_ms": context.get_remaining_time_in_millis(),
            "aws_request_id": context.aws_request_id,
            "function_name": context.function_name,
            "function_version": context.function_version,
            "memory_limit_in_mb": str(context.memory_limit_in_mb),
            "invoked_function_arn": context.invoked_function_arn,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
        }
    if op == "tmp":
        import tempfile
        tmp = tempfile.gettempdir()
        seen = sorted(os.listdir(tmp))
        if event.get("write"):
            with open(os.path.join(tmp, event["write"]), "w") as f:
                f.write(TOKEN)
        return {"tmp": tmp, "seen": seen, "token": TOKEN, "pid": os.getpid()}
    if op == "unserializable":
        return {"a set": {1, 2, 3}}
    if op == "logging":
        import logging
        logging.getLogger().warning("warned via logging")
        sys.stderr.write("written to stderr\n")
        sys.stderr.flush()
        return "logged"
    if op == "big":
        return "x" * event["n"]
    if op == "boto3":
        import boto3
        client = boto3.client("lambda")
        names = []
        for page in client.get_paginator("list_functions").paginate():
            names += [f["FunctionName"] for f in page["Functions"]]
        return {"names": names}
    raise Exception("unknown op %r" % op)
'''

PY_SLEEPER = r'''
import os, time, uuid
TOKEN = uuid.uuid4().hex

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"pid": os.getpid(), "token": TOKEN, "i": event.get("i")}
'''

PY_IMPORT_ERROR = "import nimbus_module_that_does_not_exist\n\ndef handler(event, context):\n    return 1\n"

PY_SYNTAX_ERROR = "def handler(event, context)\n    return 1\n"

NODE_CJS = r'''
const crypto = require("crypto");
const TOKEN = crypto.randomUUID();
exports.handler = async (event, context) => {
  if (event && event.op === "throw") {
    class NimbusTestError extends Error {}
    const e = new NimbusTestError(event.message);
    e.name = "NimbusTestError";
    throw e;
  }
  if (event && event.op === "log") {
    console.log(event.text);
  }
  return {
    kind: "cjs",
    event,
    token: TOKEN,
    requestId: context.awsRequestId,
    remaining: context.getRemainingTimeInMillis(),
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    memoryLimitInMB: String(context.memoryLimitInMB),
    invokedFunctionArn: context.invokedFunctionArn,
    logGroupName: context.logGroupName,
    env: {
      AWS_LAMBDA_FUNCTION_NAME: process.env.AWS_LAMBDA_FUNCTION_NAME,
      AWS_REGION: process.env.AWS_REGION,
      _HANDLER: process.env._HANDLER,
      LAMBDA_TASK_ROOT: process.env.LAMBDA_TASK_ROOT,
      AWS_LAMBDA_RUNTIME_API: process.env.AWS_LAMBDA_RUNTIME_API,
      MY_VAR: process.env.MY_VAR,
    },
  };
};
'''

NODE_ESM = r'''
import { randomUUID } from "node:crypto";
const TOKEN = randomUUID();
const started = await Promise.resolve("top-level-await-ok");
export const handler = async (event, context) => {
  return { kind: "esm", event, token: TOKEN, started, requestId: context.awsRequestId };
};
'''

NODE_CALLBACK = r'''
exports.handler = (event, context, callback) => {
  setTimeout(() => {
    if (event.fail) {
      callback(new Error("callback failed: " + event.fail));
    } else {
      callback(null, { kind: "callback", event, requestId: context.awsRequestId });
    }
  }, 20);
};
'''

NODE_IMPORT_ERROR = 'const x = require("nimbus-package-that-does-not-exist");\nexports.handler = async () => 1;\n'


def python_custom_runtime_bootstrap() -> str:
    """A `provided` bootstrap written in Python that speaks the Runtime API by hand.

    It reports the headers it received so that tests can check the Runtime API,
    and it posts an error to /error when the event asks for it. Like any custom runtime it can
    only use what the execution environment has: a python3 on the standard PATH (/usr/bin), not
    the test's own interpreter (which may live under a home directory the sandbox hides).
    """
    return '''#!/usr/bin/env python3
import json, os, sys, urllib.error, urllib.request
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
base = "http://%s/2018-06-01/runtime" % api
if os.environ.get("FAIL_INIT"):
    req = urllib.request.Request(base + "/init/error", method="POST",
        data=json.dumps({"errorMessage": "init went wrong", "errorType": "Custom.InitFailure"}).encode(),
        headers={"Lambda-Runtime-Function-Error-Type": "Custom.InitFailure"})
    urllib.request.urlopen(req).read()
    sys.exit(1)
STATUSES = {}
while True:
    with urllib.request.urlopen(base + "/invocation/next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        headers = {k: v for k, v in r.headers.items()}
        event = json.loads(r.read() or b"null")
    if isinstance(event, dict) and event.get("probe"):
        def post(url, data=b"{}"):
            try:
                with urllib.request.urlopen(urllib.request.Request(url, method="POST", data=data)) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code
        STATUSES["bogus"] = post(base + "/invocation/not-a-request-id/response")
        STATUSES["first"] = post(base + "/invocation/%s/response" % rid, json.dumps("probed").encode())
        STATUSES["second"] = post(base + "/invocation/%s/response" % rid, b'"again"')
        continue
    if isinstance(event, dict) and event.get("report"):
        req = urllib.request.Request(base + "/invocation/%s/response" % rid, method="POST",
            data=json.dumps(STATUSES).encode())
        urllib.request.urlopen(req).read()
        continue
    if isinstance(event, dict) and event.get("fail"):
        body = {"errorMessage": "custom failure", "errorType": "Custom.Failure", "stackTrace": []}
        req = urllib.request.Request(base + "/invocation/%s/error" % rid, method="POST",
            data=json.dumps(body).encode(),
            headers={"Lambda-Runtime-Function-Error-Type": "Custom.Failure"})
    else:
        body = {"event": event, "headers": headers, "handler": os.environ.get("_HANDLER"),
                 "cwd": os.getcwd(), "task_root": os.environ.get("LAMBDA_TASK_ROOT")}
        req = urllib.request.Request(base + "/invocation/%s/response" % rid, method="POST",
            data=json.dumps(body).encode())
    urllib.request.urlopen(req).read()
'''


EXITING_BOOTSTRAP = "#!/bin/sh\necho 'bootstrap starting and giving up'\nexit 3\n"
