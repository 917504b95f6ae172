"""The front door: every request gets an AWS-shaped answer from the service it names, slow
clients cannot lock anyone out, and one data directory serves one nimbus."""

from __future__ import annotations

import http.client
import resource
import shutil
import socket
import subprocess
import time

import psutil
import pytest
from botocore.exceptions import ClientError
from conftest import NimbusServer
from support import aws_cli_env, aws_client

# (client, call, kwargs, the service's full name as botocore's model has it)
UNSERVED = [
    ("firehose", "list_delivery_streams", {}, "Amazon Kinesis Firehose"),
    ("glue", "get_databases", {}, "AWS Glue"),
    ("athena", "list_work_groups", {}, "Amazon Athena"),
    ("ecs", "list_clusters", {}, "Amazon EC2 Container Service"),
    ("rds", "describe_db_instances", {}, "Amazon Relational Database Service"),
    ("ses", "list_identities", {}, "Amazon Simple Email Service"),
    ("kms", "list_keys", {}, "AWS Key Management Service"),
]


@pytest.mark.parametrize("service,call,kwargs,full_name", UNSERVED, ids=[u[0] for u in UNSERVED])
def test_unserved_service_answers_in_its_own_protocol(endpoint, service, call, kwargs, full_name):
    client = aws_client(service, endpoint)
    with pytest.raises(ClientError) as caught:
        getattr(client, call)(**kwargs)
    error = caught.value.response["Error"]
    assert error["Code"] == "UnknownServiceException", caught.value.response
    assert error["Message"] == f"nimbus does not serve the {full_name} API"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.skipif(shutil.which("aws") is None, reason="aws CLI not installed")
@pytest.mark.parametrize("command,operation,full_name", [
    (["firehose", "list-delivery-streams"], "ListDeliveryStreams", "Amazon Kinesis Firehose"),
    (["ecs", "list-clusters"], "ListClusters", "Amazon EC2 Container Service"),
    (["ses", "list-identities"], "ListIdentities", "Amazon Simple Email Service"),
    (["kms", "list-keys"], "ListKeys", "AWS Key Management Service"),
])
def test_aws_cli_prints_a_clean_error(endpoint, tmp_path, command, operation, full_name):
    proc = subprocess.run(["aws", "--endpoint-url", endpoint, *command], env=aws_cli_env(endpoint, tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    expected = (f"An error occurred (UnknownServiceException) when calling the {operation} operation: "
                f"nimbus does not serve the {full_name} API")
    assert expected in proc.stderr, proc.stderr
    assert "Unable to parse" not in proc.stderr


def _request(endpoint, method, path, body=b"", headers=None):
    host, port = endpoint.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        conn.close()


def test_unknown_sqs_query_action_is_invalid_action(endpoint):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, headers, body = _request(endpoint, "POST", "/", b"Action=Bogus&Version=2012-11-05", form)
    assert status == 400, body
    assert "<Code>InvalidAction</Code>" in body, body
    assert "The action Bogus is not valid for this endpoint." in body


@pytest.mark.parametrize("method,path", [("PATCH", "/2015-03-31/functions/x"), ("GET", "/2015-03-31/bogus")])
def test_unknown_lambda_paths_get_lambdas_own_error(endpoint, method, path):
    status, headers, body = _request(endpoint, method, path)
    assert status == 400, body
    assert headers.get("x-amzn-errortype") == "UnknownOperationException", headers
    assert body.startswith("{") and "NoSuchBucket" not in body and "NotImplemented" not in body, body
    assert f"Unknown operation {method} {path}" in body, body


def test_signed_lambda_request_stays_with_lambda(endpoint):
    """Signed for Lambda (nimbus accepts any signature), a path with no operation stays with Lambda."""
    auth = "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=x"
    status, headers, body = _request(endpoint, "PATCH", "/2015-03-31/functions/x", headers={"Authorization": auth})
    assert status == 400 and headers.get("x-amzn-errortype") == "UnknownOperationException", body


def test_malformed_chunked_encoding_is_a_bad_request(endpoint):
    host, port = endpoint.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"PUT /bucket/key HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert b"IncompleteBody" in answer, answer


# ---------------------------------------------------------------------------
# Slow clients
# ---------------------------------------------------------------------------

NIMBUS_FILES = 1024  # nimbus's descriptor limit in this test, so that a flood can exceed it
FLOOD = 2500


def _health_ok(endpoint) -> bool:
    try:
        status, _, body = _request(endpoint, "GET", "/_nimbus/health")
        return status == 200 and '"ready"' in body
    except OSError:
        return False


def test_health_answers_under_a_flood_of_unfinished_heads(nimbus_bin, tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < FLOOD + 200:
        pytest.skip(f"this test opens {FLOOD} connections; the descriptor limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # nimbus runs with a small descriptor limit (soft and hard) through a wrapper script.
    wrapper = tmp_path / "nimbus-limited"
    wrapper.write_text(f"#!/bin/sh\nulimit -n {NIMBUS_FILES}\nexec {nimbus_bin} \"$@\"\n")
    wrapper.chmod(0o755)
    srv = NimbusServer(wrapper, tmp_path / "data", tmp_path / "nimbus.log")
    srv.start()
    slow = []
    try:
        rss_before = psutil.Process(srv.proc.pid).memory_info().rss
        host, port = srv.endpoint.removeprefix("http://").split(":")
        for _ in range(FLOOD):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex((host, int(port)))
            slow.append(sock)
        time.sleep(0.5)
        for sock in slow:
            try:
                sock.send(b"GET / HTTP/1.1\r\nHost: ")  # never finished
            except OSError:
                pass  # evicted already
        started = time.monotonic()
        assert _health_ok(srv.endpoint), srv.log_tail()
        assert time.monotonic() - started < 2
        rss = psutil.Process(srv.proc.pid).memory_info().rss
        print(f"RSS before {rss_before >> 20} MiB, under {FLOOD} unfinished heads {rss >> 20} MiB")
        assert rss - rss_before < 64 << 20
        assert srv.proc.poll() is None
    finally:
        for sock in slow:
            sock.close()
        srv.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# ---------------------------------------------------------------------------
# One nimbus per data directory
# ---------------------------------------------------------------------------


def test_one_nimbus_per_data_directory(server_factory):
    first = server_factory()
    second = server_factory(data_dir=first.data_dir, start=False)
    with pytest.raises(AssertionError, match="exited with"):
        second.start()
    assert second.proc.returncode != 0
    expected = (f"nimbus: data directory {first.data_dir} is in use by another nimbus "
                f"(pid {first.proc.pid}, port {first.port})")
    assert expected in second.log_text(), second.log_text()
    second.stop(check_children=False)  # already exited; the others share its data directory
    # The same port too (the same command typed twice): the directory is named, not the port.
    twice = server_factory(data_dir=first.data_dir, start=False)
    try:
        twice.start(port=first.port)  # its health probe reaches the first nimbus on that port
    except AssertionError:
        pass
    assert twice.proc.wait(timeout=10) != 0
    assert expected in twice.log_text(), twice.log_text()
    twice.stop(check_children=False)
    assert first.health()["status"] == "ready"
    # The lock dies with its holder: no stale lock after kill -9.
    first.kill()
    third = server_factory(data_dir=first.data_dir)
    assert third.health()["status"] == "ready"
    third.stop()
