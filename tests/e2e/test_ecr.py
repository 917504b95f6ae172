"""ECR and nimbus's registry: images built here (busybox-static, whiteouts, two platforms),
pushed and pulled back with skopeo over the OCI distribution API, read through the ecr API with
boto3 and the aws CLI, imported from a docker save tarball with `nimbus images import`, unpacked
into root file systems (hostile layers refused), and collected after deletion."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import botocore.exceptions
import pytest

from oci_images import Image, busybox_layer, docker_save, have_busybox, image_layout, index_of, layer, write_layout
from support import aws_cli_env, aws_client, unique_name, wait_until

SKOPEO = shutil.which("skopeo")
needs_skopeo = pytest.mark.skipif(not SKOPEO, reason="skopeo is not installed (apt-get install skopeo)")
needs_busybox = pytest.mark.skipif(not have_busybox(), reason="/bin/busybox missing (apt-get install busybox-static)")


def http(endpoint: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    request = urllib.request.Request(endpoint + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def skopeo(*args: str) -> str:
    done = subprocess.run(
        [SKOPEO, "--insecure-policy", *args], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def host(server) -> str:
    return server.endpoint.removeprefix("http://")


def unpack(server, reference: str, architecture: str = "x86_64"):
    query = urllib.parse.urlencode({"reference": reference, "architecture": architecture})
    status, _, body = http(server.endpoint, "POST", f"/_nimbus/images/unpack?{query}")
    return status, json.loads(body)


@pytest.fixture
def ecr(server):
    return aws_client("ecr", server.endpoint)


def repository(ecr) -> str:
    name = unique_name("img").lower()
    ecr.create_repository(repositoryName=name)
    return name


@needs_skopeo
@needs_busybox
def test_skopeo_pushes_a_busybox_image_that_runs_and_pulls_it_back(server, ecr, tmp_path):
    name = repository(ecr)
    image = Image([busybox_layer()], config={"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"], "WorkingDir": "/"})
    image_layout(tmp_path / "layout", image, "v1")
    skopeo("copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'layout'}:v1", f"docker://{host(server)}/{name}:v1")

    details = ecr.describe_images(repositoryName=name)["imageDetails"]
    assert [d["imageTags"] for d in details] == [["v1"]]
    assert details[0]["imageDigest"] == image.digest
    assert details[0]["imageSizeInBytes"] == len(image.layers[0])
    listed = subprocess.run(
        ["aws", "ecr", "list-images", "--repository-name", name, "--output", "json"],
        env=aws_cli_env(server.endpoint, tmp_path), capture_output=True, text=True, check=True,
    )
    assert json.loads(listed.stdout)["imageIds"] == [{"imageDigest": image.digest, "imageTag": "v1"}]

    skopeo("copy", "--src-tls-verify=false", f"docker://{host(server)}/{name}:v1", f"oci:{tmp_path / 'back'}:v1")
    index = json.loads((tmp_path / "back" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.digest
    inspected = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{host(server)}/{name}:v1"))
    assert inspected["Digest"] == image.digest

    uri = f"000000000000.dkr.ecr.us-east-1.localhost:{server.endpoint.rsplit(':', 1)[1]}/{name}:v1"
    status, root = unpack(server, uri)
    assert status == 200, root
    assert root["config"]["Entrypoint"] == ["/bin/sh", "-c"]
    assert root["resolved"].endswith(f"/{name}@{image.digest}")
    rootfs = Path(root["rootfs"])
    ran = subprocess.run([str(rootfs / "bin/busybox"), "cat", str(rootfs / "etc/os-release")], capture_output=True, text=True)
    assert ran.stdout == "ID=nimbus-test\n"
    if os.geteuid() == 0:
        inside = subprocess.run(["chroot", str(rootfs), "/bin/sh", "-c", "echo hi from $(cat /etc/os-release)"], capture_output=True, text=True)
        assert inside.stdout == "hi from ID=nimbus-test\n", inside.stderr
    else:
        print("skipped the chroot check: not root")


@needs_skopeo
def test_whiteouts_and_opaque_directories_apply_across_layers(server, ecr, tmp_path):
    name = repository(ecr)
    lower = layer([("dir", "etc"), ("file", "etc/keep", b"k"), ("file", "etc/gone", b"g"),
                   ("dir", "data"), ("file", "data/old", b"o")])
    upper = layer([("file", "etc/.wh.gone", b""), ("dir", "data"), ("file", "data/.wh..wh..opq", b""),
                   ("file", "data/new", b"n")])
    image = Image([lower, upper])
    image_layout(tmp_path / "layout", image, "layers")
    skopeo("copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'layout'}:layers", f"docker://{host(server)}/{name}:layers")
    status, root = unpack(server, f"{name}:layers")
    assert status == 200, root
    rootfs = Path(root["rootfs"])
    assert (rootfs / "etc/keep").read_bytes() == b"k"
    assert not (rootfs / "etc/gone").exists()
    assert sorted(os.listdir(rootfs / "data")) == ["new"]


@needs_skopeo
def test_a_multi_arch_index_gives_each_architecture_its_image(server, ecr, tmp_path):
    name = repository(ecr)
    amd = Image([layer([("file", "arch", b"amd64")])], architecture="amd64")
    arm = Image([layer([("file", "arch", b"arm64")])], architecture="arm64")
    data, blobs = index_of([amd, arm])
    from oci_images import OCI_INDEX, digest

    write_layout(tmp_path / "layout", [("multi", {"mediaType": OCI_INDEX, "digest": digest(data), "size": len(data)})], blobs)
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{tmp_path / 'layout'}:multi", f"docker://{host(server)}/{name}:multi")
    for architecture, expected in (("x86_64", b"amd64"), ("arm64", b"arm64")):
        status, root = unpack(server, f"{name}:multi", architecture)
        assert status == 200, root
        assert (Path(root["rootfs"]) / "arch").read_bytes() == expected
        assert root["architecture"] == architecture
    only_amd = repository(ecr)
    image_layout(tmp_path / "amd", amd, "x")
    skopeo("copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'amd'}:x", f"docker://{host(server)}/{only_amd}:x")
    status, error = unpack(server, f"{only_amd}:x", "arm64")
    assert status == 400
    assert error["message"] == f"CannotPullContainerError: image {only_amd}:x is built for linux/amd64, not linux/arm64"
    status, error = unpack(server, f"{only_amd}:missing")
    assert error["message"].startswith("CannotPullContainerError: pull image manifest has been retried")
    assert error["message"].endswith(f"{only_amd}:missing: not found")


def test_the_ecr_api_answers_as_aws(server, ecr, tmp_path):
    name = repository(ecr)
    with pytest.raises(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=name)
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException) as missing:
        ecr.describe_images(repositoryName="nimbus-no-such-repo")
    assert "The repository with name 'nimbus-no-such-repo' does not exist in the registry with id '000000000000'" in str(missing.value)
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.create_repository(repositoryName="Upper")
    described = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert described["repositoryArn"] == f"arn:aws:ecr:us-east-1:000000000000:repository/{name}"
    assert described["repositoryUri"].startswith("000000000000.dkr.ecr.us-east-1.localhost:")

    token = ecr.get_authorization_token()["authorizationData"][0]
    assert base64.b64decode(token["authorizationToken"]).decode().startswith("AWS:")
    assert token["proxyEndpoint"].startswith("http://000000000000.dkr.ecr.us-east-1.localhost:")

    with pytest.raises(ecr.exceptions.LifecyclePolicyNotFoundException):
        ecr.get_lifecycle_policy(repositoryName=name)
    policy = json.dumps({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}, "action": {"type": "expire"}}]})
    ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=policy)
    assert ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"] == policy
    ecr.delete_lifecycle_policy(repositoryName=name)
    with pytest.raises(ecr.exceptions.LifecyclePolicyNotFoundException):
        ecr.delete_lifecycle_policy(repositoryName=name)

    arn = described["repositoryArn"]
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": "team", "Value": "data"}])
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "team", "Value": "data"}]

    # Blobs by the distribution API (monolithic POST), the manifest by PutImage.
    image = Image([layer([("file", "hello", b"world")])])
    for d, data in image.blobs.items():
        if d != image.digest:
            status, _, body = http(server.endpoint, "POST", f"/v2/{name}/blobs/uploads/?digest={d}", data)
            assert status == 201, body
    with pytest.raises(ecr.exceptions.ImageNotFoundException):
        ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "v1"}])
    put = ecr.put_image(repositoryName=name, imageManifest=image.manifest.decode(), imageTag="v1")
    assert put["image"]["imageId"] == {"imageDigest": image.digest, "imageTag": "v1"}
    with pytest.raises(ecr.exceptions.ImageAlreadyExistsException):
        ecr.put_image(repositoryName=name, imageManifest=image.manifest.decode(), imageTag="v1")
    ecr.put_image(repositoryName=name, imageManifest=image.manifest.decode(), imageTag="v2")
    got = ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "v2"}, {"imageTag": "nope"}])
    assert got["images"][0]["imageManifest"] == image.manifest.decode()
    assert got["failures"][0]["failureCode"] == "ImageNotFound"
    missing_layer = image.manifest.decode().replace(image.blobs and next(d for d in image.blobs if d != image.digest), "sha256:" + "0" * 64)
    with pytest.raises(ecr.exceptions.LayersNotFoundException):
        ecr.put_image(repositoryName=name, imageManifest=missing_layer, imageTag="broken")
    with pytest.raises(ecr.exceptions.RepositoryNotEmptyException):
        ecr.delete_repository(repositoryName=name)
    deleted = ecr.batch_delete_image(repositoryName=name, imageIds=[{"imageTag": "v1"}])
    assert deleted["imageIds"] == [{"imageDigest": image.digest, "imageTag": "v1"}]
    assert ecr.list_images(repositoryName=name)["imageIds"] == [{"imageDigest": image.digest, "imageTag": "v2"}]
    ecr.delete_repository(repositoryName=name, force=True)
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_repositories(repositoryNames=[name])


def test_distribution_errors_have_the_specs_shape(server, ecr):
    name = repository(ecr)
    status, headers, body = http(server.endpoint, "GET", "/v2/")
    assert status == 200 and headers["Docker-Distribution-API-Version"] == "registry/2.0"
    zero = "sha256:" + "0" * 64
    for path, code, expected in (
        (f"/v2/{name}/blobs/{zero}", 404, "BLOB_UNKNOWN"),
        (f"/v2/{name}/manifests/nope", 404, "MANIFEST_UNKNOWN"),
        (f"/v2/nimbus-none/manifests/x", 404, "NAME_UNKNOWN"),
        (f"/v2/{name}/blobs/sha256:xyz", 400, "DIGEST_INVALID"),
    ):
        status, _, body = http(server.endpoint, "GET", path)
        assert status == code, body
        assert json.loads(body)["errors"][0]["code"] == expected
    status, _, body = http(server.endpoint, "PUT", f"/v2/{name}/manifests/v1", b'{"schemaVersion":2,"config":{"digest":"%s","size":1},"layers":[]}' % zero.encode(), {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert (status, json.loads(body)["errors"][0]["code"]) == (400, "MANIFEST_BLOB_UNKNOWN")
    assert http(server.endpoint, "GET", f"/v2/{name}/tags/list")[2] == json.dumps({"name": name, "tags": []}, separators=(",", ":")).encode()


def nimbus(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(server.binary), *args, "--endpoint", server.endpoint], capture_output=True, text=True, timeout=120)


def test_import_a_docker_save_tarball_and_list_it(server, tmp_path):
    name = unique_name("imported").lower()
    image = Image([layer([("dir", "app"), ("file", "app/run.sh", b"#!/bin/sh\necho ok\n", 0o755)])])
    tarball = tmp_path / "saved.tar"
    tarball.write_bytes(docker_save(image, f"docker.io/library/{name}:1.0"))
    done = nimbus(server, "images", "import", str(tarball))
    assert done.returncode == 0, done.stderr
    assert f"imported {name}:1.0" in done.stdout
    listed = json.loads(nimbus(server, "images", "--json").stdout)
    mine = [row for row in listed["images"] if row["repository"] == name]
    assert mine and mine[0]["tags"] == ["1.0"]
    status, root = unpack(server, f"{name}:1.0")
    assert (Path(root["rootfs"]) / "app/run.sh").read_bytes().startswith(b"#!/bin/sh")
    # An OCI layout directory, into a repository and tag of the caller's choosing.
    image_layout(tmp_path / "layout", image, "ignored")
    done = nimbus(server, "images", "import", str(tmp_path / "layout"), "--repository", f"{name}/oci", "--tag", "t")
    assert done.returncode == 0, done.stderr
    assert f"imported {name}/oci:t" in done.stdout


@pytest.mark.parametrize(
    "entries, reason",
    [
        ([("file", "/etc/passwd", b"x")], "is an absolute path"),
        ([("file", "../../escape", b"x")], "contains `..`"),
        ([("char", "dev/mem")], "is a device node"),
        ([("dir", "a"), ("symlink", "a/out", "../../../etc")], "leaves the image's root"),
        ([("hardlink", "shadow", "/etc/shadow")], "leaves the image's root"),
    ],
)
def test_hostile_layers_are_refused_with_the_reason(server, tmp_path, entries, reason):
    name = unique_name("hostile").lower()
    image = Image([layer(entries)])
    status, _, body = http(server.endpoint, "POST", f"/_nimbus/images/import?repository={name}&tag=bad", docker_save(image, f"{name}:bad"))
    assert status == 400, body
    error = json.loads(body)
    assert reason in error["message"], error
    assert not Path("/escape").exists()
    status, error = unpack(server, f"{name}:bad")
    assert error["message"].endswith("not found"), "the refused image is not kept"


def test_deleted_images_are_garbage_collected(server, ecr, tmp_path):
    name = unique_name("gc").lower()
    image = Image([layer([("file", "big", os.urandom(4096))])])
    tarball = tmp_path / "saved.tar"
    tarball.write_bytes(docker_save(image, f"{name}:v1"))
    assert nimbus(server, "images", "import", str(tarball)).returncode == 0
    listing = json.loads(http(server.endpoint, "GET", "/_nimbus/images")[2])
    status, root = unpack(server, f"{name}:v1")
    rootfs = Path(root["rootfs"])
    assert rootfs.name in listing["roots"]
    ecr.delete_repository(repositoryName=name, force=True)
    status, _, body = http(server.endpoint, "POST", "/_nimbus/images/gc?grace=0")
    report = json.loads(body)
    assert status == 200 and report["blobs"] >= 3, report
    # The deletion's own collection may have taken the root already.
    wait_until(lambda: not rootfs.exists(), what="the unreferenced root removed")
    assert rootfs.name not in json.loads(http(server.endpoint, "GET", "/_nimbus/images")[2])["roots"]


def test_images_and_an_unfinished_upload_survive_a_restart(server_factory):
    srv = server_factory()
    ecr = aws_client("ecr", srv.endpoint)
    name = repository(ecr)
    image = Image([layer([("file", "kept", b"across restarts")])])
    config_digest = json.loads(image.manifest)["config"]["digest"]
    layer_digest = json.loads(image.manifest)["layers"][0]["digest"]
    http(srv.endpoint, "POST", f"/v2/{name}/blobs/uploads/?digest={config_digest}", image.blobs[config_digest])
    http(srv.endpoint, "POST", f"/v2/{name}/blobs/uploads/?digest={layer_digest}", image.blobs[layer_digest])
    status, _, _ = http(srv.endpoint, "PUT", f"/v2/{name}/manifests/v1", image.manifest, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 201
    # A chunked upload left half done.
    _, headers, _ = http(srv.endpoint, "POST", f"/v2/{name}/blobs/uploads/")
    location = headers["Location"]
    half = os.urandom(1000)
    status, _, _ = http(srv.endpoint, "PATCH", location, half[:400], {"Content-Range": "0-399"})
    assert status == 202
    srv.stop()
    srv.start()
    status, headers, body = http(srv.endpoint, "GET", f"/v2/{name}/manifests/v1")
    assert (status, body, headers["Docker-Content-Digest"]) == (200, image.manifest, image.digest)
    assert http(srv.endpoint, "GET", f"/v2/{name}/blobs/{layer_digest}")[2] == image.blobs[layer_digest]
    status, _, _ = http(srv.endpoint, "PATCH", location, half[400:], {"Content-Range": "400-999"})
    assert status == 202
    status, _, body = http(srv.endpoint, "PUT", f"{location}?digest={digest_of(half)}")
    assert status == 201, body
    assert aws_client("ecr", srv.endpoint).describe_images(repositoryName=name)["imageDetails"][0]["imageTags"] == ["v1"]


def digest_of(data: bytes) -> str:
    from oci_images import digest

    return digest(data)


def test_ecrs_own_layer_upload_operations(server, ecr):
    name = repository(ecr)
    data = os.urandom(3000)
    d = digest_of(data)
    started = ecr.initiate_layer_upload(repositoryName=name)
    upload = started["uploadId"]
    assert started["partSize"] > 0
    with pytest.raises(ecr.exceptions.EmptyUploadException):
        ecr.complete_layer_upload(repositoryName=name, uploadId=upload, layerDigests=[d])
    ecr.upload_layer_part(repositoryName=name, uploadId=upload, partFirstByte=0, partLastByte=999, layerPartBlob=data[:1000])
    with pytest.raises(ecr.exceptions.InvalidLayerPartException):
        ecr.upload_layer_part(repositoryName=name, uploadId=upload, partFirstByte=500, partLastByte=1499, layerPartBlob=data[500:1500])
    part = ecr.upload_layer_part(repositoryName=name, uploadId=upload, partFirstByte=1000, partLastByte=2999, layerPartBlob=data[1000:])
    assert part["lastByteReceived"] == 2999
    with pytest.raises(ecr.exceptions.UploadNotFoundException):
        ecr.upload_layer_part(repositoryName=name, uploadId="nope", partFirstByte=0, partLastByte=0, layerPartBlob=b"x")
    done = ecr.complete_layer_upload(repositoryName=name, uploadId=upload, layerDigests=[d])
    assert done["layerDigest"] == d
    checked = ecr.batch_check_layer_availability(repositoryName=name, layerDigests=[d, "sha256:" + "1" * 64])
    assert checked["layers"] == [{"layerDigest": d, "layerAvailability": "AVAILABLE", "layerSize": 3000}]
    assert checked["failures"][0]["failureCode"] == "MissingLayerDigest"
    url = ecr.get_download_url_for_layer(repositoryName=name, layerDigest=d)["downloadUrl"]
    assert url.endswith(f"/v2/{name}/blobs/{d}")
    assert http(server.endpoint, "GET", f"/v2/{name}/blobs/{d}")[2] == data
    with pytest.raises(ecr.exceptions.LayersNotFoundException):
        ecr.get_download_url_for_layer(repositoryName=name, layerDigest="sha256:" + "1" * 64)
    assert ecr.put_image_tag_mutability(repositoryName=name, imageTagMutability="IMMUTABLE")["imageTagMutability"] == "IMMUTABLE"
    assert ecr.describe_repositories(repositoryNames=[name])["repositories"][0]["imageTagMutability"] == "IMMUTABLE"


def test_immutable_tags_cannot_move(server, ecr):
    name = unique_name("immutable").lower()
    ecr.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    first = Image([layer([("file", "a", b"1")])])
    second = Image([layer([("file", "a", b"2")])])
    for image in (first, second):
        for d, data in image.blobs.items():
            if d != image.digest:
                http(server.endpoint, "POST", f"/v2/{name}/blobs/uploads/?digest={d}", data)
    ecr.put_image(repositoryName=name, imageManifest=first.manifest.decode(), imageTag="v1")
    with pytest.raises(ecr.exceptions.ImageTagAlreadyExistsException) as error:
        ecr.put_image(repositoryName=name, imageManifest=second.manifest.decode(), imageTag="v1")
    assert f"The image tag 'v1' already exists in the '{name}' repository and cannot be overwritten because the repository is immutable." in str(error.value)
    status, _, body = http(server.endpoint, "PUT", f"/v2/{name}/manifests/v1", second.manifest, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert (status, json.loads(body)["errors"][0]["code"]) == (400, "TAG_INVALID")


@needs_skopeo
@pytest.mark.parametrize("transport", ["docker-archive", "oci-archive"])
def test_import_archives_skopeo_writes(server, tmp_path, transport):
    """The archive formats as real tools write them: skopeo's docker-archive (docker save's
    format) and oci-archive (podman save --format oci-archive's)."""
    name = unique_name(transport).lower()
    image = Image([layer([("file", "made-by", transport.encode())])])
    image_layout(tmp_path / "layout", image, "v1")
    archive = tmp_path / "archive.tar"
    reference = f"{name}:v1" if transport == "docker-archive" else "v1"
    skopeo("copy", f"oci:{tmp_path / 'layout'}:v1", f"{transport}:{archive}:{reference}")
    extra = [] if transport == "docker-archive" else ["--repository", name]
    done = nimbus(server, "images", "import", str(archive), *extra)
    assert done.returncode == 0, done.stderr
    assert f"imported {name}:v1" in done.stdout
    status, root = unpack(server, f"{name}:v1")
    assert status == 200, root
    assert (Path(root["rootfs"]) / "made-by").read_bytes() == transport.encode()
