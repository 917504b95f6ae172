"""Every execution environment has a network of its own (issue: Isolation and hardening): a
hostile function cannot find, steal or answer another function's invocations, nor reach the
host's loopback services or abstract sockets, yet it still reaches the outside world and
nimbus's API. Needs root; elsewhere the tests skip, saying why."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import psutil
import pytest
from support import make_zip, payload_json, unique_name

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="own networks need root (network namespaces)")

# Reads every listening TCP socket it can see and tries to take an invocation from each.
ATTACKER = r'''
import json, os, socket, urllib.request

def listening_ports():
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)

def steal(port):
    url = f"http://127.0.0.1:{port}/2018-06-01/runtime/invocation/next"
    try:
        with urllib.request.urlopen(url, timeout=1.5) as reply:
            return {"port": port, "status": reply.status, "body": reply.read().decode(errors="replace")[:200],
                    "request_id": reply.headers.get("Lambda-Runtime-Aws-Request-Id")}
    except Exception as error:
        return {"port": port, "error": type(error).__name__}

def handler(event, context):
    own = {int(os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)[1]),
           int(os.environ["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])}
    seen = listening_ports()
    return {"seen": seen, "own": sorted(own), "stolen": [steal(p) for p in seen if p not in own]}

def connect(event, context):
    try:
        socket.create_connection((event["host"], event["port"]), timeout=2).close()
        return "connected"
    except OSError as error:
        return type(error).__name__

def abstract(event, context):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect("\0" + event["name"])
        return "connected"
    except OSError as error:
        return type(error).__name__
    finally:
        s.close()
'''

VICTIM = r'''
import time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"victim": event["secret"]}
'''


def invoke(client, name, event):
    return payload_json(client.invoke(FunctionName=name, Payload=json.dumps(event).encode()))


def listen(host: str) -> socket.socket:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, 0))
    server.listen(16)

    def accept():
        while True:
            try:
                server.accept()[0].close()
            except OSError:
                return
    threading.Thread(target=accept, daemon=True).start()
    return server


def create_probe(client, prefix: str, handler: str = "app.connect", code: str = ATTACKER) -> str:
    """A function on a server of the test's own (the shared `create_fn` serves the shared one)."""
    name = unique_name(prefix)
    client.create_function(FunctionName=name, Runtime="python3.12", Role="arn:aws:iam::000000000000:role/r",
                           Handler=handler, Timeout=20, Code={"ZipFile": make_zip({"app.py": code})})
    return name


