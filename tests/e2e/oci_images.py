"""Tiny container images built in the test itself, without a network or Docker: layers as tars,
configs and manifests as JSON, written as an OCI image layout (what skopeo reads with `oci:DIR`)
or as a `docker save` tarball."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
BUSYBOX = Path("/bin/busybox")


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(entries: list[tuple], compress: bool = True) -> bytes:
    """A layer from entries: ("dir", name), ("file", name, bytes[, mode]), ("symlink", name,
    target), ("hardlink", name, target), ("char", name). Names go in as written (hostile ones
    included)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            kind, name = entry[0], entry[1]
            info = tarfile.TarInfo(name)
            data = None
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "file":
                data = entry[2]
                info.size, info.mode = len(data), entry[3] if len(entry) > 3 else 0o644
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, entry[2]
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, entry[2]
            elif kind == "char":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = out.getvalue()
    return gzip.compress(raw, mtime=0) if compress else raw


def busybox_layer() -> bytes:
    """/bin/busybox (Debian's static build) with sh, echo, cat and ls as links to it."""
    binary = BUSYBOX.read_bytes()
    entries = [("dir", "bin"), ("file", "bin/busybox", binary, 0o755)]
    tools = ("sh", "echo", "cat", "ls", "wget", "grep", "tr", "awk", "sed")
    entries += [("symlink", f"bin/{tool}", "busybox") for tool in tools]
    entries += [("dir", "etc"), ("file", "etc/os-release", b"ID=nimbus-test\n")]
    return layer(entries)


class Image:
    """One image: its layers, config and manifest, with every blob by digest."""

    def __init__(self, layers: list[bytes], architecture: str = "amd64", config: dict | None = None):
        self.blobs: dict[str, bytes] = {}
        diff_ids = []
        descriptors = []
        for data in layers:
            raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            diff_ids.append(digest(raw))
            media = OCI_LAYER_GZIP if data[:2] == b"\x1f\x8b" else "application/vnd.oci.image.layer.v1.tar"
            descriptors.append({"mediaType": media, "digest": self._add(data), "size": len(data)})
        self.config = json.dumps(
            {
                "architecture": architecture,
                "os": "linux",
                "config": config or {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        ).encode()
        self.architecture = architecture
        self.layers = layers
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": self._add(self.config), "size": len(self.config)},
            "layers": descriptors,
        }
        self.manifest = json.dumps(manifest).encode()
        self.digest = self._add(self.manifest)

    def _add(self, data: bytes) -> str:
        d = digest(data)
        self.blobs[d] = data
        return d

    def descriptor(self, tag: str | None = None) -> dict:
        d = {"mediaType": OCI_MANIFEST, "digest": self.digest, "size": len(self.manifest)}
        if tag:
            d["annotations"] = {"org.opencontainers.image.ref.name": tag}
        return d


def index_of(images: list[Image]) -> tuple[bytes, dict[str, bytes]]:
    """A multi-platform index over `images`, and every blob it needs."""
    blobs: dict[str, bytes] = {}
    manifests = []
    for image in images:
        blobs.update(image.blobs)
        d = image.descriptor()
        d["platform"] = {"architecture": image.architecture, "os": "linux"}
        manifests.append(d)
    data = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()
    blobs[digest(data)] = data
    return data, blobs


def write_layout(directory: Path, tagged: list[tuple[str, dict]], blobs: dict[str, bytes]) -> Path:
    """An OCI image layout: `tagged` is (tag, descriptor) pairs for index.json."""
    (directory / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    for d, data in blobs.items():
        (directory / "blobs" / "sha256" / d.split(":")[1]).write_bytes(data)
    manifests = []
    for tag, descriptor in tagged:
        descriptor = dict(descriptor)
        descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
        manifests.append(descriptor)
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))
    return directory


def image_layout(directory: Path, image: Image, tag: str) -> Path:
    return write_layout(directory, [(tag, image.descriptor())], image.blobs)


def docker_save(image: Image, repo_tag: str) -> bytes:
    """A `docker save` tarball (the classic format: <id>/layer.tar, <id>.json, manifest.json)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:

        def add(name: str, data: bytes):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        layers = []
        for i, data in enumerate(image.layers):
            raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            add(f"layer{i}/layer.tar", raw)
            layers.append(f"layer{i}/layer.tar")
        config_name = digest(image.config).split(":")[1] + ".json"
        add(config_name, image.config)
        add("manifest.json", json.dumps([{"Config": config_name, "RepoTags": [repo_tag], "Layers": layers}]).encode())
    return out.getvalue()


# A Lambda runtime in busybox sh: the Runtime API loop with wget, answering each event with
# the arguments the image was started with and the event itself.
BOOTSTRAP = b"""#!/bin/sh
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
while true; do
  wget -q -S -O /tmp/event "$api/invocation/next" 2> /tmp/headers
  id=$(grep -i 'Lambda-Runtime-Aws-Request-Id' /tmp/headers | tr -d '\\r' | awk '{print $2}')
  wget -q -O /dev/null --post-data "{\\"args\\": \\"$*\\", \\"cwd\\": \\"$(pwd)\\", \\"event\\": $(cat /tmp/event)}" "$api/invocation/$id/response"
done
"""


def lambda_image(architecture: str = "amd64", cmd: list[str] | None = None) -> Image:
    """busybox with the runtime loop above as its entrypoint."""
    app = layer([("dir", "app"), ("file", "app/bootstrap", BOOTSTRAP, 0o755)])
    config = {"Entrypoint": ["/bin/sh", "/app/bootstrap"], "Cmd": cmd or ["from-image"], "WorkingDir": "/app", "Env": ["PATH=/bin"]}
    return Image([busybox_layer(), app], architecture=architecture, config=config)


def have_busybox() -> bool:
    return BUSYBOX.exists() and os.access(BUSYBOX, os.X_OK)
