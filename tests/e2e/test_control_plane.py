"""Lambda control plane through boto3: create, get, list, update, delete, and AWS's errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError
from support import (
    PY_MULTI,
    ROLE,
    code_sha256,
    function_arn,
    make_zip,
    payload_json,
    request_id,
    unique_name,
    zip_bomb,
)

HELLO_V1 = "def handler(event, context):\n    return {'version': 1}\n"
HELLO_V2 = "def handler(event, context):\n    return {'version': 2}\n"


def _error(excinfo) -> tuple[str, str, int]:
    err = excinfo.value.response
    return err["Error"]["Code"], err["Error"].get("Message", ""), err["ResponseMetadata"]["HTTPStatusCode"]


def test_create_returns_aws_shaped_configuration(client):
    name = unique_name("create")
    zip_bytes = make_zip({"app.py": HELLO_V1})
    resp = client.create_function(
        FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": zip_bytes}, Description="first", Timeout=5, MemorySize=256,
        Environment={"Variables": {"A": "1"}},
    )
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert resp["FunctionName"] == name
    assert resp["FunctionArn"] == function_arn(name)
    assert resp["Runtime"] == "python3.12"
    assert resp["Role"] == ROLE
    assert resp["Handler"] == "app.handler"
    assert resp["Description"] == "first"
    assert resp["Timeout"] == 5
    assert resp["MemorySize"] == 256
    assert resp["Version"] == "$LATEST"
    assert resp["CodeSize"] == len(zip_bytes)
    assert resp["CodeSha256"] == code_sha256(zip_bytes)
    assert resp["Environment"] == {"Variables": {"A": "1"}}
    assert resp["PackageType"] == "Zip"
    assert resp["State"] in ("Pending", "Active")
    assert resp.get("RevisionId")
    assert resp.get("LastModified")
    client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})


def test_create_applies_aws_defaults(client, create_fn):
    name = create_fn("defaults", {"app.py": HELLO_V1})
    cfg = client.get_function_configuration(FunctionName=name)
    assert cfg["Timeout"] == 3
    assert cfg["MemorySize"] == 128
    assert cfg["EphemeralStorage"] == {"Size": 512}
    assert cfg["Architectures"] == ["x86_64"]
    assert cfg["State"] == "Active"
    assert cfg["LastUpdateStatus"] == "Successful"


def test_get_function_and_configuration(client, create_fn):
    name = create_fn("get", {"app.py": HELLO_V1}, MemorySize=512, Description="desc")
    got = client.get_function(FunctionName=name)
    cfg = got["Configuration"]
    assert cfg["FunctionName"] == name
    assert cfg["FunctionArn"] == function_arn(name)
    assert cfg["MemorySize"] == 512
    assert cfg["Description"] == "desc"
    assert cfg["State"] == "Active"
    assert got["Code"]["RepositoryType"] == "S3"
    conf = client.get_function_configuration(FunctionName=name)
    for key in ("FunctionName", "FunctionArn", "Runtime", "Handler", "MemorySize", "Timeout",
                "CodeSha256", "CodeSize", "RevisionId", "State", "LastUpdateStatus"):
        assert conf[key] == cfg[key], key
    # Lookup by ARN works too, as on AWS.
    assert client.get_function(FunctionName=function_arn(name))["Configuration"]["FunctionName"] == name


def test_list_functions_paginates_with_max_items_and_marker(client, create_fn):
    prefix = unique_name("page")
    names = sorted(create_fn(prefix, {"app.py": HELLO_V1}, wait=False) for _ in range(7))

    seen: list[str] = []
    entries: dict[str, dict] = {}
    marker = None
    pages = 0
    while True:
        kwargs = {"MaxItems": 3}
        if marker:
            kwargs["Marker"] = marker
        page = client.list_functions(**kwargs)
        pages += 1
        assert len(page["Functions"]) <= 3
        seen += [f["FunctionName"] for f in page["Functions"]]
        entries.update({f["FunctionName"]: f for f in page["Functions"]})
        marker = page.get("NextMarker")
        if not marker:
            break
        assert len(page["Functions"]) == 3, "a page before the last one must be full"
        assert pages < 1000
    assert len(seen) == len(set(seen)), "pagination returned duplicates"
    assert sorted(n for n in seen if n.startswith(prefix)) == names
    # Listed entries carry the configuration.
    assert entries[names[0]]["FunctionArn"] == function_arn(names[0])
    assert entries[names[0]]["Runtime"] == "python3.12"

    # The boto3 paginator (PaginationConfig) sees the same set.
    paginated = []
    for page in client.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 2}):
        paginated += [f["FunctionName"] for f in page["Functions"]]
    assert sorted(n for n in paginated if n.startswith(prefix)) == names


def test_list_functions_returns_at_most_50_per_page(client, create_fn):
    """AWS: "ListFunctions returns a maximum of 50 items in each response, even if you set the
    number higher" (and 50 is also the page size without MaxItems)."""
    prefix = unique_name("many")
    names = {create_fn(prefix, {"app.py": HELLO_V1}, wait=False) for _ in range(51)}
    for kwargs in ({}, {"MaxItems": 100}):
        page = client.list_functions(**kwargs)
        assert len(page["Functions"]) <= 50, (kwargs, len(page["Functions"]))
        assert page.get("NextMarker"), kwargs
    listed = {f["FunctionName"] for p in client.get_paginator("list_functions").paginate() for f in p["Functions"]}
    assert names <= listed


