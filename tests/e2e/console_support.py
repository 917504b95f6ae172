"""The console's end-to-end tests: a sample workload (functions, one failing; a Batch array job;
an interrupted spot instance; a stack; a state machine; a queue) and a real browser (Debian's
chromium and chromium-driver through Selenium), skipped with the reason when either is missing."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from batch_support import CAPACITY, make_env, make_queue, shell_def, until
from support import ROLE, aws_client, make_zip

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("NIMBUS_CONSOLE_SCREENSHOTS", ROOT / "target" / "console-screenshots"))
X86_AMI = "ami-0a1b2c3d4e5f60001"
ERROR_MARKER = "console-boom-7f3a"
ARRAY_SIZE = 40

OK_HANDLER = "def handler(event, context):\n    print('ok', event)\n    return {'ok': True}\n"
FAILING_HANDLER = (
    "def handler(event, context):\n"
    f"    raise ValueError('{ERROR_MARKER}: the input was not what I wanted')\n"
)


def browser_or_skip():
    """A headless Chromium with the browser console's messages kept; skips when it cannot run."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("the console tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("the console tests need selenium (tests/e2e/requirements.txt)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Chromium's profile and the singleton socket it makes under TMPDIR live in a directory of
    # the test's own, removed on quit (else each run leaves /tmp/org.chromium.Chromium.* behind).
    root = tempfile.mkdtemp(prefix="nimbus-chromium-")
    options.add_argument(f"--user-data-dir={root}/profile")
    try:
        browser = webdriver.Chrome(service=Service(driver, env={**os.environ, "TMPDIR": root}), options=options)
    except Exception:
        shutil.rmtree(root, ignore_errors=True)
        raise
    quit_browser = browser.quit

    def quit_and_clean():
        try:
            quit_browser()
        finally:
            shutil.rmtree(root, ignore_errors=True)

    browser.quit = quit_and_clean
    return browser


def deploy_workload(endpoint: str) -> dict:
    """Everything the console's pages show, deployed through the AWS APIs."""
    out: dict = {}
    lam = aws_client("lambda", endpoint)
    for key, code in (("ok_fn", OK_HANDLER), ("failing_fn", FAILING_HANDLER)):
        name = f"console-{key.split('_')[0]}-{uuid.uuid4().hex[:6]}"
        lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                            Code={"ZipFile": make_zip({"app.py": code})}, Timeout=10)
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        out[key] = name
    for _ in range(3):
        lam.invoke(FunctionName=out["ok_fn"], Payload=b'{"n": 1}')
        failed = lam.invoke(FunctionName=out["failing_fn"], Payload=b"{}")
        assert failed.get("FunctionError") == "Unhandled"

    sqs = aws_client("sqs", endpoint)
    out["queue"] = f"console-q-{uuid.uuid4().hex[:6]}"
    url = sqs.create_queue(QueueName=out["queue"])["QueueUrl"]
    for i in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")

    cfn = aws_client("cloudformation", endpoint)
    out["stack"] = f"console-stack-{uuid.uuid4().hex[:6]}"
    cfn.create_stack(StackName=out["stack"], TemplateBody=json.dumps({
        "Resources": {"Inbox": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"InboxUrl": {"Value": {"Ref": "Inbox"}}},
    }))

    sfn = aws_client("stepfunctions", endpoint)
    definition = {"StartAt": "Prepare", "States": {
        "Prepare": {"Type": "Pass", "Next": "Decide"},
        "Decide": {"Type": "Choice", "Choices": [{"Variable": "$.go", "BooleanEquals": True, "Next": "Done"}], "Default": "Stop"},
        "Done": {"Type": "Succeed"}, "Stop": {"Type": "Fail", "Error": "NoGo"}}}
    machine = sfn.create_state_machine(name=f"console-sm-{uuid.uuid4().hex[:6]}", definition=json.dumps(definition),
                                       roleArn=ROLE)["stateMachineArn"]
    out["machine"] = machine
    out["execution"] = sfn.start_execution(stateMachineArn=machine, input='{"go": true}')["executionArn"]

    batch = aws_client("batch", endpoint)
    env = make_env(batch, f"console-env-{uuid.uuid4().hex[:6]}", max_vcpus=16)
    queue = make_queue(batch, env)
    definition_name = shell_def(batch, "echo child $AWS_BATCH_JOB_ARRAY_INDEX done")
    out["array_job"] = batch.submit_job(jobName="console-array", jobQueue=queue, jobDefinition=definition_name,
                                        arrayProperties={"size": ARRAY_SIZE})["jobId"]
    out["after_job"] = batch.submit_job(jobName="console-after", jobQueue=queue, jobDefinition=definition_name,
                                        dependsOn=[{"jobId": out["array_job"]}])["jobId"]

    ec2 = aws_client("ec2", endpoint)
    out["spot"] = ec2.run_instances(ImageId=X86_AMI, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                                    InstanceMarketOptions={"MarketType": "spot"})["Instances"][0]["InstanceId"]
    out["group"] = f"console-asg-{uuid.uuid4().hex[:6]}"
    ec2.create_launch_template(LaunchTemplateName=out["group"], LaunchTemplateData={"ImageId": X86_AMI, "InstanceType": "t3.nano"})
    aws_client("autoscaling", endpoint).create_auto_scaling_group(
        AutoScalingGroupName=out["group"], MinSize=1, MaxSize=1, DesiredCapacity=1, AvailabilityZones=["us-east-1a"],
        LaunchTemplate={"LaunchTemplateName": out["group"], "Version": "$Latest"})
    until("the spot instance running", lambda: ec2.describe_instances(InstanceIds=[out["spot"]])
          ["Reservations"][0]["Instances"][0]["State"]["Name"] == "running")
    return out


def console_server_args() -> list[str]:
    return list(CAPACITY)


def wait_for(driver, what, check, timeout=30.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = driver.execute_script(check) if isinstance(check, str) else check()
        except Exception as error:  # the element is being redrawn
            last = error
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def severe_console_messages(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot(driver, name: str, full: bool = False) -> Path:
    """The window as it is; `full`: the whole page (the window made as tall, then put back)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    if not full:
        driver.save_screenshot(str(path))
        return path
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size["width"], min(int(height) + 140, 4000))
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(size["width"], size["height"])
    return path
