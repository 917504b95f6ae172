"""Lambda functions from container images (`PackageType: Image`): a busybox image whose
entrypoint speaks the Runtime API with wget, imported into nimbus's registry, run in its own
root inside the sandbox; GetFunction's ImageUri and ResolvedImageUri; AWS's errors for a
missing image and an architecture the image lacks; the image's User."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request

import pytest

from oci_images import Image, busybox_layer, docker_save, have_busybox, lambda_image, layer
from support import ROLE, aws_client, unique_name

needs_busybox = pytest.mark.skipif(not have_busybox(), reason="/bin/busybox missing (apt-get install busybox-static)")


def import_image(server, name: str, image, tag: str = "v1") -> str:
    """Imports `image` as `name:v1`; returns the digest nimbus stored it under (a docker save
    archive becomes an OCI manifest of its own)."""
    request = urllib.request.Request(
        f"{server.endpoint}/_nimbus/images/import?repository={name}&tag={tag}",
        data=docker_save(image, f"{name}:{tag}"),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
        return json.loads(response.read())["imported"][0]["digest"]


def image_uri(server, name: str) -> str:
    return f"000000000000.dkr.ecr.us-east-1.localhost:{server.endpoint.rsplit(':', 1)[1]}/{name}:v1"


@needs_busybox
def test_a_function_from_an_image_answers_invokes(server):
    if server.health()["isolation"] == "process":
        pytest.skip("container image functions need namespaces (run as root)")
    lam = aws_client("lambda", server.endpoint)
    name = unique_name("imgfn").lower()
    image = lambda_image()
    digest = import_image(server, name, image)
    uri = image_uri(server, name)
    created = lam.create_function(
        FunctionName=name, PackageType="Image", Code={"ImageUri": uri}, Role=ROLE,
        ImageConfig={"Command": ["from-config"]},
    )
    assert created["PackageType"] == "Image"
    assert "Runtime" not in created and "Handler" not in created
    assert created["CodeSha256"] == digest.split(":")[1]
    assert created["ImageConfigResponse"] == {"ImageConfig": {"Command": ["from-config"]}}
    got = lam.get_function(FunctionName=name)
    assert got["Code"]["RepositoryType"] == "ECR"
    assert got["Code"]["ImageUri"] == uri
    assert got["Code"]["ResolvedImageUri"] == uri.rsplit(":", 1)[0] + "@" + digest
    listed = subprocess.run([str(server.binary), "functions", "--json", "--endpoint", server.endpoint],
                            capture_output=True, text=True, check=True)
    assert [f["runtime"] for f in json.loads(listed.stdout)["functions"] if f["name"] == name] == ["image"]
    answer = lam.invoke(FunctionName=name, Payload=json.dumps({"n": 1}))
    body = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, body
    assert body == {"args": "from-config", "cwd": "/app", "event": {"n": 1}}
    published = lam.publish_version(FunctionName=name)["Version"]

    # A new image by UpdateFunctionCode: new digest, new environments; the version keeps the old.
    newer = lambda_image(cmd=["second-image"])
    newer_digest = import_image(server, name, newer, tag="v2")
    updated = lam.update_function_code(FunctionName=name, ImageUri=uri.replace(":v1", ":v2"))
    assert updated["CodeSha256"] == newer_digest.split(":")[1]
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    body = json.loads(lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())
    assert body["args"] == "from-config", "ImageConfig overrides stay with the function"
    # Without overrides the image's own Cmd runs.
    cleared = lam.update_function_configuration(FunctionName=name, ImageConfig={})
    assert "ImageConfigResponse" not in cleared
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    body = json.loads(lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())
    assert body["args"] == "second-image"
    old = json.loads(lam.invoke(FunctionName=name, Qualifier=published, Payload=b"{}")["Payload"].read())
    assert old["args"] == "from-config"
    assert lam.get_function(FunctionName=name, Qualifier=published)["Code"]["ResolvedImageUri"].endswith(digest)


@needs_busybox
def test_missing_images_and_architectures_answer_as_aws(server):
    lam = aws_client("lambda", server.endpoint)
    name = unique_name("imgerr").lower()
    import_image(server, name, lambda_image("amd64"))
    missing = image_uri(server, name).replace(":v1", ":nope")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as error:
        lam.create_function(FunctionName=name, PackageType="Image", Code={"ImageUri": missing}, Role=ROLE)
    assert f"Source image {missing} does not exist. Provide a valid source image." in str(error.value)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as error:
        lam.create_function(
            FunctionName=name, PackageType="Image", Code={"ImageUri": image_uri(server, name)}, Role=ROLE,
            Architectures=["arm64"],
        )
    assert "is not supported" in str(error.value) and "linux/arm64" in str(error.value)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as error:
        lam.create_function(FunctionName=name, PackageType="Image", Code={"ZipFile": b"x"}, Role=ROLE)
    assert "Please provide ImageUri" in str(error.value)


# Answers each event with the uid and gid it runs as.
WHOAMI = b"""#!/bin/sh
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
while true; do
  wget -q -S -O /tmp/event "$api/invocation/next" 2> /tmp/headers
  id=$(grep -i 'Lambda-Runtime-Aws-Request-Id' /tmp/headers | tr -d '\\r' | awk '{print $2}')
  wget -q -O /dev/null --post-data "\\"$(/bin/busybox id -u):$(/bin/busybox id -g)\\"" "$api/invocation/$id/response"
done
"""


@needs_busybox
def test_the_images_user_runs_the_function(server):
    if not server.health()["isolation"].startswith("namespaces") or os.geteuid() != 0:
        pytest.skip("the image's User applies in the sandbox of a root nimbus")
    lam = aws_client("lambda", server.endpoint)
    app = layer([("dir", "app"), ("file", "app/bootstrap", WHOAMI, 0o755),
                 ("file", "etc/passwd", b"root:x:0:0::/root:/bin/sh\napp:x:1234:1235::/app:/bin/sh\n"),
                 ("file", "etc/group", b"root:x:0:\nstaff:x:50:\n")])
    for user, expected in (("app", "1234:1235"), ("app:staff", "1234:50"), ("", "993:990")):
        config = {"Entrypoint": ["/bin/sh", "/app/bootstrap"], "Env": ["PATH=/bin"], "User": user}
        name = unique_name("imguser").lower()
        import_image(server, name, Image([busybox_layer(), app], config=config))
        lam.create_function(FunctionName=name, PackageType="Image", Code={"ImageUri": image_uri(server, name)}, Role=ROLE)
        answer = lam.invoke(FunctionName=name, Payload=b"{}")
        assert json.loads(answer["Payload"].read()) == expected, user
    name = unique_name("imguser").lower()
    config = {"Entrypoint": ["/bin/sh", "/app/bootstrap"], "Env": ["PATH=/bin"], "User": "nobody-here"}
    import_image(server, name, Image([busybox_layer(), app], config=config))
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as error:
        lam.create_function(FunctionName=name, PackageType="Image", Code={"ImageUri": image_uri(server, name)}, Role=ROLE)
    assert "unable to find user nobody-here: no matching entries in passwd file" in str(error.value)
