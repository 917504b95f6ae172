"""The real SAM CLI (and nimbus's own faster verbs) against nimbus, no Docker: `sam build` with
Python and Node dependencies, `sam deploy --guided`-style managed bucket, `sam sync --watch`
and `sam sync --code --resource-id`, `sam logs`, `sam list`, `sam remote invoke`; and
`nimbus deploy` / `nimbus sync --watch` / `nimbus stacks` / `nimbus delete`."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from apps_support import Deployer, cli, copy_app, edit, invoke, sam_bin
from support import aws_client, unique_name, wait_until

PY_APP = """\
import tinylib


def handler(event, context):
    return {"answer": tinylib.answer(), "version": "v1"}
"""

NODE_APP = """\
const tiny = require('tiny-node-lib');
exports.handler = async (event) => ({ answer: tiny.answer(), version: 'v1' });
"""


def local_wheel(directory: Path) -> Path:
    """A wheel of a one-module package, made here so `pip install` needs no network."""
    wheel = directory / "tinylib-1.0-py3-none-any.whl"
    files = {
        "tinylib.py": "def answer():\n    return 42\n",
        "tinylib-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinylib\nVersion: 1.0\n",
        "tinylib-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text)}")
    record.append("tinylib-1.0.dist-info/RECORD,,")
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr("tinylib-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


def make_app(root: Path) -> Path:
    """A Python function with a (local) dependency and a Node function with a (local) one."""
    (root / "py").mkdir(parents=True)
    (root / "py/app.py").write_text(PY_APP)
    wheel = local_wheel(root)
    (root / "py/requirements.txt").write_text(f"{wheel}\n")
    (root / "node/tiny-node-lib").mkdir(parents=True)
    (root / "node/tiny-node-lib/package.json").write_text(json.dumps({"name": "tiny-node-lib", "version": "1.0.0"}))
    (root / "node/tiny-node-lib/index.js").write_text("exports.answer = () => 7;\n")
    (root / "node/package.json").write_text(json.dumps(
        {"name": "fn", "version": "1.0.0", "dependencies": {"tiny-node-lib": "file:./tiny-node-lib"}}))
    (root / "node/app.js").write_text(NODE_APP)
    (root / "template.yaml").write_text("""\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Resources:
  PyFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: py/
      Handler: app.handler
      Runtime: python3.11
      FunctionUrlConfig: {AuthType: NONE}
  NodeFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: node/
      Handler: app.handler
      Runtime: nodejs20.x
Outputs:
  PyName:
    Value: !Ref PyFn
  NodeName:
    Value: !Ref NodeFn
