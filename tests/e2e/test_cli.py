"""The aws CLI against nimbus, configured only through AWS_ENDPOINT_URL and the usual variables."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import pytest
from support import PY_MULTI, ROLE, aws_cli_env, make_zip, unique_name

pytestmark = pytest.mark.skipif(shutil.which("aws") is None, reason="aws CLI not installed")


def _raw_payload_args() -> list[str]:
    """aws CLI v2 base64-decodes blob arguments unless told otherwise; v1 sends them raw."""
    if shutil.which("aws") is None:
        return []
    version = subprocess.run(["aws", "--version"], capture_output=True, text=True)
    text = version.stdout + version.stderr
    return ["--cli-binary-format", "raw-in-base64-out"] if text.startswith("aws-cli/2") else []


RAW = _raw_payload_args()


@pytest.fixture
def aws(endpoint, tmp_path):
    env = aws_cli_env(endpoint, tmp_path)

    def run(*args, check=True):
        proc = subprocess.run(["aws", "lambda", *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"aws lambda {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    def run_json(*args):
        out = run(*args, "--output", "json").stdout
        return json.loads(out) if out.strip() else None

    run.json = run_json
    return run


def test_cli_create_invoke_update_delete(aws, tmp_path):
    name = unique_name("cli")
    (tmp_path / "fn.zip").write_bytes(make_zip({"app.py": PY_MULTI}))

    created = aws.json("create-function", "--function-name", name, "--runtime", "python3.12",
                       "--role", ROLE, "--handler", "app.handler", "--zip-file", "fileb://fn.zip",
                       "--timeout", "10", "--memory-size", "256")
    assert created["FunctionName"] == name
    aws("wait", "function-active-v2", "--function-name", name)

    out = aws.json("invoke", "--function-name", name, *RAW,
                   "--payload", json.dumps({"op": "echo", "value": {"from": "cli"}}), "out.json")
    assert out["StatusCode"] == 200
    assert out["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in out
    assert json.loads((tmp_path / "out.json").read_text()) == {"from": "cli"}

    log = aws("invoke", "--function-name", name, *RAW,
              "--payload", json.dumps({"op": "print", "text": "cli log line"}), "--log-type", "Tail",
              "--query", "LogResult", "--output", "text", "log.json").stdout.strip()
    text = base64.b64decode(log).decode()
    assert "START RequestId:" in text and "cli log line" in text and "REPORT RequestId:" in text, text

    updated = aws.json("update-function-configuration", "--function-name", name,
                       "--environment", "Variables={CLI_VAR=cli-value}", "--timeout", "15")
    assert updated["Timeout"] == 15
    aws("wait", "function-updated-v2", "--function-name", name)
    aws.json("invoke", "--function-name", name, *RAW,
             "--payload", '{"op": "env"}', "env.json")
    assert json.loads((tmp_path / "env.json").read_text())["env"]["CLI_VAR"] == "cli-value"

    (tmp_path / "fn2.zip").write_bytes(make_zip({"app.py": "def handler(e, c):\n    return 'v2'\n"}))
    aws.json("update-function-code", "--function-name", name, "--zip-file", "fileb://fn2.zip")
    aws("wait", "function-updated-v2", "--function-name", name)
    aws.json("invoke", "--function-name", name, "v2.json")
    assert json.loads((tmp_path / "v2.json").read_text()) == "v2"

    got = aws.json("get-function", "--function-name", name)
    assert got["Configuration"]["Environment"]["Variables"] == {"CLI_VAR": "cli-value"}
    listed = aws.json("list-functions")
    assert name in [f["FunctionName"] for f in listed["Functions"]]

    aws("delete-function", "--function-name", name)
    missing = aws("get-function", "--function-name", name, check=False)
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr, missing.stderr


def test_cli_function_error(aws, tmp_path):
    name = unique_name("cli-err")
    (tmp_path / "fn.zip").write_bytes(make_zip({"app.py": PY_MULTI}))
    aws.json("create-function", "--function-name", name, "--runtime", "python3.12", "--role", ROLE,
             "--handler", "app.handler", "--zip-file", "fileb://fn.zip")
    aws("wait", "function-active-v2", "--function-name", name)
    out = aws.json("invoke", "--function-name", name, *RAW,
                   "--payload", '{"op": "raise", "message": "cli boom"}', "err.json")
    assert out["StatusCode"] == 200
    assert out["FunctionError"] == "Unhandled"
    body = json.loads((tmp_path / "err.json").read_text())
    assert body["errorType"] == "ValueError" and body["errorMessage"] == "cli boom"
    dup = aws("create-function", "--function-name", name, "--runtime", "python3.12", "--role", ROLE,
              "--handler", "app.handler", "--zip-file", "fileb://fn.zip", check=False)
    assert dup.returncode != 0 and "ResourceConflictException" in dup.stderr, dup.stderr
    aws("delete-function", "--function-name", name)
