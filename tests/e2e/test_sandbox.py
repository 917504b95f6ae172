"""The sandbox, end to end: functions are isolated from the host, from each other and from more
resources than they are configured with (issue: Sandbox). These need root (namespaces, cgroups);
elsewhere nimbus runs plain processes and the tests skip, saying why."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading

import pytest
from support import make_zip, payload_json, unique_name

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root for namespaces and cgroups")

PROBE = r'''
import json, os, socket

def handler(event, context):
    op = event["op"]
    if op == "shadow":
        try:
            open("/etc/shadow").read()
            return "readable"
        except OSError as e:
            return type(e).__name__
    if op == "proc":
        return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    if op == "write":
        try:
            with open(event["path"], "w") as f:
                f.write(event.get("data", "x"))
            return "written"
        except OSError as e:
            return type(e).__name__ + ":" + str(e.errno)
    if op == "read":
        try:
            return open(event["path"]).read()
        except OSError as e:
            return type(e).__name__
    if op == "fill_tmp":
        before = os.listdir("/tmp")
        written = 0
        try:
            with open("/tmp/fill", "wb") as f:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
                    written += 1
        except OSError as e:
            return {"before": before, "mb": written, "error": e.errno}
    if op == "alloc":
        hog = [bytearray(1 << 20) for _ in range(event["mb"])]
        return len(hog)
    if op == "forkbomb":
        pids = 0
        try:
            while True:
                if os.fork() == 0:
                    import time; time.sleep(30); os._exit(0)
                pids += 1
        except OSError as e:
            return {"forked": pids, "errno": e.errno}
    if op == "import_layer":
        import layered
        return layered.VALUE
    if op == "connect":
        try:
            socket.create_connection(("127.0.0.1", event["port"]), timeout=1).close()
            return "connected"
        except OSError as e:
            return type(e).__name__
    if op == "whoami":
        return {"uid": os.getuid(), "gid": os.getgid(), "cwd": os.getcwd(), "tmp": os.environ.get("TMPDIR")}
'''

EFS_ARN = "arn:aws:elasticfilesystem:us-east-1:000000000000:access-point/fsap-0123456789abcdef0"


def invoke(client, name, event, **kwargs):
    import json
    return client.invoke(FunctionName=name, Payload=json.dumps(event).encode(), **kwargs)


@pytest.fixture(scope="module")
def probe(create_fn):
    return create_fn("sandbox-probe", {"app.py": PROBE}, MemorySize=128, Timeout=20,
                     EphemeralStorage={"Size": 512})


@needs_root
def test_health_reports_namespaces_and_cgroups(server):
    assert server.health()["isolation"] == "namespaces+cgroups"


@needs_root
def test_host_secrets_are_denied(client, probe):
    assert payload_json(invoke(client, probe, {"op": "shadow"})) == "PermissionError"


@needs_root
def test_proc_shows_only_the_environment(client, probe):
    pids = payload_json(invoke(client, probe, {"op": "proc"}))
    assert pids and max(pids) < 10, pids


@needs_root
def test_runs_as_an_unprivileged_user_in_var_task(client, probe):
    who = payload_json(invoke(client, probe, {"op": "whoami"}))
    assert who == {"uid": 993, "gid": 990, "cwd": "/var/task", "tmp": "/tmp"}


@needs_root
def test_code_and_system_are_read_only(client, probe):
    assert payload_json(invoke(client, probe, {"op": "write", "path": "/var/task/x"})) == "OSError:30"
    assert payload_json(invoke(client, probe, {"op": "write", "path": "/usr/x"})).startswith("OSError:")


@needs_root
def test_tmp_is_sized_and_fresh_for_each_new_environment(client, create_fn):
    name = create_fn("sandbox-tmp", {"app.py": PROBE}, Timeout=30, EphemeralStorage={"Size": 512})
    filled = payload_json(invoke(client, name, {"op": "fill_tmp"}))
    assert filled["error"] == 28, filled  # ENOSPC
    assert 500 <= filled["mb"] <= 512, filled
    # A configuration change retires the environment; the next one starts with an empty /tmp.
    client.update_function_configuration(FunctionName=name, Description="new environment please")
    client.get_waiter("function_updated_v2").wait(FunctionName=name)
    again = payload_json(invoke(client, name, {"op": "fill_tmp"}))
    assert again["before"] == [], again


@needs_root
def test_memory_limit_kills_the_environment_with_aws_error(client, create_fn, server):
    name = create_fn("sandbox-oom", {"app.py": PROBE}, MemorySize=128, Timeout=30)
    resp = invoke(client, name, {"op": "alloc", "mb": 400}, LogType="Tail")
    assert resp.get("FunctionError") == "Unhandled"
    body = payload_json(resp)
    assert body["errorType"] == "Runtime.OutOfMemory", body
    assert "Runtime exited with error: signal: killed" in body["errorMessage"], body
    log = base64.b64decode(resp["LogResult"]).decode()
    assert "Max Memory Used: 12" in log or "Max Memory Used: 128 MB" in log, log
    # nimbus is fine and the function works again in a new environment.
    assert payload_json(invoke(client, name, {"op": "alloc", "mb": 10})) == 10
    assert server.health()["status"] == "ready"


@needs_root
def test_fork_bomb_stops_at_the_pids_limit(client, create_fn, server):
    name = create_fn("sandbox-fork", {"app.py": PROBE}, MemorySize=1024, Timeout=30)
    result = payload_json(invoke(client, name, {"op": "forkbomb"}))
    assert result["errno"] == 11, result  # EAGAIN from the pids controller
    assert result["forked"] < 1024, result
    assert server.health()["status"] == "ready"


@needs_root
def test_shared_file_system_between_functions_and_across_restarts(server_factory):
    srv = server_factory()
    client = srv.client()
    fs = [{"Arn": EFS_ARN, "LocalMountPath": "/mnt/shared"}]
    names = []
    for prefix in ("efs-writer", "efs-reader"):
        name = unique_name(prefix)
        client.create_function(FunctionName=name, Runtime="python3.12", Role="arn:aws:iam::000000000000:role/r",
                               Handler="app.handler", Code={"ZipFile": make_zip({"app.py": PROBE})},
                               FileSystemConfigs=fs)
        names.append(name)
    writer, reader = names
    assert client.get_function_configuration(FunctionName=writer)["FileSystemConfigs"] == fs
    assert payload_json(invoke(client, writer, {"op": "write", "path": "/mnt/shared/note", "data": "hello"})) == "written"
    assert payload_json(invoke(client, reader, {"op": "read", "path": "/mnt/shared/note"})) == "hello"
    srv.stop()
    srv.start()
    client = srv.client()
    assert payload_json(invoke(client, reader, {"op": "read", "path": "/mnt/shared/note"})) == "hello"


@needs_root
def test_layers_are_importable_from_opt(client, create_fn):
    layer = client.publish_layer_version(
        LayerName=unique_name("pylayer"),
        Content={"ZipFile": make_zip({"python/layered.py": "VALUE = 'from the first layer'\n"})},
        CompatibleRuntimes=["python3.12"])
    later = client.publish_layer_version(
        LayerName=unique_name("pylayer2"),
        Content={"ZipFile": make_zip({"python/layered.py": "VALUE = 'later layers win'\n"})})
    name = create_fn("sandbox-layer", {"app.py": PROBE}, Layers=[layer["LayerVersionArn"]])
    assert payload_json(invoke(client, name, {"op": "import_layer"})) == "from the first layer"
    both = create_fn("sandbox-layers", {"app.py": PROBE},
                     Layers=[layer["LayerVersionArn"], later["LayerVersionArn"]])
    assert payload_json(invoke(client, both, {"op": "import_layer"})) == "later layers win"
    config = client.get_function_configuration(FunctionName=both)
    assert [l["Arn"] for l in config["Layers"]] == [layer["LayerVersionArn"], later["LayerVersionArn"]]
    assert payload_json(invoke(client, both, {"op": "write", "path": "/opt/python/x"})) == "OSError:30"


@needs_root
def test_node_functions_require_modules_from_layers(client, create_fn):
    layer = client.publish_layer_version(
        LayerName=unique_name("nodelayer"),
        Content={"ZipFile": make_zip({"nodejs/node_modules/greeting/index.js": "module.exports = 'hi from /opt';\n"})},
        CompatibleRuntimes=["nodejs20.x"], CompatibleArchitectures=["x86_64"])
    code = "exports.handler = async () => require('greeting');\n"
    name = create_fn("node-layer", {"index.js": code}, runtime="nodejs20.x", handler="index.handler",
                     Layers=[layer["LayerVersionArn"]])
    assert payload_json(invoke(client, name, {})) == "hi from /opt"


def test_layer_permissions_are_stored_and_returned(client):
    import json as _json
    layer = client.publish_layer_version(LayerName=unique_name("shared"),
                                         Content={"ZipFile": make_zip({"python/x.py": "X = 1\n"})})
    name, version = layer["LayerArn"].rsplit(":", 1)[1], layer["Version"]
    added = client.add_layer_version_permission(LayerName=name, VersionNumber=version, StatementId="everyone",
                                                Action="lambda:GetLayerVersion", Principal="*")
    assert _json.loads(added["Statement"])["Principal"] == "*"
    policy = _json.loads(client.get_layer_version_policy(LayerName=name, VersionNumber=version)["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["everyone"]
    client.remove_layer_version_permission(LayerName=name, VersionNumber=version, StatementId="everyone")
    assert _json.loads(client.get_layer_version_policy(LayerName=name, VersionNumber=version)["Policy"])["Statement"] == []
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_layer_version_policy(LayerName=name, VersionNumber=99)


@needs_root
def test_vpc_functions_reach_only_nimbus(client, create_fn):
    outside = socket.socket()
    outside.bind(("127.0.0.1", 0))
    outside.listen()
    port = outside.getsockname()[1]
    threading.Thread(target=lambda: outside.accept(), daemon=True).start()
    # Host loopback is out of reach of every function (see test_network.py); a VPC function
    # reaches nothing but nimbus.
    vpc = {"SubnetIds": ["subnet-0123"], "SecurityGroupIds": ["sg-0123"]}
    closed = create_fn("sandbox-net-vpc", {"app.py": PROBE}, VpcConfig=vpc)
    assert payload_json(invoke(client, closed, {"op": "connect", "port": port})) == "ConnectionRefusedError"
    # nimbus's own API stays reachable through AWS_ENDPOINT_URL.
    code = PROBE + "\nimport boto3\ndef api(event, context):\n    return len(boto3.client('lambda').list_functions()['Functions']) > 0\n"
    via_api = create_fn("sandbox-net-api", {"app.py": code}, handler="app.api", VpcConfig=vpc, Timeout=20)
    assert payload_json(invoke(client, via_api, {})) is True
    outside.close()


def test_process_mode_says_so_and_still_runs_functions(server_factory):
    srv = server_factory(extra_args=["--isolation", "process"])
    assert srv.health()["isolation"] == "process"
    # Plainly: environments share one network, so they are not isolated from each other.
    assert "not isolated" in srv.health()["network"]
    assert "isolation: process" in srv.log_text()
    client = srv.client()
    name = unique_name("plain")
    client.create_function(FunctionName=name, Runtime="python3.12", Role="arn:aws:iam::000000000000:role/r",
                           Handler="app.handler", Code={"ZipFile": make_zip({"app.py": PROBE})})
    who = payload_json(invoke(client, name, {"op": "whoami"}))
    # A plain process: nimbus's own user, the code where nimbus keeps it, a private TMPDIR.
    assert who["uid"] == os.geteuid() and who["cwd"] != "/var/task", who
    assert who["tmp"] and who["tmp"] != "/tmp", who
    # Layers still import: without /opt, the runtime is pointed at them where they are.
    layer = client.publish_layer_version(
        LayerName=unique_name("plainlayer"),
        Content={"ZipFile": make_zip({"python/layered.py": "VALUE = 'layer without /opt'\n"})})
    client.update_function_configuration(FunctionName=name, Layers=[layer["LayerVersionArn"]])
    assert payload_json(invoke(client, name, {"op": "import_layer"})) == "layer without /opt"


NODE_PROBE = """const fs = require("fs");
exports.handler = async () => {
  const out = {};
  try { out.shadow = fs.readFileSync("/etc/shadow", "utf8").length; } catch (e) { out.shadow = e.code; }
  out.procs = fs.readdirSync("/proc").filter((p) => /^\\d+$/.test(p)).length;
  try { fs.writeFileSync("/var/task/x", "1"); out.task = "writable"; } catch (e) { out.task = e.code; }
  return out;
};
"""


@needs_root
def test_without_root_a_user_namespace_still_isolates(nimbus_bin):
    """nimbus started as an unprivileged user (nobody) runs functions in namespaces inside a user
    namespace: no cgroups (health says "namespaces"), but a private root and PID namespace."""
    import shutil
    import subprocess
    import tempfile
    import time
    import urllib.request
    from pathlib import Path

    import boto3

    from support import free_port

    if not shutil.which("setpriv"):
        pytest.skip("setpriv is needed to drop to an unprivileged user: apt-get install util-linux")
    # Not under pytest's temporary directory: that one is private to root.
    work = Path(tempfile.mkdtemp(prefix="nimbus-unprivileged-"))
    work.chmod(0o777)
    port = free_port()
    proc = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(nimbus_bin), "up",
                             "--port", str(port), "--data-dir", str(work / "data")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=work)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        health = {}
        for _ in range(200):
            try:
                health = json.loads(urllib.request.urlopen(endpoint + "/_nimbus/health", timeout=1).read())
                break
            except OSError:
                time.sleep(0.05)
        assert health.get("isolation") == "namespaces", (health, proc.poll())
        client = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="x", aws_secret_access_key="x")
        name = unique_name("unprivileged")
        client.create_function(FunctionName=name, Runtime="nodejs20.x", Role="arn:aws:iam::000000000000:role/r",
                               Handler="index.handler", Code={"ZipFile": make_zip({"index.js": NODE_PROBE})})
        result = payload_json(client.invoke(FunctionName=name))
        assert result == {"shadow": 0, "procs": 1, "task": "EROFS"}, result
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)


def aarch64_exit(code: int) -> bytes:
    """A minimal static aarch64 Linux program that exits with `code` (mov x0; mov x8, #93; svc)."""
    import struct

    text = struct.pack("<III", 0xD2800000 | (code << 5), 0xD2800BA8, 0xD4000001)
    base, ehdr_size, phdr_size = 0x400000, 64, 56
    entry = base + ehdr_size + phdr_size
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, 183, 1, entry, ehdr_size, 0, 0, ehdr_size, phdr_size, 1, 0, 0, 0)
    total = ehdr_size + phdr_size + len(text)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, total, total, 0x1000)
    return ehdr + phdr + text


def test_arm64_bootstraps_run_through_qemu_or_fail_clearly(client, create_fn):
    name = create_fn("graviton", {"bootstrap": aarch64_exit(3)}, runtime="provided.al2023", handler="x",
                     executable=("bootstrap",), Architectures=["arm64"])
    assert client.get_function_configuration(FunctionName=name)["Architectures"] == ["arm64"]
    result = payload_json(client.invoke(FunctionName=name))
    if os.path.exists("/usr/bin/qemu-aarch64-static") or os.path.exists("/usr/bin/qemu-aarch64"):
        # It really ran (under qemu-user): the program's own exit status comes back.
        assert result["errorType"] == "Runtime.ExitError", result
        assert "exit status 3" in result["errorMessage"], result
    else:
        assert result["errorType"] == "Runtime.InvalidEntrypoint", result
        assert "qemu-aarch64" in result["errorMessage"], result
