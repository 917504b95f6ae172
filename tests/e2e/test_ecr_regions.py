"""ECR per region and account, end to end with boto3, the aws CLI and the registry's own API: a
repository lives in the region its creation was signed for and in the account its access key names
(twelve digits); a push reaches the repository of the region and account its registry host names
(`<account>.dkr.ecr.<region>.localhost:<port>`); a function of another account and region runs an
image of its own registry; a restart keeps another account's images; a CloudFormation stack makes
its repository in its region and account."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import time
import urllib.parse

import pytest
from botocore.exceptions import ClientError

import conftest
from oci_images import OCI_MANIFEST, Image, have_busybox, lambda_image, layer
from support import ROLE, aws_cli_env, regional_client, unique_name

ACCOUNT = "000000000000"
OTHER_ACCOUNT = "111122223333"

client = regional_client


def port(server) -> str:
    return server.endpoint.rsplit(":", 1)[1]


def registry(server, account: str, region: str) -> str:
    return f"{account}.dkr.ecr.{region}.localhost:{port(server)}"


def send(server, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    connection = http.client.HTTPConnection(urllib.parse.urlparse(server.endpoint).netloc, timeout=60)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def push(server, host: str | None, name: str, image: Image, tag: str) -> int:
    """Pushes `image` as `name:tag` to the registry addressed as `host` (None: nimbus's address);
    the manifest's status."""
    headers = {"Host": host} if host else {}
    for digest, data in image.blobs.items():
        if digest != image.digest:
            status, body = send(server, "POST", f"/v2/{name}/blobs/uploads/?digest={digest}", data, headers)
            if status != 201:
                return status
    status, _ = send(server, "PUT", f"/v2/{name}/manifests/{tag}", image.manifest,
                     {**headers, "Content-Type": OCI_MANIFEST})
    return status


def small_image(text: str) -> Image:
    return Image([layer([("file", "what", text.encode(), 0o644)])])


def test_repositories_live_per_region_and_pushes_reach_the_hosts_region(server):
    name = unique_name("regional").lower()
    images = {}
    for region in ("us-east-1", "us-west-2"):
        repo = client("ecr", server.endpoint, region).create_repository(repositoryName=name)["repository"]
        assert repo["repositoryUri"] == f"{registry(server, ACCOUNT, region)}/{name}"
        assert repo["repositoryArn"] == f"arn:aws:ecr:{region}:{ACCOUNT}:repository/{name}"
        images[region] = small_image(region)
        assert push(server, registry(server, ACCOUNT, region), name, images[region], "v1") == 201
    for region, image in images.items():
        details = client("ecr", server.endpoint, region).describe_images(repositoryName=name)["imageDetails"]
        assert [d["imageDigest"] for d in details] == [image.digest]
    only_west = unique_name("only-west").lower()
    client("ecr", server.endpoint, "us-west-2").create_repository(repositoryName=only_west)
    with pytest.raises(ClientError) as error:
        client("ecr", server.endpoint, "eu-west-1").describe_repositories(repositoryNames=[only_west])
    assert error.value.response["Error"]["Code"] == "RepositoryNotFoundException"
    # Nimbus's address names no region: a push there is `--region`'s, which has no such repository.
    assert push(server, None, only_west, small_image("x"), "v1") == 404


def test_an_accounts_repositories_are_its_own(server):
    name = unique_name("acct").lower()
    mine = client("ecr", server.endpoint, "us-east-1", key=OTHER_ACCOUNT)
    repo = mine.create_repository(repositoryName=name)["repository"]
    assert repo["registryId"] == OTHER_ACCOUNT
    assert repo["repositoryUri"] == f"{registry(server, OTHER_ACCOUNT, 'us-east-1')}/{name}"
    assert repo["repositoryArn"] == f"arn:aws:ecr:us-east-1:{OTHER_ACCOUNT}:repository/{name}"
    token = mine.get_authorization_token()["authorizationData"][0]
    assert token["proxyEndpoint"] == f"http://{registry(server, OTHER_ACCOUNT, 'us-east-1')}"
    with pytest.raises(ClientError) as error:
        client("ecr", server.endpoint, "us-east-1").describe_repositories(repositoryNames=[name])
    assert error.value.response["Error"]["Code"] == "RepositoryNotFoundException"
    image = small_image("other")
    assert push(server, registry(server, ACCOUNT, "us-east-1"), name, image, "v1") == 404
    assert push(server, registry(server, OTHER_ACCOUNT, "us-east-1"), name, image, "v1") == 201
    assert [d["imageDigest"] for d in mine.describe_images(repositoryName=name)["imageDetails"]] == [image.digest]


@pytest.mark.skipif(not have_busybox(), reason="/bin/busybox missing (apt-get install busybox-static)")
def test_a_function_of_another_account_and_region_runs_its_registrys_image(server):
    if server.health()["isolation"] == "process":
        pytest.skip("container image functions need namespaces (run as root)")
    name = unique_name("imgfn").lower()
    client("ecr", server.endpoint, "eu-west-1", key=OTHER_ACCOUNT).create_repository(repositoryName=name)
    host = registry(server, OTHER_ACCOUNT, "eu-west-1")
    assert push(server, host, name, lambda_image(), "v1") == 201
    lam = client("lambda", server.endpoint, "eu-west-1", key=OTHER_ACCOUNT)
    created = lam.create_function(FunctionName=name, PackageType="Image", Code={"ImageUri": f"{host}/{name}:v1"},
                                  Role=ROLE)
    assert created["FunctionArn"] == f"arn:aws:lambda:eu-west-1:{OTHER_ACCOUNT}:function:{name}"
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    answer = lam.invoke(FunctionName=name, Payload=json.dumps({"n": 2}))
    body = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, body
    assert body["args"] == "from-image" and body["event"] == {"n": 2}
    # The same repository name in the default account holds nothing: that URI is not found.
    home = client("lambda", server.endpoint, "eu-west-1")
    with pytest.raises(ClientError) as error:
        home.create_function(FunctionName=name, PackageType="Image", Role=ROLE,
                             Code={"ImageUri": f"{registry(server, ACCOUNT, 'eu-west-1')}/{name}:v1"})
    assert error.value.response["Error"]["Code"] == "InvalidParameterValueException"


def test_another_accounts_images_survive_a_restart(server_factory):
    srv = server_factory()
    name = unique_name("kept").lower()
    client("ecr", srv.endpoint, "ap-south-1", key=OTHER_ACCOUNT).create_repository(repositoryName=name)
    image = small_image("kept")
    assert push(srv, registry(srv, OTHER_ACCOUNT, "ap-south-1"), name, image, "v1") == 201
    srv.kill()
    srv.start()
    details = client("ecr", srv.endpoint, "ap-south-1", key=OTHER_ACCOUNT).describe_images(repositoryName=name)
    assert [d["imageDigest"] for d in details["imageDetails"]] == [image.digest]
    status, manifest = send(srv, "GET", f"/v2/{name}/manifests/v1",
                            headers={"Host": registry(srv, OTHER_ACCOUNT, "ap-south-1"), "Accept": OCI_MANIFEST})
    assert (status, manifest) == (200, image.manifest)
    if not conftest.TEST_DATABASE:
        assert (srv.data_dir / "us-east-1" / OTHER_ACCOUNT / "images" / "images.db").exists()


def test_stack_makes_its_repository_in_its_region_and_account(server):
    name = unique_name("stack-repo").lower()
    template = {
        "Resources": {"Repo": {"Type": "AWS::ECR::Repository", "Properties": {"RepositoryName": name}}},
        "Outputs": {"Uri": {"Value": {"Fn::GetAtt": ["Repo", "RepositoryUri"]}},
                    "Arn": {"Value": {"Fn::GetAtt": ["Repo", "Arn"]}}},
    }
    cfn = client("cloudformation", server.endpoint, "eu-west-1", key=OTHER_ACCOUNT)
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template))
    deadline = time.time() + 60
    while (stack := cfn.describe_stacks(StackName=name)["Stacks"][0])["StackStatus"].endswith("IN_PROGRESS"):
        assert time.time() < deadline, stack
        time.sleep(0.2)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs == {"Uri": f"{registry(server, OTHER_ACCOUNT, 'eu-west-1')}/{name}",
                       "Arn": f"arn:aws:ecr:eu-west-1:{OTHER_ACCOUNT}:repository/{name}"}
    assert client("ecr", server.endpoint, "eu-west-1", key=OTHER_ACCOUNT).describe_repositories(
        repositoryNames=[name])["repositories"]
    for region, key in (("us-east-1", OTHER_ACCOUNT), ("eu-west-1", "test")):
        with pytest.raises(ClientError) as error:
            client("ecr", server.endpoint, region, key=key).describe_repositories(repositoryNames=[name])
        assert error.value.response["Error"]["Code"] == "RepositoryNotFoundException"


@pytest.mark.skipif(shutil.which("aws") is None, reason="no aws CLI")
def test_aws_cli_lists_the_repositories_of_the_region_it_names(server, tmp_path):
    name = unique_name("cli").lower()
    client("ecr", server.endpoint, "ca-central-1").create_repository(repositoryName=name)
    env = aws_cli_env(server.endpoint, tmp_path)
    listed = lambda region: subprocess.run(
        ["aws", "--output", "json", "--region", region, "ecr", "describe-repositories"],
        env=env, capture_output=True, text=True, timeout=60)
    north, east = listed("ca-central-1"), listed("us-east-1")
    assert north.returncode == 0 and east.returncode == 0, north.stderr + east.stderr
    assert name in [r["repositoryName"] for r in json.loads(north.stdout)["repositories"]]
    assert name not in [r["repositoryName"] for r in json.loads(east.stdout)["repositories"]]
