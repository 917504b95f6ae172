"""IAM and STS as stores: what SAM, Terraform and boto3 scripts call first."""

from __future__ import annotations

import json
import subprocess
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from support import aws_cli_env, aws_client

TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})


@pytest.fixture(scope="module")
def iam(server):
    return aws_client("iam", server.endpoint)


@pytest.fixture(scope="module")
def sts(server):
    return aws_client("sts", server.endpoint)


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_caller_identity_and_assume_role(server, iam, sts):
    me = sts.get_caller_identity()
    assert me["Arn"] == f"arn:aws:iam::{me['Account']}:root" and len(me["Account"]) == 12
    role = name("role")
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    assumed = sts.assume_role(RoleArn=arn, RoleSessionName="ci-run", DurationSeconds=900)
    creds = assumed["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and creds["SessionToken"]
    assert assumed["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{me['Account']}:assumed-role/{role}/ci-run"
    as_role = boto3.client("sts", endpoint_url=server.endpoint, region_name="us-east-1",
                           aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                           aws_session_token=creds["SessionToken"], config=Config(retries={"total_max_attempts": 1}))
    assert as_role.get_caller_identity()["Arn"] == assumed["AssumedRoleUser"]["Arn"]
    with pytest.raises(ClientError) as excinfo:
        sts.assume_role(RoleArn=arn, RoleSessionName="bad name!")
    assert excinfo.value.response["Error"]["Code"] == "ValidationError"
    assert sts.get_session_token()["Credentials"]["AccessKeyId"].startswith("ASIA")
    twelve = boto3.client("sts", endpoint_url=server.endpoint, region_name="us-east-1",
                          aws_access_key_id="000000000042", aws_secret_access_key="x")
    assert twelve.get_caller_identity()["Account"] == "000000000042"
    other = boto3.client("iam", endpoint_url=server.endpoint, region_name="us-east-1",
                         aws_access_key_id="000000000042", aws_secret_access_key="x")
    elsewhere = name("elsewhere")
    assert other.create_role(RoleName=elsewhere, AssumeRolePolicyDocument=TRUST)["Role"]["Arn"] == \
        f"arn:aws:iam::000000000042:role/{elsewhere}"
    iam.delete_role(RoleName=elsewhere)


def test_roles_policies_and_attachments(iam):
    role = name("lambda-role")
    created = iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST, Description="d",
                              Tags=[{"Key": "team", "Value": "data"}])["Role"]
    assert created["RoleId"].startswith("AROA")
    got = iam.get_role(RoleName=role)["Role"]
    assert got["AssumeRolePolicyDocument"] == json.loads(TRUST)
    assert got["Tags"] == [{"Key": "team", "Value": "data"}]
    with pytest.raises(iam.exceptions.EntityAlreadyExistsException):
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST)
    with pytest.raises(iam.exceptions.NoSuchEntityException) as excinfo:
        iam.get_role(RoleName="nope-" + role)
    assert "cannot be found" in excinfo.value.response["Error"]["Message"]
    with pytest.raises(iam.exceptions.MalformedPolicyDocumentException):
        iam.create_role(RoleName=name("bad"), AssumeRolePolicyDocument="{not json")

    basic = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    iam.attach_role_policy(RoleName=role, PolicyArn=basic)
    mine = iam.create_policy(PolicyName=name("p"), PolicyDocument=POLICY)["Policy"]
    iam.attach_role_policy(RoleName=role, PolicyArn=mine["Arn"])
    attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    assert {p["PolicyArn"] for p in attached} == {basic, mine["Arn"]}
    assert iam.get_policy(PolicyArn=mine["Arn"])["Policy"]["AttachmentCount"] == 1
    version = iam.get_policy_version(PolicyArn=mine["Arn"], VersionId="v1")["PolicyVersion"]
    assert version["Document"] == json.loads(POLICY)
    iam.put_role_policy(RoleName=role, PolicyName="inline", PolicyDocument=POLICY)
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["inline"]
    assert iam.get_role_policy(RoleName=role, PolicyName="inline")["PolicyDocument"] == json.loads(POLICY)

    with pytest.raises(iam.exceptions.DeleteConflictException):
        iam.delete_role(RoleName=role)
    iam.detach_role_policy(RoleName=role, PolicyArn=basic)
    iam.detach_role_policy(RoleName=role, PolicyArn=mine["Arn"])
    iam.delete_role_policy(RoleName=role, PolicyName="inline")
    iam.delete_policy(PolicyArn=mine["Arn"])
    iam.delete_role(RoleName=role)
    assert role not in [r["RoleName"] for r in iam.list_roles()["Roles"]]