def test_update_function_code(client, create_fn):
    name = create_fn("upd-code", {"app.py": HELLO_V1})
    before = client.get_function_configuration(FunctionName=name)
    assert payload_json(client.invoke(FunctionName=name)) == {"version": 1}

    new_zip = make_zip({"app.py": HELLO_V2})
    resp = client.update_function_code(FunctionName=name, ZipFile=new_zip)
    assert resp["CodeSha256"] == code_sha256(new_zip)
    assert resp["CodeSize"] == len(new_zip)
    assert resp["RevisionId"] != before["RevisionId"]
    client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    assert client.get_function_configuration(FunctionName=name)["LastUpdateStatus"] == "Successful"
    # The warm environment running version 1 must not serve the new code.
    assert payload_json(client.invoke(FunctionName=name)) == {"version": 2}


def test_update_function_configuration(client, create_fn):
    name = create_fn("upd-cfg", {"app.py": PY_MULTI}, Timeout=3)
    assert payload_json(client.invoke(FunctionName=name, Payload=json.dumps({"op": "env"})))["env"].get("NEW_VAR") is None

    resp = client.update_function_configuration(
        FunctionName=name, Timeout=20, MemorySize=1024, Description="updated",
        Environment={"Variables": {"NEW_VAR": "new"}}, EphemeralStorage={"Size": 1024},
    )
    assert resp["Timeout"] == 20
    assert resp["MemorySize"] == 1024
    assert resp["Description"] == "updated"
    client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    cfg = client.get_function_configuration(FunctionName=name)
    assert cfg["Timeout"] == 20
    assert cfg["MemorySize"] == 1024
    assert cfg["EphemeralStorage"] == {"Size": 1024}
    assert cfg["Environment"] == {"Variables": {"NEW_VAR": "new"}}
    env = payload_json(client.invoke(FunctionName=name, Payload=json.dumps({"op": "env"})))["env"]
    assert env["NEW_VAR"] == "new"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "1024"
    ctx = payload_json(client.invoke(FunctionName=name, Payload=json.dumps({"op": "context"})))
    assert 10_000 < ctx["remaining_ms"] <= 20_000


def test_delete_function(client, create_fn):
    name = create_fn("delete", {"app.py": HELLO_V1})
    resp = client.delete_function(FunctionName=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function(FunctionName=name)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName=name)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.delete_function(FunctionName=name)
    names = [f["FunctionName"] for p in client.get_paginator("list_functions").paginate() for f in p["Functions"]]
    assert name not in names
    # The name can be reused.
    client.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                           Code={"ZipFile": make_zip({"app.py": HELLO_V2})})
    client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    assert payload_json(client.invoke(FunctionName=name)) == {"version": 2}


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_get_missing_function_is_resource_not_found(client):
    name = unique_name("missing")
    with pytest.raises(client.exceptions.ResourceNotFoundException) as ei:
        client.get_function(FunctionName=name)
    code, message, status = _error(ei)
    assert status == 404
    assert message == f"Function not found: {function_arn(name)}"
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function_configuration(FunctionName=name)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.update_function_configuration(FunctionName=name, Timeout=5)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.update_function_code(FunctionName=name, ZipFile=make_zip({"app.py": HELLO_V1}))


