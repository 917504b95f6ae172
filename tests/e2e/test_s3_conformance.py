"""S3 sub-resources end to end: versioning and ListObjectVersions (the cleanup every tool runs),
tagging, ACLs, policies, encryption, CORS, lifecycle, public access block, ownership controls,
object lock, website, GetObjectAttributes, storage classes and conditional writes."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import urllib.error
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

from support import aws_cli_env, aws_client


@pytest.fixture(scope="module")
def s3(server):
    return aws_client("s3", server.endpoint, s3={"addressing_style": "path"})


@pytest.fixture
def bucket(s3):
    name = f"c-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def code_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def empty_and_delete(s3, bucket: str) -> None:
    """What cleanup helpers do: list versions and markers, delete them all, delete the bucket."""
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket):
        doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", [])]
        doomed += [{"Key": m["Key"], "VersionId": m["VersionId"]} for m in page.get("DeleteMarkers", [])]
        if doomed:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed})
    s3.delete_bucket(Bucket=bucket)


def test_versioning_keeps_versions_and_delete_markers(s3, bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    assert v1 != v2 and v1 != "null"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    old = s3.get_object(Bucket=bucket, Key="k", VersionId=v1)
    assert old["Body"].read() == b"one" and old["VersionId"] == v1

    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="k")
    assert code_of(excinfo) == "NoSuchKey"
    assert excinfo.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0

    listing = s3.list_object_versions(Bucket=bucket)
    assert [(v["VersionId"], v["IsLatest"]) for v in listing["Versions"]] == [(v2, False), (v1, False)]
    assert [(m["VersionId"], m["IsLatest"]) for m in listing["DeleteMarkers"]] == [(marker, True)]

    # Deleting the marker by id brings v2 back.
    s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="k", VersionId="0" * 32)
    assert code_of(excinfo) == "NoSuchVersion"
    with pytest.raises(ClientError) as excinfo:
        s3.delete_bucket(Bucket=bucket)
    assert code_of(excinfo) == "BucketNotEmpty"
    empty_and_delete(s3, bucket)


def test_list_object_versions_pages_and_cleanup_helper_works(s3, bucket):
    s3.put_object(Bucket=bucket, Key="before", Body=b"x")  # the null version
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for key in ["a", "b", "dir/c"]:
        for body in [b"1", b"2"]:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
    s3.delete_object(Bucket=bucket, Key="a")
    seen = []
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, PaginationConfig={"PageSize": 2})
    for page in pages:
        assert len(page.get("Versions", [])) + len(page.get("DeleteMarkers", [])) <= 2
        seen += [(v["Key"], v["VersionId"]) for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
    assert len(seen) == len(set(seen)) == 8
    assert ("before", "null") in seen
    grouped = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert grouped["CommonPrefixes"] == [{"Prefix": "dir/"}]
    empty_and_delete(s3, bucket)
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_suspended_versioning_replaces_the_null_version(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    kept = s3.put_object(Bucket=bucket, Key="k", Body=b"kept")["VersionId"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.put_object(Bucket=bucket, Key="k", Body=b"n1")["VersionId"] == "null"
    s3.put_object(Bucket=bucket, Key="k", Body=b"n2")
    ids = [v["VersionId"] for v in s3.list_object_versions(Bucket=bucket)["Versions"]]
    assert ids == ["null", kept]
    empty_and_delete(s3, bucket)


def test_unversioned_bucket_lists_null_versions(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    listing = s3.list_object_versions(Bucket=bucket)
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in listing["Versions"]] == [("k", "null", True)]
    empty_and_delete(s3, bucket)


def test_object_tagging_on_put_and_subresource(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="team=data&env=dev%20x")
    assert s3.head_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "2"
    tags = s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"team": "data", "env": "dev x"}
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": "a", "Value": "1"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == [{"Key": "a", "Value": "1"}]
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    with pytest.raises(ClientError) as excinfo:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": f"k{i}", "Value": ""} for i in range(11)]})
    assert code_of(excinfo) == "BadRequest"
    with pytest.raises(ClientError) as excinfo:
        s3.get_object_tagging(Bucket=bucket, Key="missing")
    assert code_of(excinfo) == "NoSuchKey"


def test_bucket_tagging_policy_and_acl(s3, bucket):
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_tagging(Bucket=bucket)
    assert code_of(excinfo) == "NoSuchTagSet"
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "owner", "Value": "me"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "owner", "Value": "me"}]
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.get_bucket_tagging(Bucket=bucket)

    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                                      "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_policy(Bucket=bucket)
    assert code_of(excinfo) == "NoSuchBucketPolicy"
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == policy
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    with pytest.raises(ClientError) as excinfo:
        s3.put_bucket_policy(Bucket=bucket, Policy="not json")
    assert code_of(excinfo) == "MalformedPolicy"
    s3.delete_bucket_policy(Bucket=bucket)

    acl = s3.get_bucket_acl(Bucket=bucket)
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
    assert acl["Grants"][0]["Grantee"]["ID"] == acl["Owner"]["ID"]
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    grants = s3.get_bucket_acl(Bucket=bucket)["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("AllUsers") and g["Permission"] == "READ" for g in grants)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="authenticated-read")
    grants = s3.get_object_acl(Bucket=bucket, Key="k")["Grants"]
    assert [g["Permission"] for g in grants] == ["FULL_CONTROL", "READ"]
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="everyone")
    assert code_of(excinfo) == "InvalidArgument"


def test_encryption_defaults_and_sse_headers(s3, bucket):
    default = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert default["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.put_object(Bucket=bucket, Key="plain", Body=b"x")["ServerSideEncryption"] == "AES256"
    kms = s3.put_object(Bucket=bucket, Key="kms", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId="my-key")
    assert (kms["ServerSideEncryption"], kms["SSEKMSKeyId"]) == ("aws:kms", "my-key")
    assert s3.head_object(Bucket=bucket, Key="kms")["SSEKMSKeyId"] == "my-key"
    rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "bucket-key"}}
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [rule]})
    assert s3.put_object(Bucket=bucket, Key="d", Body=b"x")["SSEKMSKeyId"] == "bucket-key"
    key = b"k" * 32
    sse_c = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key.decode()}
    put = s3.put_object(Bucket=bucket, Key="c", Body=b"x", **sse_c)
    assert put["SSECustomerKeyMD5"] == base64.b64encode(hashlib.md5(key).digest()).decode()
    assert s3.get_object(Bucket=bucket, Key="c", **sse_c)["Body"].read() == b"x"
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="c")
    assert code_of(excinfo) == "InvalidRequest"
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="c", SSECustomerAlgorithm="AES256", SSECustomerKey="o" * 32)
    assert code_of(excinfo) == "AccessDenied"
    s3.delete_bucket_encryption(Bucket=bucket)
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="rot13")
    assert code_of(excinfo) == "InvalidArgument"


def test_cors_stored_and_preflight_answered(s3, bucket, server):
    url = f"{server.endpoint}/{bucket}/k"
    preflight = urllib.request.Request(url, method="OPTIONS", headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT"})
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(preflight)
    assert excinfo.value.code == 403
    rules = [{"AllowedOrigins": ["https://*.example.com"], "AllowedMethods": ["GET", "PUT"],
              "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600}]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == rules
    with urllib.request.urlopen(preflight) as reply:
        assert reply.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert "PUT" in reply.headers["Access-Control-Allow-Methods"]
        assert reply.headers["Access-Control-Max-Age"] == "600"
    denied = urllib.request.Request(url, method="OPTIONS", headers={
        "Origin": "https://evil.test", "Access-Control-Request-Method": "PUT"})
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(denied)
    assert excinfo.value.code == 403
    s3.delete_bucket_cors(Bucket=bucket)
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_cors(Bucket=bucket)
    assert code_of(excinfo) == "NoSuchCORSConfiguration"


def test_bucket_configurations_round_trip(s3, bucket):
    lifecycle = {"Rules": [{"ID": "expire", "Status": "Enabled", "Filter": {"Prefix": "tmp/"},
                            "Expiration": {"Days": 1}}]}
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=lifecycle)
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == lifecycle["Rules"]
    s3.delete_bucket_lifecycle(Bucket=bucket)
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert code_of(excinfo) == "NoSuchLifecycleConfiguration"

    with pytest.raises(ClientError) as excinfo:
        s3.get_public_access_block(Bucket=bucket)
    assert code_of(excinfo) == "NoSuchPublicAccessBlockConfiguration"
    block = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": False, "RestrictPublicBuckets": False}
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=block)
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == block

    owner = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert owner == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]})
    assert s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"][0]["ObjectOwnership"] == "ObjectWriter"

    website = {"IndexDocument": {"Suffix": "index.html"}, "ErrorDocument": {"Key": "error.html"}}
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration=website)
    got = s3.get_bucket_website(Bucket=bucket)
    assert got["IndexDocument"] == website["IndexDocument"] and got["ErrorDocument"] == website["ErrorDocument"]
    s3.put_object(Bucket=bucket, Key="old", Body=b"", WebsiteRedirectLocation="/new")
    assert s3.head_object(Bucket=bucket, Key="old")["WebsiteRedirectLocation"] == "/new"
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=bucket)
    assert s3.get_bucket_request_payment(Bucket=bucket)["Payer"] == "BucketOwner"


def test_object_lock_retention_blocks_version_deletes(s3):
    bucket = f"lock-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    config = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert config["ObjectLockEnabled"] == "Enabled"
    version = s3.put_object(Bucket=bucket, Key="k", Body=b"x")["VersionId"]
    s3.put_object_retention(Bucket=bucket, Key="k", VersionId=version,
                            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": "2099-01-01T00:00:00Z"})
    assert s3.get_object_retention(Bucket=bucket, Key="k")["Retention"]["Mode"] == "GOVERNANCE"
    with pytest.raises(ClientError) as excinfo:
        s3.delete_object(Bucket=bucket, Key="k", VersionId=version)
    assert code_of(excinfo) == "AccessDenied"
    s3.put_object_legal_hold(Bucket=bucket, Key="k", LegalHold={"Status": "ON"})
    assert s3.get_object_legal_hold(Bucket=bucket, Key="k")["LegalHold"]["Status"] == "ON"
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=bucket, Key="k", VersionId=version, BypassGovernanceRetention=True)
    s3.put_object_legal_hold(Bucket=bucket, Key="k", LegalHold={"Status": "OFF"})
    # A delete without a version id only adds a marker, which object lock allows.
    assert s3.delete_object(Bucket=bucket, Key="k")["DeleteMarker"] is True
    s3.delete_object(Bucket=bucket, Key="k", VersionId=version, BypassGovernanceRetention=True)

    plain = f"nolock-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=plain)
    s3.put_object(Bucket=plain, Key="k", Body=b"x")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object_legal_hold(Bucket=plain, Key="k", LegalHold={"Status": "ON"})
    assert code_of(excinfo) == "InvalidRequest"


def test_attributes_storage_class_and_restore(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"hello", StorageClass="STANDARD_IA", ChecksumAlgorithm="SHA256")
    attrs = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ETag", "StorageClass", "ObjectSize", "Checksum"])
    assert attrs["ETag"] == hashlib.md5(b"hello").hexdigest()
    assert (attrs["StorageClass"], attrs["ObjectSize"]) == ("STANDARD_IA", 5)
    assert attrs["Checksum"]["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(b"hello").digest()).decode()
    assert s3.head_object(Bucket=bucket, Key="k")["StorageClass"] == "STANDARD_IA"
    assert s3.list_objects_v2(Bucket=bucket)["Contents"][0]["StorageClass"] == "STANDARD_IA"
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"x", StorageClass="COLD")
    assert code_of(excinfo) == "InvalidStorageClass"
    with pytest.raises(ClientError) as excinfo:
        s3.restore_object(Bucket=bucket, Key="k", RestoreRequest={"Days": 1})
    assert code_of(excinfo) == "InvalidObjectState"
    s3.put_object(Bucket=bucket, Key="cold", Body=b"x", StorageClass="GLACIER")
    assert s3.restore_object(Bucket=bucket, Key="cold", RestoreRequest={"Days": 1})["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert 'ongoing-request="false"' in s3.head_object(Bucket=bucket, Key="cold")["Restore"]


def test_conditional_writes(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"1", IfNoneMatch="*")["ETag"]
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"2", IfNoneMatch="*")
    assert code_of(excinfo) == "PreconditionFailed"
    s3.put_object(Bucket=bucket, Key="k", Body=b"2", IfMatch=etag)
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"3", IfMatch=etag)
    assert code_of(excinfo) == "PreconditionFailed"


def test_aws_cli_versioning_and_tagging(s3, bucket, tmp_path, server):
    env = aws_cli_env(server.endpoint, tmp_path)

    def aws(*args):
        proc = subprocess.run(["aws", "s3api", *args], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout) if proc.stdout.strip() else {}

    aws("put-bucket-versioning", "--bucket", bucket, "--versioning-configuration", "Status=Enabled")
    assert aws("get-bucket-versioning", "--bucket", bucket)["Status"] == "Enabled"
    s3.put_object(Bucket=bucket, Key="k", Body=b"1")
    s3.put_object(Bucket=bucket, Key="k", Body=b"2")
    assert len(aws("list-object-versions", "--bucket", bucket)["Versions"]) == 2
    aws("put-bucket-tagging", "--bucket", bucket, "--tagging", "TagSet=[{Key=a,Value=b}]")
    assert aws("get-bucket-tagging", "--bucket", bucket)["TagSet"] == [{"Key": "a", "Value": "b"}]
    empty_and_delete(s3, bucket)


def test_lifecycle_expiration_follows_the_clock(server_factory):
    import time
    server = server_factory(extra_args=["--clock", "virtual"])
    s3 = aws_client("s3", server.endpoint, s3={"addressing_style": "path"})
    bucket = f"life-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    rules = [{"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}}]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    s3.put_object(Bucket=bucket, Key="tmp/a", Body=b"x")
    s3.put_object(Bucket=bucket, Key="keep/b", Body=b"x")
    versioned = f"life-v-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=versioned)
    s3.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})
    rules = [{"ID": "old", "Status": "Enabled", "Filter": {}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
              "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]
    s3.put_bucket_lifecycle_configuration(Bucket=versioned, LifecycleConfiguration={"Rules": rules})
    s3.put_object(Bucket=versioned, Key="k", Body=b"old")
    latest = s3.put_object(Bucket=versioned, Key="k", Body=b"new")["VersionId"]
    s3.create_multipart_upload(Bucket=versioned, Key="abandoned")
    advance = urllib.request.Request(f"{server.endpoint}/_nimbus/clock/advance?seconds=90000", method="POST")
    urllib.request.urlopen(advance).read()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        if keys == ["keep/b"]:
            break
        time.sleep(0.1)
    assert keys == ["keep/b"]
    while time.monotonic() < deadline:
        versions = [v["VersionId"] for v in s3.list_object_versions(Bucket=versioned).get("Versions", [])]
        uploads = s3.list_multipart_uploads(Bucket=versioned).get("Uploads", [])
        if versions == [latest] and not uploads:
            break
        time.sleep(0.1)
    assert (versions, uploads) == ([latest], [])


def test_buckets_live_in_the_region_asked_for(server, s3):
    eu = aws_client("s3", server.endpoint, s3={"addressing_style": "path"})
    name = f"eu-{uuid.uuid4().hex[:10]}"
    eu.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-central-1"
    head = s3.head_bucket(Bucket=name)
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "eu-central-1"
    assert {"Name": name, "BucketRegion": "eu-central-1"}.items() <= next(
        b for b in s3.list_buckets()["Buckets"] if b["Name"] == name).items()
    with pytest.raises(ClientError) as excinfo:
        s3.create_bucket(Bucket=f"bad-{uuid.uuid4().hex[:8]}", CreateBucketConfiguration={"LocationConstraint": "moon"})
    assert code_of(excinfo) == "InvalidLocationConstraint"
    with pytest.raises(ClientError) as excinfo:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    assert code_of(excinfo) == "BucketAlreadyOwnedByYou"


def test_list_buckets_prefix_and_pages(s3):
    tag = uuid.uuid4().hex[:8]
    names = sorted(f"lb-{tag}-{i}" for i in range(3))
    for name in names:
        s3.create_bucket(Bucket=name)
    assert [b["Name"] for b in s3.list_buckets(Prefix=f"lb-{tag}")["Buckets"]] == names
    first = s3.list_buckets(Prefix=f"lb-{tag}", MaxBuckets=2)
    assert [b["Name"] for b in first["Buckets"]] == names[:2]
    rest = s3.list_buckets(Prefix=f"lb-{tag}", MaxBuckets=2, ContinuationToken=first["ContinuationToken"])
    assert [b["Name"] for b in rest["Buckets"]] == names[2:] and "ContinuationToken" not in rest


def test_complete_multipart_upload_twice_answers_the_same(s3, bucket):
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="big", UploadId=upload, PartNumber=1, Body=b"x" * 10)["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    done = s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=upload, MultipartUpload=parts)
    again = s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=upload, MultipartUpload=parts)
    assert again["ETag"] == done["ETag"]
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(Bucket=bucket, Key="other", UploadId=upload, MultipartUpload=parts)
    assert code_of(excinfo) == "NoSuchUpload"


def _post_form(url: str, fields: dict, file: bytes, filename: str = "photo.png"):
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f'Content-Type: image/png\r\n\r\n'.encode() + file + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    return urllib.request.urlopen(request)


def test_browser_post_upload_with_a_presigned_policy(s3, bucket):
    post = s3.generate_presigned_post(bucket, "uploads/${filename}", Fields={"success_action_status": "201"},
                                      Conditions=[["starts-with", "$key", "uploads/"], {"success_action_status": "201"},
                                                  ["content-length-range", 1, 100]], ExpiresIn=300)
    with _post_form(post["url"], post["fields"], b"png bytes") as reply:
        assert reply.status == 201
        assert b"<Key>uploads/photo.png</Key>" in reply.read()
    got = s3.get_object(Bucket=bucket, Key="uploads/photo.png")
    assert got["Body"].read() == b"png bytes" and got["ContentType"] == "image/png"
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        _post_form(post["url"], post["fields"], b"x" * 200)
    assert excinfo.value.code == 400 and b"EntityTooLarge" in excinfo.value.read()
    fields = dict(post["fields"], key="elsewhere/a")
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        _post_form(post["url"], fields, b"x")
    assert excinfo.value.code == 403 and b"Policy Condition failed" in excinfo.value.read()


def test_inventory_and_metrics_configurations_by_id(s3, bucket):
    inventory = {"Id": "weekly", "IsEnabled": True, "IncludedObjectVersions": "Current",
                 "Destination": {"S3BucketDestination": {"Bucket": f"arn:aws:s3:::{bucket}", "Format": "CSV"}},
                 "Schedule": {"Frequency": "Weekly"}}
    s3.put_bucket_inventory_configuration(Bucket=bucket, Id="weekly", InventoryConfiguration=inventory)
    assert s3.get_bucket_inventory_configuration(Bucket=bucket, Id="weekly")["InventoryConfiguration"] == inventory
    listed = s3.list_bucket_inventory_configurations(Bucket=bucket)["InventoryConfigurationList"]
    assert [c["Id"] for c in listed] == ["weekly"]
    s3.put_bucket_metrics_configuration(Bucket=bucket, Id="all", MetricsConfiguration={"Id": "all"})
    assert s3.get_bucket_metrics_configuration(Bucket=bucket, Id="all")["MetricsConfiguration"] == {"Id": "all"}
    s3.delete_bucket_inventory_configuration(Bucket=bucket, Id="weekly")
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_inventory_configuration(Bucket=bucket, Id="weekly")
    assert code_of(excinfo) == "NoSuchConfiguration"
    replication = {"Role": "arn:aws:iam::000000000000:role/r", "Rules": [
        {"ID": "r1", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": ""},
         "DeleteMarkerReplication": {"Status": "Disabled"},
         "Destination": {"Bucket": "arn:aws:s3:::elsewhere"}}]}
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_replication(Bucket=bucket, ReplicationConfiguration=replication)
    assert s3.get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]["Rules"][0]["ID"] == "r1"


def test_url_encoded_listings_write_spaces_as_percent_20(s3, bucket, server):
    s3.put_object(Bucket=bucket, Key="a b+c", Body=b"x")
    with urllib.request.urlopen(f"{server.endpoint}/{bucket}?list-type=2&encoding-type=url") as reply:
        assert b"<Key>a%20b%2Bc</Key>" in reply.read()
    assert s3.list_objects_v2(Bucket=bucket)["Contents"][0]["Key"] == "a b+c"
    assert s3.list_object_versions(Bucket=bucket)["Versions"][0]["Key"] == "a b+c"


def test_expected_bucket_owner_is_checked(s3, bucket):
    account = aws_client("sts", s3.meta.endpoint_url).get_caller_identity()["Account"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ExpectedBucketOwner=account)
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="k", ExpectedBucketOwner="111122223333")
    assert code_of(excinfo) == "AccessDenied"