def test_list_roles_pages(iam):
    prefix = f"/pages{uuid.uuid4().hex[:6]}/"
    roles = sorted(name("r") for _ in range(3))
    for role in roles:
        iam.create_role(RoleName=role, Path=prefix, AssumeRolePolicyDocument=TRUST)
    seen = []
    for page in iam.get_paginator("list_roles").paginate(PathPrefix=prefix, PaginationConfig={"PageSize": 2}):
        assert len(page["Roles"]) <= 2
        seen += [r["RoleName"] for r in page["Roles"]]
    assert seen == roles


def test_users_access_keys_and_instance_profiles(server, iam):
    user = name("user")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    assert key["AccessKeyId"].startswith("AKIA") and len(key["SecretAccessKey"]) == 40
    listed = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in listed] == [key["AccessKeyId"]]
    as_user = boto3.client("sts", endpoint_url=server.endpoint, region_name="us-east-1",
                           aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    assert as_user.get_caller_identity()["Arn"].endswith(f":user/{user}")
    with pytest.raises(iam.exceptions.DeleteConflictException):
        iam.delete_user(UserName=user)
    iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
    iam.delete_user(UserName=user)

    role, profile = name("ec2-role"), name("profile")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST)
    iam.create_instance_profile(InstanceProfileName=profile)
    iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
    got = iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]
    assert [r["RoleName"] for r in got["Roles"]] == [role]
    assert [p["InstanceProfileName"] for p in iam.list_instance_profiles_for_role(RoleName=role)["InstanceProfiles"]] == [profile]
    iam.remove_role_from_instance_profile(InstanceProfileName=profile, RoleName=role)
    iam.delete_instance_profile(InstanceProfileName=profile)


def test_groups(iam):
    group, user = name("group"), name("member")
    iam.create_group(GroupName=group)
    iam.create_user(UserName=user)
    iam.add_user_to_group(GroupName=group, UserName=user)
    got = iam.get_group(GroupName=group)
    assert got["Group"]["Arn"].endswith(f":group/{group}") and [u["UserName"] for u in got["Users"]] == [user]
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"]] == [group]
    iam.attach_group_policy(GroupName=group, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    assert [p["PolicyName"] for p in iam.list_attached_group_policies(GroupName=group)["AttachedPolicies"]] == ["ReadOnlyAccess"]
    with pytest.raises(iam.exceptions.DeleteConflictException):
        iam.delete_group(GroupName=group)
    iam.detach_group_policy(GroupName=group, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    iam.remove_user_from_group(GroupName=group, UserName=user)
    iam.delete_group(GroupName=group)
    iam.delete_user(UserName=user)


def test_unknown_action_is_named(iam):
    with pytest.raises(ClientError) as excinfo:
        iam.create_saml_provider(SAMLMetadataDocument="x" * 1000, Name="saml")
    assert excinfo.value.response["Error"]["Code"] == "InvalidAction"
    assert "CreateSAMLProvider" in excinfo.value.response["Error"]["Message"]


def test_aws_cli_sts_and_iam(server, tmp_path):
    env = aws_cli_env(server.endpoint, tmp_path)

    def aws(*args):
        proc = subprocess.run(["aws", *args], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout) if proc.stdout.strip() else {}

    assert aws("sts", "get-caller-identity")["Arn"].endswith(":root")
    role = name("cli-role")
    aws("iam", "create-role", "--role-name", role, "--assume-role-policy-document", TRUST)
    assert aws("iam", "get-role", "--role-name", role)["Role"]["RoleName"] == role
    aws("iam", "delete-role", "--role-name", role)


def test_policy_versions_tags_entities_and_summary(iam):
    arn = iam.create_policy(PolicyName=name("versions"), PolicyDocument=POLICY)["Policy"]["Arn"]
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=POLICY, SetAsDefault=True)
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v2"
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v1")
    iam.delete_policy_version(PolicyArn=arn, VersionId="v2")
    assert [v["VersionId"] for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]] == ["v1"]
    iam.tag_policy(PolicyArn=arn, Tags=[{"Key": "k", "Value": "v"}])
    assert iam.list_policy_tags(PolicyArn=arn)["Tags"] == [{"Key": "k", "Value": "v"}]
    role = name("entity")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST)
    iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    assert [r["RoleName"] for r in iam.list_entities_for_policy(PolicyArn=arn)["PolicyRoles"]] == [role]
    summary = iam.get_account_summary()["SummaryMap"]
    assert summary["Roles"] >= 1 and summary["UsersQuota"] == 5000
    iam.detach_role_policy(RoleName=role, PolicyArn=arn)
    iam.delete_role(RoleName=role)
    iam.delete_policy(PolicyArn=arn)