def test_create_duplicate_is_resource_conflict(client, create_fn):
    name = create_fn("dup", {"app.py": HELLO_V1})
    with pytest.raises(client.exceptions.ResourceConflictException) as ei:
        client.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                               Code={"ZipFile": make_zip({"app.py": HELLO_V1})})
    code, message, status = _error(ei)
    assert status == 409
    assert message == f"Function already exist: {name}"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"MemorySize": 20000}, "memorySize"),
        ({"Timeout": 1000}, "timeout"),
        ({"EphemeralStorage": {"Size": 20000}}, "ephemeralStorage.size"),
    ],
    ids=["memory-20000", "timeout-1000", "ephemeral-20000"],
)
def test_create_limits_are_validation_exceptions(client, kwargs, field):
    with pytest.raises(ClientError) as ei:
        client.create_function(FunctionName=unique_name("limits"), Runtime="python3.12", Role=ROLE,
                               Handler="app.handler", Code={"ZipFile": make_zip({"app.py": HELLO_V1})}, **kwargs)
    code, message, status = _error(ei)
    assert code == "ValidationException", message
    assert status == 400
    assert field in message, message
    assert "failed to satisfy constraint" in message, message


@pytest.mark.parametrize("bad_name", ["has spaces", "slash/inside", "x" * 65], ids=["spaces", "slash", "65-chars"])
def test_invalid_function_name_is_rejected(client, bad_name):
    with pytest.raises(ClientError) as ei:
        client.create_function(FunctionName=bad_name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                               Code={"ZipFile": make_zip({"app.py": HELLO_V1})})
    code, message, status = _error(ei)
    assert code in ("ValidationException", "InvalidParameterValueException"), (code, message)
    assert status == 400


def test_update_configuration_limits_are_validation_exceptions(client, create_fn):
    name = create_fn("upd-limits", {"app.py": HELLO_V1})
    for kwargs in ({"MemorySize": 10241}, {"Timeout": 901}, {"EphemeralStorage": {"Size": 10241}}):
        with pytest.raises(ClientError) as ei:
            client.update_function_configuration(FunctionName=name, **kwargs)
        assert _error(ei)[0] == "ValidationException", kwargs
    # The limits themselves are accepted.
    resp = client.update_function_configuration(FunctionName=name, MemorySize=10240, Timeout=900)
    assert (resp["MemorySize"], resp["Timeout"]) == (10240, 900)


def test_environment_over_4kb_is_invalid_parameter(client):
    variables = {f"VAR_{i}": "v" * 100 for i in range(50)}  # ~5.5 KB
    with pytest.raises(client.exceptions.InvalidParameterValueException) as ei:
        client.create_function(FunctionName=unique_name("env4k"), Runtime="python3.12", Role=ROLE,
                               Handler="app.handler", Code={"ZipFile": make_zip({"app.py": HELLO_V1})},
                               Environment={"Variables": variables})
    code, message, status = _error(ei)
    assert status == 400
    assert "4KB" in message, message


def test_unzipped_over_250mb_is_invalid_parameter(client):
    bomb = zip_bomb(251 * 1024 * 1024)
    assert len(bomb) < 5 * 1024 * 1024
    with pytest.raises(client.exceptions.InvalidParameterValueException) as ei:
        client.create_function(FunctionName=unique_name("bomb"), Runtime="python3.12", Role=ROLE,
                               Handler="app.handler", Code={"ZipFile": bomb})
    code, message, status = _error(ei)
    assert "262144000" in message, message


def test_corrupt_zip_is_invalid_parameter(client):
    with pytest.raises(client.exceptions.InvalidParameterValueException) as ei:
        client.create_function(FunctionName=unique_name("corrupt"), Runtime="python3.12", Role=ROLE,
                               Handler="app.handler", Code={"ZipFile": b"PK\x03\x04 definitely not a zip file"})
    code, message, status = _error(ei)
    assert status == 400
    assert "Could not unzip uploaded file" in message, message


