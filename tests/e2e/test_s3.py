"""S3 end to end: boto3 and the aws CLI against nimbus's S3 on the shared port.

Also runs against the crate alone: `cargo build -p nimbus-s3 --example s3_serve` then
`NIMBUS_BIN=target/debug/examples/s3_serve python3 -m pytest tests/e2e/test_s3.py`
(tests that need SQS are skipped there).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
import base64

import boto3
import pytest
from botocore.exceptions import ClientError

from support import aws_client


def s3_client(endpoint: str, style: str = "path", **config):
    return aws_client("s3", endpoint, s3={"addressing_style": style}, **config)


@pytest.fixture(scope="module")
def s3(server):
    return s3_client(server.endpoint)


@pytest.fixture
def bucket(s3):
    name = f"b-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def code_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


# ---------------------------------------------------------------------------
# Buckets
# ---------------------------------------------------------------------------


def test_bucket_lifecycle(s3):
    name = f"life-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    head = s3.head_bucket(Bucket=name)
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "us-east-1"
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-id-2"]
    with pytest.raises(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=name)
    assert code_of(e) == "BucketNotEmpty"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert code_of(e) == "404"
    with pytest.raises(s3.exceptions.NoSuchBucket):
        s3.list_objects_v2(Bucket=name)


@pytest.mark.parametrize("name", ["ab", "UPPER-case", "a..b", "192.168.0.1", "-dash", "x" * 64])
def test_invalid_bucket_names(s3, name):
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name)
    assert code_of(e) == "InvalidBucketName"


def test_location_constraint(s3):
    name = f"loc-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None


# ---------------------------------------------------------------------------
# Objects
# ---------------------------------------------------------------------------


def test_put_get_head_with_metadata(s3, bucket):
    body = b"hello world"
    put = s3.put_object(Bucket=bucket, Key="dir/a b+c.txt", Body=body, ContentType="text/plain",
                        Metadata={"Owner": "me"}, CacheControl="max-age=60")
    etag = f'"{hashlib.md5(body).hexdigest()}"'
    assert put["ETag"] == etag
    got = s3.get_object(Bucket=bucket, Key="dir/a b+c.txt")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"owner": "me"}
    assert got["ETag"] == etag
    assert got["CacheControl"] == "max-age=60"
    head = s3.head_object(Bucket=bucket, Key="dir/a b+c.txt")
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == etag


def test_default_content_type_and_empty_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["Body"].read() == b""
    assert got["ContentType"] == "binary/octet-stream"
    assert got["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'


def test_checksums_boto3_sends_are_verified_and_returned(s3, bucket):
    body = b"checksummed"
    put = s3.put_object(Bucket=bucket, Key="c", Body=body, ChecksumAlgorithm="CRC32")
    expected = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert put["ChecksumCRC32"] == expected
    got = s3.get_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert got["Body"].read() == body
    assert got["ChecksumCRC32"] == expected
    # A wrong checksum is refused.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad", Body=body, ChecksumCRC32="AAAAAA==")
    assert code_of(e) == "BadDigest"
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket, Key="bad")


def test_aws_chunked_unsigned_trailer_upload(server, s3, bucket):
    """The body current SDKs stream over HTTPS: aws-chunked with a CRC32 trailer."""
    data = b"0123456789" * 1000
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    chunks = [data[:4096], data[4096:]]
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    body += b"0\r\nx-amz-checksum-crc32:" + crc.encode() + b"\r\n\r\n"
    host = server.endpoint.removeprefix("http://")
    conn = http.client.HTTPConnection(host)
    conn.request("PUT", f"/{bucket}/chunked", body=body, headers={
        "Content-Encoding": "aws-chunked",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-sdk-checksum-algorithm": "CRC32",
        "Authorization": "AWS4-HMAC-SHA256 Credential=x/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
    })
    response = conn.getresponse()
    response.read()
    assert response.status == 200, response.status
    assert response.getheader("x-amz-checksum-crc32") == crc
    got = s3.get_object(Bucket=bucket, Key="chunked")
    assert got["Body"].read() == data
    assert got.get("ContentEncoding") in (None, "")


def test_range_requests(s3, bucket):
    s3.put_object(Bucket=bucket, Key="r", Body=b"0123456789")
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=2-5")
    assert got["Body"].read() == b"2345"
    assert got["ContentRange"] == "bytes 2-5/10"
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-3")["Body"].read() == b"789"
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=7-")["Body"].read() == b"789"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=20-30")
    assert code_of(e) == "InvalidRange"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_missing_objects(s3, bucket):
    with pytest.raises(s3.exceptions.NoSuchKey) as e:
        s3.get_object(Bucket=bucket, Key="nope")
    assert e.value.response["Error"]["Key"] == "nope"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="nope")
    assert code_of(e) == "404"
    with pytest.raises(s3.exceptions.NoSuchBucket):
        s3.get_object(Bucket=f"missing-{uuid.uuid4().hex[:8]}", Key="k")


def test_conditional_get(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"v1")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"other"')
    assert code_of(e) == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"v1"


def test_delete_and_delete_objects(s3, bucket):
    for key in ["a", "b", "c"]:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert s3.delete_object(Bucket=bucket, Key="a")["ResponseMetadata"]["HTTPStatusCode"] == 204
    s3.delete_object(Bucket=bucket, Key="never-existed")
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "b"}, {"Key": "c"}, {"Key": "zz"}]})
    assert sorted(d["Key"] for d in result["Deleted"]) == ["b", "c", "zz"]
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "x"}], "Quiet": True})
    assert "Deleted" not in quiet


def test_copy_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"data", ContentType="text/csv", Metadata={"a": "1"})
    copied = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"data").hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == b"data"
    assert got["Metadata"] == {"a": "1"}
    assert got["ContentType"] == "text/csv"
    s3.copy_object(Bucket=bucket, Key="dst2", CopySource=f"{bucket}/src", MetadataDirective="REPLACE",
                   Metadata={"b": "2"}, ContentType="text/plain")
    got = s3.head_object(Bucket=bucket, Key="dst2")
    assert got["Metadata"] == {"b": "2"}
    assert got["ContentType"] == "text/plain"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert code_of(e) == "InvalidRequest"
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "missing"})


# ---------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------


def test_list_objects_v2(s3, bucket):
    keys = ["a.txt", "dir/one", "dir/sub/two", "dir/three", "key with space", "plus+key", "z/1", "z/2"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    listed = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == sorted(keys)
    assert listed["KeyCount"] == len(keys)
    assert listed["Contents"][0]["ETag"] == f'"{hashlib.md5(b"x").hexdigest()}"'
    assert listed["Contents"][0]["Size"] == 1

    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["a.txt", "key with space", "plus+key"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["dir/", "z/"]

    sub = s3.list_objects_v2(Bucket=bucket, Prefix="dir/", Delimiter="/")
    assert [o["Key"] for o in sub["Contents"]] == ["dir/one", "dir/three"]
    assert [p["Prefix"] for p in sub["CommonPrefixes"]] == ["dir/sub/"]

    after = s3.list_objects_v2(Bucket=bucket, StartAfter="dir/three")
    assert [o["Key"] for o in after["Contents"]][0] == "key with space"

    seen, token = [], None
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=bucket, MaxKeys=3, **kwargs)
        seen += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == sorted(keys)

    # Paging through common prefixes never repeats one.
    entries = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 1}):
        entries += [o["Key"] for o in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    assert sorted(entries) == ["a.txt", "dir/", "key with space", "plus+key", "z/"]


def test_list_objects_v1(s3, bucket):
    for key in ["a", "b/1", "b/2", "c"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    listed = s3.list_objects(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in listed["Contents"]] == ["a", "c"]
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["b/"]
    keys = []
    for page in s3.get_paginator("list_objects").paginate(Bucket=bucket, PaginationConfig={"PageSize": 1}):
        keys += [o["Key"] for o in page.get("Contents", [])]
    assert keys == ["a", "b/1", "b/2", "c"]


# ---------------------------------------------------------------------------
# Multipart
# ---------------------------------------------------------------------------


def test_multipart_upload(s3, bucket):
    part1 = os.urandom(5 * 1024 * 1024)
    part2 = b"tail"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ContentType="application/x-test", Metadata={"m": "1"})
    uid = upload["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=part1)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=2, Body=part2)["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts] == [(1, e1, len(part1)), (2, e2, 4)]
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [u["UploadId"] for u in uploads] == [uid]
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket, Key="mp")
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    digests = hashlib.md5(part1).digest() + hashlib.md5(part2).digest()
    expected = f'"{hashlib.md5(digests).hexdigest()}-2"'
    assert done["ETag"] == expected
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["Body"].read() == part1 + part2
    assert got["ETag"] == expected
    assert got["ContentType"] == "application/x-test"
    assert got["Metadata"] == {"m": "1"}
    with pytest.raises(s3.exceptions.NoSuchUpload):
        s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)


def test_multipart_errors_and_abort(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="m", UploadId=uid, PartNumber=1, Body=b"small")["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="m", UploadId=uid, PartNumber=2, Body=b"small")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert code_of(e) == "EntityTooSmall"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": '"0000"'}]})
    assert code_of(e) == "InvalidPart"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
    assert code_of(e) == "InvalidPartOrder"
    s3.abort_multipart_upload(Bucket=bucket, Key="m", UploadId=uid)
    with pytest.raises(s3.exceptions.NoSuchUpload):
        s3.abort_multipart_upload(Bucket=bucket, Key="m", UploadId=uid)
    with pytest.raises(s3.exceptions.NoSuchUpload):
        s3.upload_part(Bucket=bucket, Key="m", UploadId="nope", PartNumber=1, Body=b"x")


def aws(server, *args, check=True):
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": server.endpoint}
    proc = subprocess.run(["aws", *args], env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, f"aws {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc


def test_aws_cli_20mb_multipart_and_listing(server, s3, tmp_path):
    name = f"cli-{uuid.uuid4().hex[:10]}"
    aws(server, "s3", "mb", f"s3://{name}")
    big = tmp_path / "big.bin"
    data = os.urandom(20 * 1024 * 1024)
    big.write_bytes(data)
    aws(server, "s3", "cp", "--only-show-errors", str(big), f"s3://{name}/data/big file.bin")
    head = s3.head_object(Bucket=name, Key="data/big file.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-3"'), head["ETag"]  # 8 MiB chunks: 8 + 8 + 4
    listing = aws(server, "s3", "ls", "--recursive", f"s3://{name}").stdout
    assert "data/big file.bin" in listing and str(len(data)) in listing
    back = tmp_path / "back.bin"
    aws(server, "s3", "cp", "--only-show-errors", f"s3://{name}/data/big file.bin", str(back))
    assert back.read_bytes() == data
    aws(server, "s3", "cp", "--only-show-errors", f"s3://{name}/data/big file.bin", f"s3://{name}/copy.bin")
    assert s3.head_object(Bucket=name, Key="copy.bin")["ContentLength"] == len(data)
    head = json.loads(aws(server, "s3api", "head-object", "--bucket", name, "--key", "copy.bin").stdout)
    assert head["ContentLength"] == len(data)
    missing = aws(server, "s3api", "get-object", "--bucket", name, "--key", "nope", str(tmp_path / "x"), check=False)
    assert missing.returncode != 0 and "NoSuchKey" in missing.stderr
    aws(server, "s3", "rm", "--only-show-errors", "--recursive", f"s3://{name}")
    aws(server, "s3", "rb", f"s3://{name}")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


# ---------------------------------------------------------------------------
# Presigned URLs and virtual hosts
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("signature", ["s3v4", "s3"])
def test_presigned_get_and_put(server, bucket, signature):
    s3 = s3_client(server.endpoint, signature_version=signature)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pre signed"}, ExpiresIn=60)
    request = urllib.request.Request(put_url, data=b"via presigned put", method="PUT")
    with urllib.request.urlopen(request) as r:
        assert r.status == 200
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre signed"}, ExpiresIn=60)
    with urllib.request.urlopen(get_url) as r:
        assert r.read() == b"via presigned put"


def test_expired_presigned_url_is_refused(server, bucket):
    s3 = s3_client(server.endpoint, signature_version="s3v4")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=1)
    time.sleep(2.1)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url)
    assert e.value.code == 403


def test_virtual_host_addressing(server, s3, bucket):
    port = server.port
    s3.put_object(Bucket=bucket, Key="v/key.txt", Body=b"virtual")
    # `*.localhost` resolves to loopback with glibc; the Host header is what nimbus reads either way.
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", "/v/key.txt", headers={"Host": f"{bucket}.localhost:{port}"})
    r = conn.getresponse()
    assert (r.status, r.read()) == (200, b"virtual")
    conn.request("GET", "/?list-type=2", headers={"Host": f"{bucket}.s3.localhost:{port}"})
    r = conn.getresponse()
    assert r.status == 200 and b"<Key>v/key.txt</Key>" in r.read()
    virtual = s3_client(f"http://s3.localhost:{port}", style="virtual")
    try:
        virtual.put_object(Bucket=bucket, Key="from-virtual", Body=b"v2")
    except Exception as e:  # no *.localhost resolution on this host
        pytest.skip(f"*.localhost does not resolve here (apt-get install libnss-myhostname): {e}")
    assert s3.get_object(Bucket=bucket, Key="from-virtual")["Body"].read() == b"v2"


def test_query_protocol_requests_are_not_claimed_by_s3(server):
    request = urllib.request.Request(server.endpoint + "/", data=b"Action=NoSuchAction&Version=2012-11-05",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request)
    assert b"<ListAllMyBucketsResult" not in e.value.read()


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def raw(server, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection(server.endpoint.removeprefix("http://"))
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.read()


@pytest.mark.parametrize("method,path", [("POST", "/{b}?delete"), ("PUT", "/{b}?notification"),
                                         ("POST", "/{b}/k?uploadId={u}")])
def test_malformed_xml(server, s3, bucket, method, path):
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    status, body = raw(server, method, path.format(b=bucket, u=upload), b"<Delete><Object><Key>x</Key>")
    assert status == 400
    assert b"<Code>MalformedXML</Code>" in body


def test_error_shape_has_request_id(server, bucket):
    status, body = raw(server, "GET", f"/{bucket}/missing")
    assert status == 404
    assert b"<Code>NoSuchKey</Code>" in body and b"<Key>missing</Key>" in body and b"<RequestId>" in body


# ---------------------------------------------------------------------------
# Notifications
# ---------------------------------------------------------------------------


def test_notification_configuration_round_trip(s3, bucket):
    config = {
        "QueueConfigurations": [{
            "Id": "to-queue",
            "QueueArn": "arn:aws:sqs:us-east-1:000000000000:some-queue",
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}, {"Name": "suffix", "Value": ".csv"}]}},
        }],
        "LambdaFunctionConfigurations": [{
            "Id": "to-function",
            "LambdaFunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:f",
            "Events": ["s3:ObjectRemoved:Delete", "s3:ObjectCreated:Copy"],
        }],
    }
    # The queue and the function do not exist: AWS refuses them unless asked not to check.
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config,
                                             SkipDestinationValidation=True)
    got = s3.get_bucket_notification_configuration(Bucket=bucket)
    queue = got["QueueConfigurations"][0]
    assert queue["Id"] == "to-queue"
    assert queue["QueueArn"] == config["QueueConfigurations"][0]["QueueArn"]
    assert queue["Events"] == ["s3:ObjectCreated:*"]
    rules = {r["Name"].lower(): r["Value"] for r in queue["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": "in/", "suffix": ".csv"}
    function = got["LambdaFunctionConfigurations"][0]
    assert function["LambdaFunctionArn"].endswith(":function:f")
    assert function["Events"] == ["s3:ObjectRemoved:Delete", "s3:ObjectCreated:Copy"]
    with pytest.raises(ClientError) as e:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": "arn:aws:sqs:us-east-1:000000000000:q", "Events": ["s3:Nope"]}]})
    assert code_of(e) == "InvalidArgument"
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    assert "QueueConfigurations" not in s3.get_bucket_notification_configuration(Bucket=bucket)


def _sqs(server):
    sqs = boto3.client("sqs", endpoint_url=server.endpoint, region_name="us-east-1",
                       aws_access_key_id="x", aws_secret_access_key="x")
    try:
        sqs.list_queues()
    except Exception as e:
        pytest.skip(f"SQS is not served here: {e}")
    return sqs


def _receive(sqs, url, want, timeout=10.0):
    messages, deadline = [], time.monotonic() + timeout
    while len(messages) < want and time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        messages += [json.loads(m["Body"]) for m in got]
    return messages


def test_notifications_to_a_queue_carry_aws_records(server, s3, bucket):
    sqs = _sqs(server)
    queue = f"s3-events-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [{
        "Id": "cfg", "QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}]}}}]})
    test_event = _receive(sqs, url, 1)[0]
    assert test_event["Event"] == "s3:TestEvent" and test_event["Bucket"] == bucket

    put = s3.put_object(Bucket=bucket, Key="in/Happy Face=1.jpg", Body=b"12345")
    s3.put_object(Bucket=bucket, Key="out/ignored.jpg", Body=b"x")
    s3.copy_object(Bucket=bucket, Key="in/copy.jpg", CopySource={"Bucket": bucket, "Key": "in/Happy Face=1.jpg"})
    s3.delete_object(Bucket=bucket, Key="in/copy.jpg")
    records = [m["Records"][0] for m in _receive(sqs, url, 3)]
    assert [r["eventName"] for r in records] == ["ObjectCreated:Put", "ObjectCreated:Copy", "ObjectRemoved:Delete"]
    record = records[0]
    assert record["eventVersion"] == "2.1"
    assert record["eventSource"] == "aws:s3"
    assert record["awsRegion"] == "us-east-1"
    assert record["eventTime"].endswith("Z")
    assert record["userIdentity"]["principalId"]
    assert record["requestParameters"]["sourceIPAddress"]
    assert record["responseElements"]["x-amz-request-id"] == put["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    assert record["responseElements"]["x-amz-id-2"] == put["ResponseMetadata"]["HTTPHeaders"]["x-amz-id-2"]
    s3_part = record["s3"]
    assert s3_part["s3SchemaVersion"] == "1.0"
    assert s3_part["configurationId"] == "cfg"
    assert s3_part["bucket"] == {"name": bucket, "ownerIdentity": s3_part["bucket"]["ownerIdentity"],
                                 "arn": f"arn:aws:s3:::{bucket}"}
    assert s3_part["object"]["key"] == "in/Happy+Face%3D1.jpg"
    assert urllib.parse.unquote_plus(s3_part["object"]["key"]) == "in/Happy Face=1.jpg"
    assert s3_part["object"]["size"] == 5
    assert s3_part["object"]["eTag"] == hashlib.md5(b"12345").hexdigest()
    sequencers = [r["s3"]["object"]["sequencer"] for r in records]
    assert all(int(s, 16) for s in sequencers)
    assert "size" not in records[2]["s3"]["object"]
    assert records[1]["s3"]["object"]["sequencer"] < records[2]["s3"]["object"]["sequencer"]


# ---------------------------------------------------------------------------
# Durability
# ---------------------------------------------------------------------------


def test_restart_keeps_buckets_objects_uploads_and_configuration(server_factory):
    srv = server_factory()
    s3 = s3_client(srv.endpoint)
    s3.create_bucket(Bucket="durable")
    s3.put_object(Bucket="durable", Key="k", Body=b"survives", Metadata={"x": "y"})
    uid = s3.create_multipart_upload(Bucket="durable", Key="mp")["UploadId"]
    etag = s3.upload_part(Bucket="durable", Key="mp", UploadId=uid, PartNumber=1, Body=b"part")["ETag"]
    s3.put_bucket_notification_configuration(Bucket="durable", SkipDestinationValidation=True,
                                             NotificationConfiguration={"LambdaFunctionConfigurations": [{
                                                 "LambdaFunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:f",
                                                 "Events": ["s3:ObjectCreated:*"]}]})
    srv.kill()  # no graceful shutdown: what was acknowledged must be on disk
    srv.start()
    s3 = s3_client(srv.endpoint)
    got = s3.get_object(Bucket="durable", Key="k")
    assert got["Body"].read() == b"survives" and got["Metadata"] == {"x": "y"}
    assert [p["ETag"] for p in s3.list_parts(Bucket="durable", Key="mp", UploadId=uid)["Parts"]] == [etag]
    s3.complete_multipart_upload(Bucket="durable", Key="mp", UploadId=uid,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object(Bucket="durable", Key="mp")["Body"].read() == b"part"
    config = s3.get_bucket_notification_configuration(Bucket="durable")
    assert len(config["LambdaFunctionConfigurations"]) == 1
