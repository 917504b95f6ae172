"""Images pulled from other registries: a second nimbus started here is the other registry (its
`/v2/` on another port, spoken to in plain HTTP as a registry on this machine), alone and behind
a tiny token server that answers `401` with a `Bearer` challenge, as Docker Hub does. The
pulled image is cached (a tag resolved again only by `nimbus images pull`), a multi-arch index
fetches each platform when it is first run, and Batch jobs and Lambda functions run pulled
images; missing images fail with AWS's words. No test touches the network."""

from __future__ import annotations

import http.server
import io
import json
import subprocess
import tarfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from batch_support import batch, batch_server, finished, log_lines, make_env, make_queue, until  # noqa: F401
from oci_images import OCI_INDEX, Image, busybox_layer, digest, docker_save, have_busybox, index_of, lambda_image, layer
from support import ROLE, aws_client, unique_name

needs_busybox = pytest.mark.skipif(not have_busybox(), reason="/bin/busybox missing (apt-get install busybox-static)")


def post(endpoint: str, path: str, body: bytes = b""):
    request = urllib.request.Request(endpoint + path, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def put_image(source, name: str, image: Image, tag: str = "v1") -> None:
    """Stores `image` as `name:tag` in the other registry."""
    status, answer = post(source.endpoint, f"/_nimbus/images/import?repository={name}&tag={tag}",
                          docker_save(image, f"{name}:{tag}"))
    assert status == 200, answer


def put_layout(source, name: str, tag: str, descriptor: dict, blobs: dict[str, bytes]) -> None:
    """Stores an OCI layout (as a tar) holding `descriptor` as `name:tag` in the other registry."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
                 "index.json": json.dumps({"schemaVersion": 2, "manifests": [
                     {**descriptor, "annotations": {"org.opencontainers.image.ref.name": tag}}]}).encode()}
        files.update({f"blobs/sha256/{d.split(':')[1]}": data for d, data in blobs.items()})
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    status, answer = post(source.endpoint, f"/_nimbus/images/import?repository={name}&tag={tag}", out.getvalue())
    assert status == 200, answer


def unpack(server, reference: str, architecture: str = "x86_64"):
    query = urllib.parse.urlencode({"reference": reference, "architecture": architecture})
    return post(server.endpoint, f"/_nimbus/images/unpack?{query}")


@pytest.fixture(scope="module")
def source(server_factory):
    """The other registry: a nimbus of its own."""
    return server_factory()


def host(server) -> str:
    return server.endpoint.removeprefix("http://")


class TokenRegistry:
    """A registry that wants a token: `/token?service=&scope=` hands one out, `/v2/…` answers
    `401` with a Bearer challenge without it and passes requests with it to `upstream`."""

    def __init__(self, upstream: str):
        self.token = uuid.uuid4().hex
        self.scopes: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status: int, body: bytes, headers: dict[str, str]):
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                if url.path == "/token":
                    query = urllib.parse.parse_qs(url.query)
                    outer.scopes.append(f"{query.get('service', ['-'])[0]} {query.get('scope', ['-'])[0]}")
                    return self.reply(200, json.dumps({"token": outer.token}).encode(), {"Content-Type": "application/json"})
                if self.headers.get("Authorization") != f"Bearer {outer.token}":
                    name = url.path.removeprefix("/v2/").rsplit("/", 2)[0]
                    realm = f"http://127.0.0.1:{outer.port}/token"
                    challenge = f'Bearer realm="{realm}",service="test-registry",scope="repository:{name}:pull"'
                    return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                                      {"WWW-Authenticate": challenge, "Content-Type": "application/json"})
                request = urllib.request.Request(upstream + self.path, headers={"Accept": self.headers.get("Accept", "*/*")})
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, body, headers = response.status, response.read(), response.headers
                except urllib.error.HTTPError as error:
                    status, body, headers = error.code, error.read(), error.headers
                self.reply(status, body, {k: v for k, v in headers.items()
                                          if k.lower() in ("content-type", "docker-content-digest")})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@needs_busybox
def test_an_image_of_another_registry_is_pulled_once_and_cached(server, source):
    name = unique_name("pulled").lower()
    first = Image([busybox_layer(), layer([("file", "version", b"one")])], config={"Cmd": ["sh"], "Env": ["PATH=/bin"]})
    put_image(source, name, first)
    reference = f"{host(source)}/{name}:v1"
    status, root = unpack(server, reference)
    assert status == 200, root
    stored = root["digest"]
    assert root["resolved"] == f"{host(source)}/{name}@{stored}"
    assert (Path(root["rootfs"]) / "version").read_bytes() == b"one"
    assert (Path(root["rootfs"]) / "bin/busybox").is_file()

    # The tag moves in the other registry: the cached image is used until `nimbus images pull`.
    put_image(source, name, Image([busybox_layer(), layer([("file", "version", b"two")])]))
    status, root = unpack(server, reference)
    assert (status, root["digest"]) == (200, stored)
    pulled = subprocess.run([str(server.binary), "images", "pull", reference, "--endpoint", server.endpoint],
                            capture_output=True, text=True, timeout=120)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.startswith(f"pulled {host(source)}/{name}@sha256:")
    status, root = unpack(server, reference)
    assert status == 200 and root["digest"] != stored
    assert (Path(root["rootfs"]) / "version").read_bytes() == b"two"
    # `nimbus images` lists pulled images by their registry's name; ECR does not.
    with urllib.request.urlopen(f"{server.endpoint}/_nimbus/images", timeout=30) as response:
        listed = [row for row in json.loads(response.read())["images"] if row["uri"] == f"{host(source)}/{name}"]
    assert sorted(row["digest"] for row in listed) == sorted([stored, root["digest"]])
    repositories = aws_client("ecr", server.endpoint).describe_repositories()["repositories"]
    assert not [r for r in repositories if name in r["repositoryName"]]
    # By digest, the first image is still in the cache.
    status, root = unpack(server, f"{host(source)}/{name}@{stored}")
    assert (status, (Path(root["rootfs"]) / "version").read_bytes()) == (200, b"one")


def test_a_multi_arch_index_fetches_each_platform_when_first_run(server, source):
    name = unique_name("pulledmulti").lower()
    amd = Image([layer([("file", "arch", b"amd64")])], architecture="amd64")
    arm = Image([layer([("file", "arch", b"arm64")])], architecture="arm64")
    data, blobs = index_of([amd, arm])
    put_layout(source, name, "multi", {"mediaType": OCI_INDEX, "digest": digest(data), "size": len(data)}, blobs)
    for architecture, expected, image in (("arm64", b"arm64", arm), ("x86_64", b"amd64", amd)):
        status, root = unpack(server, f"{host(source)}/{name}:multi", architecture)
        assert status == 200, root
        assert (Path(root["rootfs"]) / "arch").read_bytes() == expected
        assert (root["architecture"], root["digest"]) == (architecture, image.digest)
        assert root["resolved"] == f"{host(source)}/{name}@{digest(data)}"


def test_missing_images_and_unreachable_registries_cannot_be_pulled(server, source):
    name = unique_name("nothere").lower()
    reference = f"{host(source)}/{name}:v1"
    status, error = unpack(server, reference)
    assert status == 400
    assert error["message"] == (f"CannotPullContainerError: pull image manifest has been retried 1 time(s): "
                                f"failed to resolve ref {reference}: {reference}: not found")
    status, error = unpack(server, f"127.0.0.1:9/{name}:v1")  # the discard port: nothing listens
    assert status == 400
    assert error["message"].startswith(f"CannotPullContainerError: pull image manifest has been retried 1 time(s): "
                                       f"failed to resolve ref 127.0.0.1:9/{name}:v1: failed to do request: ")


def test_a_registry_that_asks_for_a_token_gets_an_anonymous_one(server, source):
    name = unique_name("tokened").lower()
    image = Image([layer([("file", "hello", b"through a token")])])
    put_image(source, name, image)
    registry = TokenRegistry(source.endpoint)
    try:
        status, root = unpack(server, f"127.0.0.1:{registry.port}/{name}:v1")
        assert status == 200, root
        assert (Path(root["rootfs"]) / "hello").read_bytes() == b"through a token"
        assert registry.scopes and registry.scopes[0] == f"test-registry repository:{name}:pull"
    finally:
        registry.close()


def needs_namespaces(server):
    if server.health()["isolation"] == "process":
        pytest.skip("images run in nimbus's sandbox with namespaces (run as root)")


@needs_busybox
def test_batch_jobs_run_pulled_images_and_missing_ones_cannot_pull(batch, batch_server, source):
    needs_namespaces(batch_server)
    name = unique_name("batchpull").lower()
    put_image(source, name, Image([busybox_layer()], config={"Entrypoint": ["/bin/sh", "-c"], "Env": ["PATH=/bin"]}))
    queue = make_queue(batch, make_env(batch, f"pull-{uuid.uuid4().hex[:6]}", max_vcpus=4))

    def run(image: str) -> dict:
        definition = f"def-{uuid.uuid4().hex[:8]}"
        batch.register_job_definition(jobDefinitionName=definition, type="container", containerProperties={
            "image": image, "command": ["echo pulled and ran"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}]})
        return finished(batch, batch.submit_job(jobName="pull", jobQueue=queue, jobDefinition=definition)["jobId"])

    done = run(f"{host(source)}/{name}:v1")
    assert done["status"] == "SUCCEEDED", (done.get("statusReason"), done.get("attempts"))
    stream = done["attempts"][-1]["container"]["logStreamName"]
    assert until("the job's output", lambda: log_lines(batch_server.endpoint, stream)) == ["pulled and ran"]

    missing = f"{host(source)}/{name}-gone:v1"
    done = run(missing)
    assert done["status"] == "FAILED"
    assert done["attempts"][0]["container"]["reason"] == (
        f"CannotPullContainerError: pull image manifest has been retried 1 time(s): "
        f"failed to resolve ref {missing}: {missing}: not found")


@needs_busybox
def test_a_function_runs_from_a_pulled_image(server, source):
    needs_namespaces(server)
    lam = aws_client("lambda", server.endpoint)
    name = unique_name("pulledfn").lower()
    image = lambda_image()
    put_image(source, name, image)
    uri = f"{host(source)}/{name}:v1"
    created = lam.create_function(FunctionName=name, PackageType="Image", Code={"ImageUri": uri}, Role=ROLE)
    got = lam.get_function(FunctionName=name)["Code"]
    assert got["ImageUri"] == uri
    assert got["ResolvedImageUri"] == f"{host(source)}/{name}@sha256:{created['CodeSha256']}"
    answer = lam.invoke(FunctionName=name, Payload=b'{"n": 1}')
    assert json.loads(answer["Payload"].read()) == {"args": "from-image", "cwd": "/app", "event": {"n": 1}}

    missing = f"{host(source)}/{name}-gone:v1"
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as error:
        lam.create_function(FunctionName=name + "-gone", PackageType="Image", Code={"ImageUri": missing}, Role=ROLE)
    assert f"Source image {missing} does not exist. Provide a valid source image." in str(error.value)


def test_blobs_that_do_not_match_their_digest_are_refused(server):
    """A registry serving other bytes than a layer's digest names: the pull fails and nothing
    of the layer is kept."""
    image = Image([layer([("file", "honest", b"the real layer")])])
    manifest = json.loads(image.manifest)
    lie = layer([("file", "honest", b"something else entirely")])
    served = {"/v2/evil/manifests/v1": (image.manifest, manifest["mediaType"])}
    served[f"/v2/evil/blobs/{manifest['config']['digest']}"] = (image.config, "application/octet-stream")
    served[f"/v2/evil/blobs/{manifest['layers'][0]['digest']}"] = (lie, "application/octet-stream")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body, kind = served.get(self.path, (b"{}", "application/json"))
            self.send_response(200 if self.path in served else 404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    registry = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=registry.serve_forever, daemon=True).start()
    try:
        status, error = unpack(server, f"127.0.0.1:{registry.server_address[1]}/evil:v1")
        assert status == 400
        layer_digest = manifest["layers"][0]["digest"]
        size = manifest["layers"][0]["size"]
        assert f"failed to copy {layer_digest}: got " in error["message"], error
        assert error["message"].endswith(f", expected {size} bytes")
        # An honest registry later: the layer is fetched again, not taken from a bad copy.
        served[f"/v2/evil/blobs/{layer_digest}"] = (image.blobs[layer_digest], "application/octet-stream")
        status, root = unpack(server, f"127.0.0.1:{registry.server_address[1]}/evil:v1")
        assert status == 200, root
        assert (Path(root["rootfs"]) / "honest").read_bytes() == b"the real layer"
    finally:
        registry.shutdown()
        registry.server_close()