""")
    return root


def sam(deployer: Deployer, app: Path, *args: str, timeout: float = 300, stdin: str = "") -> str:
    done = subprocess.run([deployer.sam, *args], cwd=app, env=deployer.env(), capture_output=True, text=True,
                          timeout=timeout, input=stdin)
    assert done.returncode == 0, f"sam {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture
def sam_deployer(nimbus_bin, server, tmp_path):
    sam_bin()
    return Deployer("sam", nimbus_bin, server.endpoint, tmp_path)


def test_sam_build_then_deploy_runs_functions_with_their_dependencies(sam_deployer, server, tmp_path):
    app = make_app(tmp_path / "deps")
    sam(sam_deployer, app, "build")
    stack = unique_name("sambuild")
    sam_deployer.deploy(app / ".aws-sam/build", stack)
    out = sam_deployer.outputs(stack)
    assert invoke(server.endpoint, out["PyName"]) == {"answer": 42, "version": "v1"}
    assert invoke(server.endpoint, out["NodeName"]) == {"answer": 7, "version": "v1"}

    # `sam list` and `sam remote invoke` read the stack back.
    listed = sam(sam_deployer, app, "list", "stack-outputs", "--stack-name", stack, "--output", "json")
    assert out["PyName"] in listed
    resources = sam(sam_deployer, app, "list", "resources", "--stack-name", stack, "--output", "json")
    assert "PyFn" in resources
    # `sam list endpoints` reads function URLs through Cloud Control's GetResource.
    endpoints = sam(sam_deployer, app, "list", "endpoints", "--stack-name", stack, "--output", "json")
    url = aws_client("lambda", server.endpoint).get_function_url_config(FunctionName=out["PyName"])["FunctionUrl"]
    assert url in endpoints and "NodeFn" in endpoints, endpoints
    said = sam(sam_deployer, app, "remote", "invoke", "PyFn", "--stack-name", stack, "--event", "{}",
               "--output", "json")
    assert '\\"answer\\": 42' in said or '"answer": 42' in said, said
    # `sam logs` finds the function's log group through the stack.
    logs = sam(sam_deployer, app, "logs", "--stack-name", stack, "-n", "PyFn", "--start-time", "10min ago")
    assert "START RequestId" in logs or "REPORT RequestId" in logs, logs
    sam(sam_deployer, app, "delete", "--stack-name", stack, "--no-prompts", "--region", "us-east-1")


def test_nimbus_deploy_installs_dependencies_and_skips_an_unchanged_package(nimbus_bin, server, tmp_path):
    app = make_app(tmp_path / "deps")
    deployer = Deployer("nimbus", nimbus_bin, server.endpoint, tmp_path)
    stack = unique_name("nimbusdeploy")
    first = deployer.deploy(app, stack)
    assert "Add" in first.stderr and "PyFn" in first.stderr, first.stderr  # the change set table
    out = deployer.outputs(stack)
    assert invoke(server.endpoint, out["PyName"]) == {"answer": 42, "version": "v1"}
    assert invoke(server.endpoint, out["NodeName"]) == {"answer": 7, "version": "v1"}
    again = deployer.deploy(app, stack)
    assert "No changes to deploy" in again.stderr, again.stderr
    listed = cli(nimbus_bin, "stacks", "--json", endpoint=server.endpoint)
    assert stack in listed.stdout
    one = cli(nimbus_bin, "stacks", stack, endpoint=server.endpoint)
    assert "PyFn" in one.stdout and "AWS::Lambda::Function" in one.stdout, one.stdout
    deleted = cli(nimbus_bin, "delete", stack, endpoint=server.endpoint)
    assert deleted.returncode == 0 and "DELETE_COMPLETE" in deleted.stdout, deleted.stderr


def _answers(endpoint: str, function: str, version: str) -> bool:
    try:
        return invoke(endpoint, function).get("version") == version
    except Exception:
        return False


@pytest.mark.parametrize("tool", ["nimbus", "sam"])
def test_sync_watch_puts_a_code_change_live(tool, nimbus_bin, server, tmp_path):
    deployer = Deployer(tool, nimbus_bin, server.endpoint, tmp_path)
    app = copy_app("layers", tmp_path)
    stack = unique_name(f"{tool}watch")
    log = open(tmp_path / "watch.log", "w")
    if tool == "nimbus":
        command = [str(nimbus_bin), "sync", "--watch", "--stack-name", stack, "-t", str(app / "template.yaml"),
                   "--endpoint", server.endpoint]
    else:
        command = [deployer.sam, "sync", "--watch", "--stack-name", stack, "--template-file", "template.yaml",
                   "--no-dependency-layer", "--capabilities", "CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND",
                   "--region", "us-east-1"]
    process = subprocess.Popen(command, cwd=app, env=deployer.env(), stdin=subprocess.PIPE, stdout=log,
                               stderr=subprocess.STDOUT, text=True)
    try:
        if tool == "sam":
            process.stdin.write("y\n")  # sam sync asks once whether this is a development stack
            process.stdin.flush()

        def function_name():
            return deployer.physical(stack, "Greeter")

        wait_until(lambda: _stack_ready(deployer, stack), timeout=120, what=f"{stack} deployed")
        # The watcher is installed once the first sync is over (SAM: after its first code sync).
        ready = "watching" if tool == "nimbus" else "Infra sync completed"
        wait_until(lambda: ready in (tmp_path / "watch.log").read_text(), timeout=60, what="the watcher")
        code = app / "src/app.py"
        edit(code, 'return {"greeting"', 'return {"version": "v2", "greeting"')
        started = time.monotonic()

        def serving_v2():
            # An edit made while the watcher was still being installed is missed: touch again.
            if time.monotonic() - started > 3:
                code.write_text(code.read_text())
            return _answers(server.endpoint, function_name(), "v2")

        assert process.poll() is None, (tmp_path / "watch.log").read_text()
        wait_until(serving_v2, timeout=60, interval=0.1, what="v2 serving")
        print(f"{tool} sync --watch: edit to new code serving in {time.monotonic() - started:.3f} s")
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    deployer.delete(stack)


def _stack_ready(deployer: Deployer, stack: str) -> bool:
    try:
        return deployer.stack(stack)["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    except Exception:
        return False


def test_sam_sync_code_updates_one_function_without_a_deployment(sam_deployer, server, tmp_path):
    app = copy_app("layers", tmp_path)
    stack = unique_name("samcode")
    sam_deployer.deploy(app, stack)
    function = sam_deployer.physical(stack, "Greeter")
    events_before = len(sam_deployer.cfn.describe_stack_events(StackName=stack)["StackEvents"])
    edit(app / "src/app.py", 'return {"greeting"', 'return {"version": "v3", "greeting"')
    sam(sam_deployer, app, "sync", "--code", "--resource-id", "Greeter", "--stack-name", stack,
        "--template-file", "template.yaml", "--no-dependency-layer", "--region", "us-east-1", stdin="y\n")
    assert invoke(server.endpoint, function)["version"] == "v3"
    # A code sync is no stack deployment: no new stack events.
    assert len(sam_deployer.cfn.describe_stack_events(StackName=stack)["StackEvents"]) == events_before
    configuration = aws_client("lambda", server.endpoint).get_function_configuration(FunctionName=function)
    assert configuration["LastUpdateStatus"] == "Successful"
    sam_deployer.delete(stack)
