"""Batch jobs in their container images: a busybox image built here, pushed into nimbus's
registry with skopeo (or imported as a docker save tarball), run by a job definition naming it
the ways users write images; the image's Entrypoint/Cmd/Env/WorkingDir under the job
definition's command and environment, as ECS applies them; volumes and the checkpoint
directory mounted; output in CloudWatch Logs; a missing image fails with
CannotPullContainerError."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
import uuid

import pytest

from batch_support import batch, batch_server, finished, log_lines, make_env, make_queue, until  # noqa: F401
from oci_images import Image, busybox_layer, docker_save, have_busybox, image_layout, layer
from support import aws_client

SKOPEO = shutil.which("skopeo")
needs_busybox = pytest.mark.skipif(not have_busybox(), reason="/bin/busybox missing (apt-get install busybox-static)")
needs_skopeo = pytest.mark.skipif(not SKOPEO, reason="skopeo is not installed (apt-get install skopeo)")

CONFIG = {
    "Entrypoint": ["/bin/sh", "-c"],
    "Cmd": ['echo "cmd from image, $GREETING, in $(pwd)"'],
    "Env": ["PATH=/bin", "GREETING=image greeting", "KEPT=image-only"],
    "WorkingDir": "/app",
}


def busybox_image() -> Image:
    app = layer([("dir", "app"), ("file", "app/marker", b"in the image\n")])
    return Image([busybox_layer(), app], config=CONFIG)


def needs_namespaces(server):
    if server.health()["isolation"] == "process":
        pytest.skip("jobs in container images need nimbus's sandbox with namespaces (run as root)")


@pytest.fixture(scope="module")
def queue(batch):
    return make_queue(batch, make_env(batch, f"img-{uuid.uuid4().hex[:6]}", max_vcpus=16))


def registry(server) -> str:
    return f"000000000000.dkr.ecr.us-east-1.localhost:{server.endpoint.rsplit(':', 1)[1]}"


def import_image(server, name: str, image: Image, tag: str = "v1") -> str:
    request = urllib.request.Request(
        f"{server.endpoint}/_nimbus/images/import?repository={name}&tag={tag}",
        data=docker_save(image, f"{name}:{tag}"), method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["imported"][0]["digest"]


def definition(batch, image: str, **props) -> str:
    name = f"def-{uuid.uuid4().hex[:8]}"
    batch.register_job_definition(jobDefinitionName=name, type="container", containerProperties={
        "image": image, "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
        **props})
    return name


def run(batch, server, queue, definition_name, lines_expected=1, **submit):
    done = finished(batch, batch.submit_job(jobName="img", jobQueue=queue, jobDefinition=definition_name,
                                            **submit)["jobId"])
    attempt = done["attempts"][-1]
    lines = []
    if done["status"] == "SUCCEEDED":
        lines = until("the output in CloudWatch Logs",
                      lambda: (lambda got: got if len(got) >= lines_expected else None)(
                          log_lines(server.endpoint, attempt["container"]["logStreamName"])))
    return done, lines


@needs_skopeo
@needs_busybox
def test_a_pushed_image_runs_with_its_config_under_the_job_definitions_overrides(batch, batch_server, queue, tmp_path):
    needs_namespaces(batch_server)
    name = f"batchimg-{uuid.uuid4().hex[:8]}"
    aws_client("ecr", batch_server.endpoint).create_repository(repositoryName=name)
    image_layout(tmp_path / "layout", busybox_image(), "v1")
    pushed = subprocess.run(
        [SKOPEO, "--insecure-policy", "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'layout'}:v1",
         f"docker://{batch_server.endpoint.removeprefix('http://')}/{name}:v1"],
        capture_output=True, text=True, timeout=180)
    assert pushed.returncode == 0, pushed.stderr
    image = f"{registry(batch_server)}/{name}:v1"

    # No command: the image's Entrypoint and Cmd, its Env and WorkingDir.
    done, lines = run(batch, batch_server, queue, definition(batch, image))
    assert done["status"] == "SUCCEEDED", (done.get("statusReason"), done.get("attempts"))
    assert lines == ["cmd from image, image greeting, in /app"]

    # The definition's command replaces Cmd (after the Entrypoint); its environment goes over
    # the image's; host volumes and the checkpoint directory are mounted in the image's root.
    volume = tmp_path / "volume"
    volume.mkdir()
    volume.chmod(0o777)
    script = ('echo "$GREETING / $KEPT / $(cat marker)"; ls /usr >/dev/null 2>&1 || echo "no /usr"; '
              'echo written > /data/out; echo saved > "$NIMBUS_CHECKPOINT_DIR/state"; '
              'cat "$NIMBUS_CHECKPOINT_DIR/state"')
    overridden = definition(batch, image, command=[script],
                            environment=[{"name": "GREETING", "value": "from the definition"}],
                            volumes=[{"name": "v", "host": {"sourcePath": str(volume)}}],
                            mountPoints=[{"sourceVolume": "v", "containerPath": "/data"}])
    done, lines = run(batch, batch_server, queue, overridden, lines_expected=3,
                      containerOverrides={"environment": [{"name": "KEPT", "value": "submitted"}]})
    assert done["status"] == "SUCCEEDED", done
    assert lines[0] == "from the definition / submitted / in the image"
    assert lines[1] == "no /usr", "the job sees the image's root, not the host's"
    assert lines[2:] == ["saved"]
    assert (volume / "out").read_text() == "written\n"


@needs_busybox
def test_imported_images_by_bare_name_and_digest(batch, batch_server, queue):
    needs_namespaces(batch_server)
    name = f"batchimp-{uuid.uuid4().hex[:8]}"
    digest = import_image(batch_server, name, busybox_image())
    for reference in (f"{name}:v1", f"{name}@{digest}", f"{registry(batch_server)}/{name}@{digest}"):
        done, lines = run(batch, batch_server, queue, definition(batch, reference, command=["echo $AWS_BATCH_JOB_ID"]))
        assert done["status"] == "SUCCEEDED", (reference, done)
        assert lines == [done["jobId"]]
    # Without an Entrypoint the command is the program itself, found in the image's PATH; a
    # program the image lacks cannot start.
    import_image(batch_server, name, Image([busybox_layer()], config={"Cmd": ["sh"], "Env": ["PATH=/bin"]}), tag="v2")
    done, lines = run(batch, batch_server, queue, definition(batch, f"{name}:v2", command=["echo", "plain", "args"]))
    assert done["status"] == "SUCCEEDED", done
    assert lines == ["plain args"]
    done, _ = run(batch, batch_server, queue, definition(batch, f"{name}:v2", command=["python3", "-V"]))
    assert done["status"] == "FAILED"
    assert done["statusReason"] == "Task failed to start"
    assert done["attempts"][0]["container"]["reason"] == (
        'CannotStartContainerError: Error response from daemon: failed to create task: exec: "python3": '
        "executable file not found in $PATH")


def test_a_missing_image_fails_with_cannot_pull_container_error(batch, batch_server, queue):
    for image in (f"{registry(batch_server)}/nothere-{uuid.uuid4().hex[:6]}:v1", "nothere-either@sha256:" + "0" * 64):
        done, _ = run(batch, batch_server, queue, definition(batch, image, command=["true"]))
        assert done["status"] == "FAILED"
        assert done["statusReason"] == "Task failed to start"
        reason = done["attempts"][0]["container"]["reason"]
        assert reason.startswith("CannotPullContainerError: "), reason


def needs_root(server):
    needs_namespaces(server)
    import os
    if os.geteuid() != 0:
        pytest.skip("running a job as another user needs nimbus to run as root")


@needs_busybox
def test_the_image_user_the_definitions_user_over_it_and_ulimits(batch, batch_server, queue):
    needs_root(batch_server)
    name = f"batchusr-{uuid.uuid4().hex[:8]}"
    files = layer([("dir", "etc"), ("file", "etc/passwd", b"root:x:0:0::/:/bin/sh\nworker:x:1500:1600::/:/bin/sh\n"),
                   ("file", "etc/group", b"root:x:0:\nworker:x:1600:\nstaff:x:50:\n")])
    config = {"Entrypoint": ["/bin/sh", "-c"], "Env": ["PATH=/bin"], "User": "worker"}
    import_image(batch_server, name, Image([busybox_layer(), files], config=config))
    show = ['echo "$(id -u):$(id -g) files=$(ulimit -n)/$(ulimit -Hn) core=$(ulimit -c)"']
    # The image's User, resolved in its own /etc/passwd.
    done, lines = run(batch, batch_server, queue, definition(batch, f"{name}:v1", command=show))
    assert done["status"] == "SUCCEEDED", done
    assert lines[0].startswith("1500:1600 ")
    # The definition's user goes over it (name:group, or numbers); its ulimits apply.
    limits = [{"name": "nofile", "softLimit": 512, "hardLimit": 700},
              {"name": "core", "softLimit": -1, "hardLimit": -1}]
    done, lines = run(batch, batch_server, queue, definition(batch, f"{name}:v1", command=show, user="worker:staff",
                                                             ulimits=limits))
    assert done["status"] == "SUCCEEDED", (done["statusReason"], done["attempts"])
    assert lines == ["1500:50 files=512/700 core=unlimited"]
    done, lines = run(batch, batch_server, queue, definition(batch, f"{name}:v1", command=show, user="4321"))
    assert lines[0].startswith("4321:0 ")
    # A user the image does not know cannot start, as Docker says it.
    done, _ = run(batch, batch_server, queue, definition(batch, f"{name}:v1", command=show, user="ghost"))
    assert done["status"] == "FAILED" and done["statusReason"] == "Task failed to start"
    assert done["attempts"][0]["container"]["reason"] == (
        "CannotStartContainerError: Error response from daemon: unable to find user ghost: "
        "no matching entries in passwd file")
    bad = definition(batch, f"{name}:v1", command=show, ulimits=[{"name": "files", "softLimit": 1, "hardLimit": 1}])
    done, _ = run(batch, batch_server, queue, bad)
    assert done["attempts"][0]["container"]["reason"].endswith("invalid ulimit type: files")


def test_a_host_job_runs_as_the_hosts_user(batch, batch_server, queue):
    needs_root(batch_server)
    done, lines = run(batch, batch_server, queue, definition(
        batch, "nimbus/host", command=["sh", "-c", 'echo "$(id -un) $(ulimit -s)"'], user="nobody",
        ulimits=[{"name": "stack", "softLimit": 4194304, "hardLimit": 8388608}]))
    assert done["status"] == "SUCCEEDED", done
    assert lines == ["nobody 4096"]
