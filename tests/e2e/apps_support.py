"""Deploying the applications under tests/apps with `nimbus deploy` or the real SAM CLI, and
reading what they made. Used by test_apps.py and test_sam_cli.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from support import aws_cli_env, aws_client, wait_until

APPS = Path(__file__).resolve().parents[1] / "apps"
TOOLS = ["nimbus", "sam"]


def sam_bin() -> str:
    """The SAM CLI scripts/test installs (NIMBUS_SAM), else one on PATH; skips without one."""
    candidate = os.environ.get("NIMBUS_SAM") or shutil.which("sam")
    if not candidate or not os.path.exists(candidate):
        pytest.skip("the SAM CLI is not installed (scripts/test installs it into target/sam-venv)")
    return candidate


def copy_app(name: str, tmp_path: Path) -> Path:
    """A private copy of an application (tests edit code; SAM writes .aws-sam beside it)."""
    target = tmp_path / name
    shutil.copytree(APPS / name, target)
    return target


class Deployer:
    """Deploys, updates and deletes one application's stack with one tool."""

    def __init__(self, tool: str, nimbus_bin, endpoint: str, tmp_path: Path):
        self.tool = tool
        self.nimbus_bin = str(nimbus_bin)
        self.endpoint = endpoint
        self.tmp_path = tmp_path
        self.cfn = aws_client("cloudformation", endpoint)
        if tool == "sam":
            self.sam = sam_bin()

    def env(self) -> dict:
        env = aws_cli_env(self.endpoint, self.tmp_path)
        env.update(SAM_CLI_TELEMETRY="0", SAM_CLI_POLL_DELAY="0.2",
                   __SAM_CLI_APP_DIR=str(self.tmp_path / "sam-app-dir"))
        return env

    def deploy(self, app_dir: Path, stack: str, overrides: list[str] = (), template: str = "template.yaml",
               check: bool = True) -> subprocess.CompletedProcess:
        if self.tool == "nimbus":
            command = [self.nimbus_bin, "deploy", "-t", str(app_dir / template), "--stack-name", stack, "--yes",
                       "--endpoint", self.endpoint]
            if overrides:
                command += ["--parameter-overrides", *overrides]
        else:
            command = [self.sam, "deploy", "--template-file", str(app_dir / template), "--stack-name", stack,
                       "--resolve-s3", "--capabilities", "CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND",
                       "--no-confirm-changeset", "--no-fail-on-empty-changeset", "--region", "us-east-1",
                       "--no-progressbar"]
            if overrides:
                command += ["--parameter-overrides", " ".join(overrides)]
        done = subprocess.run(command, cwd=app_dir, env=self.env(), capture_output=True, text=True, timeout=300)
        if check:
            assert done.returncode == 0, f"{self.tool} deploy of {stack} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def delete(self, stack: str) -> None:
        if self.tool == "nimbus":
            command = [self.nimbus_bin, "delete", stack, "--endpoint", self.endpoint]
        else:
            command = [self.sam, "delete", "--stack-name", stack, "--no-prompts", "--region", "us-east-1"]
        done = subprocess.run(command, env=self.env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{self.tool} delete of {stack} failed:\n{done.stdout}\n{done.stderr}"

    def stack(self, stack: str) -> dict:
        return self.cfn.describe_stacks(StackName=stack)["Stacks"][0]

    def outputs(self, stack: str) -> dict:
        return {o["OutputKey"]: o["OutputValue"] for o in self.stack(stack).get("Outputs", [])}

    def resources(self, stack: str) -> dict:
        listed = self.cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]
        return {r["LogicalResourceId"]: r for r in listed}

    def physical(self, stack: str, logical_id: str) -> str:
        return self.resources(stack)[logical_id]["PhysicalResourceId"]


def invoke(endpoint: str, function: str, payload: dict | None = None) -> dict:
    answer = aws_client("lambda", endpoint).invoke(FunctionName=function, Payload=json.dumps(payload or {}).encode())
    body = json.loads(answer["Payload"].read() or b"null")
    assert "FunctionError" not in answer, body
    return body


def drain(sqs, queue_url: str, want: int, timeout: float = 30.0) -> list[str]:
    """Receives until `want` messages have arrived (deleting them); returns their bodies."""
    bodies: list[str] = []

    def enough():
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in got.get("Messages", []):
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(bodies) >= want

    wait_until(enough, timeout=timeout, interval=0.01, what=f"{want} messages in {queue_url}")
    return bodies


def gone(call, *args, **kwargs) -> bool:
    """Whether a describe/get call says its resource no longer exists."""
    try:
        call(*args, **kwargs)
    except Exception as error:  # botocore's ClientError subclasses, by service
        detail = getattr(error, "response", {}).get("Error", {})
        code = detail.get("Code", "")
        if code == "ValidationError":
            return "does not exist" in detail.get("Message", "")
        return code in {"ResourceNotFoundException", "NoSuchBucket", "404", "NotFound",
                        "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
                        "NotFoundException"}
    return False


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def cli(nimbus_bin, *args: str, endpoint: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(nimbus_bin), *args, "--endpoint", endpoint], capture_output=True, text=True,
                          timeout=120)


def stack_events(cfn, stack: str) -> list[dict]:
    return cfn.describe_stack_events(StackName=stack)["StackEvents"]


def advance(endpoint: str, seconds: float) -> None:
    """Moves a virtual clock (`nimbus up --clock virtual`) forward."""
    request = urllib.request.Request(f"{endpoint}/_nimbus/clock/advance?seconds={seconds}", method="POST")
    with urllib.request.urlopen(request) as reply:
        reply.read()