def primary_address() -> str | None:
    """The host's address on its default route: the stand-in for "the outside world"."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        address = probe.getsockname()[0]
        return None if address.startswith("127.") else address
    except OSError:
        return None
    finally:
        probe.close()


@needs_root
def test_a_function_cannot_steal_another_functions_invocations(client, create_fn, server):
    assert server.health()["network"] == "own"
    victim = create_fn("net-victim", {"app.py": VICTIM}, Timeout=30)
    attacker = create_fn("net-attacker", {"app.py": ATTACKER}, Timeout=60)
    assert invoke(client, victim, {"secret": "warm"}) == {"victim": "warm"}
    # The victim's environment is warm and waiting on its Runtime API's /next: on a shared
    # loopback, the attacker's GET would receive the victim's next event.
    results = {}
    caller = threading.Thread(target=lambda: results.update(victim=invoke(client, victim, {"secret": "s3cr3t", "sleep": 1})))
    scan = invoke(client, attacker, {})
    caller.start()
    caller.join(30)
    assert results["victim"] == {"victim": "s3cr3t"}
    # Only the attacker's own Runtime API and nimbus's API listen where it can look.
    assert set(scan["seen"]) == set(scan["own"]), scan
    assert scan["stolen"] == [], scan


@needs_root
def test_host_loopback_and_abstract_sockets_are_out_of_reach(client, create_fn):
    attacker = create_fn("net-loopback", {"app.py": ATTACKER}, handler="app.connect", Timeout=20)
    host_service = listen("127.0.0.1")
    try:
        port = host_service.getsockname()[1]
        assert invoke(client, attacker, {"host": "127.0.0.1", "port": port}) == "ConnectionRefusedError"
        assert invoke(client, attacker, {"host": "10.0.2.2", "port": port}) != "connected"
    finally:
        host_service.close()
    name = unique_name("nimbus-abstract")
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind("\0" + name)
    abstract.listen(1)
    try:
        probe = create_fn("net-abstract", {"app.py": ATTACKER}, handler="app.abstract", Timeout=20)
        assert invoke(client, probe, {"name": name}) == "ConnectionRefusedError"
    finally:
        abstract.close()


@needs_root
def test_functions_still_reach_the_outside_world(client, create_fn):
    address = primary_address()
    if address is None:
        pytest.skip("the host has no non-loopback address to stand in for the outside world")
    outside = listen("0.0.0.0")
    try:
        fn = create_fn("net-outside", {"app.py": ATTACKER}, handler="app.connect", Timeout=20)
        assert invoke(client, fn, {"host": address, "port": outside.getsockname()[1]}) == "connected"
        # A function in a VPC (no NAT gateway) does not.
        vpc = {"SubnetIds": ["subnet-0123"], "SecurityGroupIds": ["sg-0123"]}
        closed = create_fn("net-vpc", {"app.py": ATTACKER}, handler="app.connect", Timeout=20, VpcConfig=vpc)
        assert invoke(client, closed, {"host": address, "port": outside.getsockname()[1]}) != "connected"
    finally:
        outside.close()


@needs_root
def test_host_loopback_is_reachable_when_asked_for(server_factory, create_fn):
    srv = server_factory(extra_args=["--host-loopback"])
    try:
        client = srv.client()
        host_service = listen("127.0.0.1")
        name = create_probe(client, "net-hostlo")
        assert invoke(client, name, {"host": "10.0.2.2", "port": host_service.getsockname()[1]}) == "connected"
        host_service.close()
    finally:
        srv.stop()


@needs_root
def test_networks_end_with_nimbus(server_factory, create_fn):
    """slirp4netns relays stop with their environments and with nimbus, even after kill -9."""
    srv = server_factory()
    client = srv.client()
    name = create_probe(client, "net-relay")
    invoke(client, name, {"host": "127.0.0.1", "port": 1})
    relays = [p for p in psutil.Process(srv.proc.pid).children(recursive=True) if p.name() == "slirp4netns"]
    assert relays, "each environment's network has a relay"
    os.kill(srv.proc.pid, 9)
    srv.proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in relays):
        time.sleep(0.05)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in relays)
    srv.kill()


@needs_root
def test_a_loopback_resolver_is_replaced_by_the_relays(server_factory, tmp_path):
    """On hosts whose resolver is on loopback (systemd-resolved's 127.0.0.53), an environment's
    own network could not reach it: the sandbox shows slirp's DNS relay instead."""
    fake = tmp_path / "resolv.conf"
    fake.write_text("nameserver 127.0.0.53\noptions edns0\n")
    # nimbus in a mount namespace of the test's own, where the host's resolver is on loopback.
    wrapper = tmp_path / "nimbus-with-stub-resolver"
    srv = server_factory(start=False)
    wrapper.write_text(
        "#!/bin/sh\n"
        f"exec unshare -m --propagation private sh -c 'mount --bind {fake} /etc/resolv.conf && "
        f"exec {srv.binary} \"$@\"' sh \"$@\"\n")
    wrapper.chmod(0o755)
    srv.binary = wrapper
    srv.start()
    client = srv.client()
    code = "def handler(event, context):\n    return open('/etc/resolv.conf').read()\n"
    name = create_probe(client, "net-dns", handler="app.handler", code=code)
    shown = invoke(client, name, {})
    assert "nameserver 10.0.2.3" in shown and "127.0.0.53" not in shown, shown
    assert "options edns0" in shown
    srv.stop()


@needs_root
def test_no_mount_outlives_a_killed_nimbus(server_factory):
    """nimbus keeps its mounts (scratch volumes for /tmp, sandbox roots) in a mount namespace of
    its own: after kill -9 none is left on the host, not even until the next start."""
    srv = server_factory()
    client = srv.client()
    name = create_probe(client, "net-mounts")
    invoke(client, name, {"host": "127.0.0.1", "port": 1})
    # The environment's /tmp is a loop-mounted volume under the data directory (in nimbus's view).
    pid = srv.proc.pid
    theirs = open(f"/proc/{pid}/mountinfo").read()
    assert str(srv.data_dir) in theirs, "the environment's scratch volume is mounted for nimbus"
    os.kill(pid, 9)
    srv.proc.wait()
    ours = open("/proc/self/mountinfo").read()
    assert str(srv.data_dir) not in ours
    srv.kill()


@needs_root
def test_a_failing_relay_leaves_functions_running_cut_off(server_factory, tmp_path, monkeypatch):
    """Where slirp4netns cannot start (no /dev/net/tun, say), functions still run in their own
    network, without a route outside, and nimbus says so once and in health."""
    fake = tmp_path / "bin" / "slirp4netns"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'cannot open /dev/net/tun' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    srv = server_factory()
    client = srv.client()
    name = create_probe(client, "net-norelay")
    assert invoke(client, name, {"host": "127.0.0.1", "port": 1}) == "ConnectionRefusedError"
    assert "no outside" in srv.health()["network"]
    assert srv.log_text().count("slirp4netns failed") == 1
    srv.stop()
