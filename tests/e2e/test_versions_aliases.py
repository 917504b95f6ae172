"""Versions, aliases, concurrency and the rest of the Lambda control plane a data engineer uses
day to day (issue: Lambda, complete), through boto3 and the aws CLI."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import time
from collections import Counter

import pytest
from botocore.exceptions import ClientError

from support import ROLE, function_arn, make_zip, payload_json, unique_name

# `env` tells environments apart (every sandboxed runtime is pid 1 of its own namespace).
VERSIONED = "import uuid\nENV = uuid.uuid4().hex\ndef handler(event, context):\n    return {{'code': '{tag}', 'env': ENV}}\n"
SLEEPER = "import time, uuid\nENV = uuid.uuid4().hex\ndef handler(event, context):\n    time.sleep(event.get('sleep', 0))\n    return ENV\n"


def zipped(tag: str) -> bytes:
    return make_zip({"app.py": VERSIONED.format(tag=tag)})


@pytest.fixture(scope="module")
def versioned(client):
    name = unique_name("versioned")
    client.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                           Code={"ZipFile": zipped("one")})
    first = client.publish_version(FunctionName=name, Description="first")
    client.update_function_code(FunctionName=name, ZipFile=zipped("two"))
    client.get_waiter("function_updated_v2").wait(FunctionName=name)
    second = client.publish_version(FunctionName=name)
    return name, first, second


def test_published_versions_are_immutable_snapshots(client, versioned):
    name, first, second = versioned
    assert (first["Version"], second["Version"]) == ("1", "2")
    assert first["Description"] == "first"
    assert first["FunctionArn"] == function_arn(name) + ":1"
    assert first["CodeSha256"] != second["CodeSha256"]
    listed = [v["Version"] for v in client.list_versions_by_function(FunctionName=name)["Versions"]]
    assert listed == ["$LATEST", "1", "2"]
    # Publishing again without a change returns the newest version instead of a new one.
    assert client.publish_version(FunctionName=name)["Version"] == "2"
    assert client.get_function_configuration(FunctionName=name, Qualifier="1")["Version"] == "1"


def test_publish_checks_code_sha_and_revision(client, versioned):
    name, _, second = versioned
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.publish_version(FunctionName=name, CodeSha256="not-the-current-sha")
    with pytest.raises(client.exceptions.PreconditionFailedException):
        client.publish_version(FunctionName=name, RevisionId="stale-revision")


def test_qualified_invokes_run_each_versions_code(client, versioned):
    name, _, _ = versioned
    by_qualifier = client.invoke(FunctionName=name, Qualifier="1")
    one = payload_json(by_qualifier)
    assert one["code"] == "one" and by_qualifier["ExecutedVersion"] == "1"
    by_arn = client.invoke(FunctionName=function_arn(name) + ":2")
    two = payload_json(by_arn)
    assert two["code"] == "two" and by_arn["ExecutedVersion"] == "2"
    latest = client.invoke(FunctionName=name + ":$LATEST")
    assert latest["ExecutedVersion"] == "$LATEST"
    # Each version keeps its own environments.
    assert one["env"] != two["env"]
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName=name, Qualifier="99")


def test_alias_with_weighted_routing_splits_invocations(client, versioned):
    name, _, _ = versioned
    alias = client.create_alias(FunctionName=name, Name="prod", FunctionVersion="1",
                                RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}})
    assert alias["AliasArn"] == function_arn(name) + ":prod"
    assert client.get_alias(FunctionName=name, Name="prod")["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.3}}
    counts = Counter()
    lock = threading.Lock()

    def call(n):
        for _ in range(n):
            resp = client.invoke(FunctionName=alias["AliasArn"])
            version = resp["ExecutedVersion"]
            assert payload_json(resp)["code"] == {"1": "one", "2": "two"}[version]
            with lock:
                counts[version] += 1

    threads = [threading.Thread(target=call, args=(250,)) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sum(counts.values()) == 1000
    assert 240 <= counts["2"] <= 360, counts  # 30 % ± 6 points (well over 4 sigma)


def test_alias_lifecycle_and_rules(client, versioned):
    name, _, _ = versioned
    client.create_alias(FunctionName=name, Name="staging", FunctionVersion="2")
    with pytest.raises(client.exceptions.ResourceConflictException):
        client.create_alias(FunctionName=name, Name="staging", FunctionVersion="1")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.create_alias(FunctionName=name, Name="nope", FunctionVersion="42")
    with pytest.raises(ClientError):
        client.create_alias(FunctionName=name, Name="bad", FunctionVersion="1",
                            RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}})
    updated = client.update_alias(FunctionName=name, Name="staging", FunctionVersion="1", Description="moved")
    assert (updated["FunctionVersion"], updated["Description"]) == ("1", "moved")
    names = [a["Name"] for a in client.list_aliases(FunctionName=name)["Aliases"]]
    assert "staging" in names
    assert payload_json(client.invoke(FunctionName=name, Qualifier="staging"))["code"] == "one"
    # A version an alias points at cannot be deleted.
    with pytest.raises(client.exceptions.ResourceConflictException):
        client.delete_function(FunctionName=name, Qualifier="1")
    client.delete_alias(FunctionName=name, Name="staging")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_alias(FunctionName=name, Name="staging")


def test_reserved_concurrency_zero_throttles(client, create_fn):
    name = create_fn("reserved0", {"app.py": SLEEPER})
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    assert client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 0
    with pytest.raises(client.exceptions.TooManyRequestsException) as raised:
        client.invoke(FunctionName=name, Payload=b"{}")
    assert raised.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    client.delete_function_concurrency(FunctionName=name)
    assert client.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200


def test_reserved_concurrency_two_caps_parallel_environments(server):
    client = server.client()  # no retries: a throttle must surface
    name = unique_name("reserved2")
    client.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                           Code={"ZipFile": make_zip({"app.py": SLEEPER})})
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
    results, throttles = [], []

    def call():
        try:
            results.append(payload_json(client.invoke(FunctionName=name, Payload=json.dumps({"sleep": 1}).encode())))
        except client.exceptions.TooManyRequestsException:
            throttles.append(1)

    threads = [threading.Thread(target=call) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(results) == 2 and len(throttles) == 4, (results, throttles)
    assert len(set(results)) <= 2


def test_account_settings_reflect_reservations(client, create_fn):
    name = create_fn("acct", {"app.py": SLEEPER})
    before = client.get_account_settings()["AccountLimit"]
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=10)
    after = client.get_account_settings()["AccountLimit"]
    assert after["UnreservedConcurrentExecutions"] == before["UnreservedConcurrentExecutions"] - 10
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=after["ConcurrentExecutions"])
    client.delete_function_concurrency(FunctionName=name)


def test_provisioned_concurrency_makes_the_first_invoke_warm(client, create_fn):
    name = create_fn("provisioned", {"app.py": SLEEPER})
    version = client.publish_version(FunctionName=name)["Version"]
    client.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    put = client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="live",
                                                    ProvisionedConcurrentExecutions=2)
    assert put["RequestedProvisionedConcurrentExecutions"] == 2
    deadline = time.time() + 20
    while client.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")["Status"] != "READY":
        assert time.time() < deadline
        time.sleep(0.1)
    config = client.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    assert config["AvailableProvisionedConcurrentExecutions"] == 2
    resp = client.invoke(FunctionName=name, Qualifier="live", LogType="Tail", Payload=b"{}")
    report = base64.b64decode(resp["LogResult"]).decode()
    assert "REPORT RequestId:" in report and "Init Duration" not in report, report
    listed = client.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"]
    assert [c["FunctionArn"] for c in listed] == [function_arn(name) + ":live"]
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="$LATEST",
                                                  ProvisionedConcurrentExecutions=1)
    client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    with pytest.raises(client.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        client.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")


def test_tags_permissions_invoke_config_and_recursion(client, create_fn):
    name = create_fn("misc", {"app.py": SLEEPER}, Tags={"team": "data"})
    arn = function_arn(name)
    client.tag_resource(Resource=arn, Tags={"stage": "dev"})
    assert client.list_tags(Resource=arn)["Tags"] == {"team": "data", "stage": "dev"}
    client.untag_resource(Resource=arn, TagKeys=["team"])
    assert client.get_function(FunctionName=name)["Tags"] == {"stage": "dev"}

    added = client.add_permission(FunctionName=name, StatementId="s3-invoke", Action="lambda:InvokeFunction",
                                  Principal="s3.amazonaws.com", SourceArn="arn:aws:s3:::bucket",
                                  SourceAccount="000000000000")
    statement = json.loads(added["Statement"])
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == "arn:aws:s3:::bucket"
    with pytest.raises(client.exceptions.ResourceConflictException):
        client.add_permission(FunctionName=name, StatementId="s3-invoke", Action="lambda:InvokeFunction",
                              Principal="s3.amazonaws.com")
    policy = json.loads(client.get_policy(FunctionName=name)["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["s3-invoke"]
    client.remove_permission(FunctionName=name, StatementId="s3-invoke")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_policy(FunctionName=name)

    queue = "arn:aws:sqs:us-east-1:000000000000:failures"
    put = client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1,
                                                  DestinationConfig={"OnFailure": {"Destination": queue}})
    assert put["MaximumRetryAttempts"] == 1
    updated = client.update_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=120)
    assert (updated["MaximumRetryAttempts"], updated["MaximumEventAgeInSeconds"]) == (1, 120)
    assert updated["DestinationConfig"]["OnFailure"]["Destination"] == queue
    assert len(client.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]) == 1
    with pytest.raises(ClientError):
        client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=5)
    client.delete_function_event_invoke_config(FunctionName=name)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function_event_invoke_config(FunctionName=name)

    assert client.put_function_recursion_config(FunctionName=name, RecursiveLoop="Allow")["RecursiveLoop"] == "Allow"
    assert client.get_function_recursion_config(FunctionName=name)["RecursiveLoop"] == "Allow"


def test_unknown_operations_say_which(client, create_fn):
    name = create_fn("unknown-op", {"app.py": SLEEPER})
    with pytest.raises(ClientError) as raised:
        client.get_function_code_signing_config(FunctionName=name)
    error = raised.value.response["Error"]
    assert error["Code"] == "UnknownOperationException"
    assert "GetFunctionCodeSigningConfig" in error["Message"]


def test_versions_and_aliases_survive_a_restart(server_factory):
    srv = server_factory()
    client = srv.client()
    name = unique_name("durable")
    client.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                           Code={"ZipFile": zipped("kept")})
    client.publish_version(FunctionName=name)
    client.create_alias(FunctionName=name, Name="prod", FunctionVersion="1")
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)
    srv.stop()
    srv.start()
    client = srv.client()
    assert payload_json(client.invoke(FunctionName=name, Qualifier="prod"))["code"] == "kept"
    assert client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 5
    # Version numbers are never reused, even after a deletion.
    client.delete_alias(FunctionName=name, Name="prod")
    client.delete_function(FunctionName=name, Qualifier="1")
    client.update_function_configuration(FunctionName=name, Description="changed")
    client.get_waiter("function_updated_v2").wait(FunctionName=name)
    assert client.publish_version(FunctionName=name)["Version"] == "2"


def test_aws_cli_versions_and_aliases(server, create_fn, tmp_path):
    name = create_fn("cli-versions", {"app.py": VERSIONED.format(tag="cli")})
    env = {**os.environ, "AWS_ENDPOINT_URL": server.endpoint, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}

    def aws(*args):
        out = subprocess.run(["aws", "lambda", *args, "--output", "json"], env=env, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    assert aws("publish-version", "--function-name", name)["Version"] == "1"
    assert aws("create-alias", "--function-name", name, "--name", "prod", "--function-version", "1")["Name"] == "prod"
    result = aws("invoke", "--function-name", name, "--qualifier", "prod", str(tmp_path / "out.json"))
    assert result["ExecutedVersion"] == "1"
    assert json.loads((tmp_path / "out.json").read_text())["code"] == "cli"