def test_update_code_with_corrupt_zip_is_invalid_parameter(client, create_fn):
    name = create_fn("corrupt-upd", {"app.py": HELLO_V1})
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.update_function_code(FunctionName=name, ZipFile=b"not a zip at all")
    assert payload_json(client.invoke(FunctionName=name)) == {"version": 1}, "the old code must stay live"


def test_zip_over_50mb_is_request_entity_too_large(client):
    import io
    import os
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("app.py", HELLO_V1)
        zf.writestr("random.bin", os.urandom(51 * 1024 * 1024))
    with pytest.raises(ClientError) as ei:
        client.create_function(FunctionName=unique_name("zip50"), Runtime="python3.12", Role=ROLE,
                               Handler="app.handler", Code={"ZipFile": buf.getvalue()})
    code, message, status = _error(ei)
    assert code == "RequestEntityTooLargeException", (code, message)
    assert status == 413
    assert "69905067" in message, message


@pytest.mark.parametrize("runtime", ["ruby3.3", "dotnet8"])
def test_runtime_missing_on_host_is_refused(client, runtime):
    with pytest.raises(client.exceptions.InvalidParameterValueException) as ei:
        client.create_function(FunctionName=unique_name("noruntime"), Runtime=runtime, Role=ROLE,
                               Handler="app.handler", Code={"ZipFile": make_zip({"app.rb": "x"})})
    code, message, status = _error(ei)
    assert runtime in message, message


def test_sync_payload_over_6mb_is_request_entity_too_large(client, py_fn):
    payload = json.dumps({"op": "echo", "value": "x" * (6 * 1024 * 1024)}).encode()
    # AWS answers with the error code RequestEntityTooLargeException, which botocore's model does
    # not name (it models RequestTooLargeException), so boto3 raises a plain ClientError.
    with pytest.raises(ClientError) as ei:
        client.invoke(FunctionName=py_fn, Payload=payload)
    code, message, status = _error(ei)
    assert code == "RequestEntityTooLargeException", (code, message)
    assert status == 413
    assert "6291456" in message, message


def test_async_payload_over_1mb_is_request_entity_too_large(client, py_fn):
    payload = json.dumps({"op": "echo", "value": "x" * (1024 * 1024 + 10)}).encode()
    with pytest.raises(ClientError) as ei:
        client.invoke(FunctionName=py_fn, Payload=payload, InvocationType="Event")
    code, message, status = _error(ei)
    assert code == "RequestEntityTooLargeException", (code, message)
    assert status == 413
    # AWS: "<n> byte payload is too large for the Event invocation type (limit 1048576 bytes)"
    assert "byte payload is too large for the Event invocation type (limit 1048576 bytes)" in message, message


def test_invalid_json_payload_is_invalid_request_content(client, py_fn):
    with pytest.raises(client.exceptions.InvalidRequestContentException) as ei:
        client.invoke(FunctionName=py_fn, Payload=b"{not json")
    assert _error(ei)[2] == 400


def test_every_response_carries_request_id(client, endpoint, create_fn):
    name = create_fn("reqid", {"app.py": HELLO_V1})
    responses = [
        client.get_function(FunctionName=name),
        client.get_function_configuration(FunctionName=name),
        client.list_functions(MaxItems=1),
        client.invoke(FunctionName=name),
        client.invoke(FunctionName=name, InvocationType="DryRun"),
        client.delete_function(FunctionName=name),
    ]
    ids = [request_id(r) for r in responses]
    assert all(ids), ids
    assert len(set(ids)) == len(ids), "request ids must be unique"
    for call in (lambda: client.get_function(FunctionName=name),
                 lambda: client.create_function(FunctionName=unique_name("x"), Runtime="python3.12", Role=ROLE,
                                                Handler="a.b", Code={"ZipFile": b"junk"})):
        with pytest.raises(ClientError) as ei:
            call()
        assert ei.value.response["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-requestid")
    # An unknown route still answers with a request id.
    try:
        urllib.request.urlopen(f"{endpoint}/2015-03-31/no-such-operation", timeout=5)
        raise AssertionError("unknown route answered 2xx")
    except urllib.error.HTTPError as e:
        assert 400 <= e.code < 500
        assert e.headers.get("x-amzn-RequestId")
