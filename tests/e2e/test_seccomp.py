"""The sandbox's seccomp filter and shell, end to end (issue 8): calls that open kernel attack
surface fail with EPERM inside a function, while ordinary Python, Node and `provided` work keeps
running; `/bin/sh` is bash, as on Amazon Linux. Root only (elsewhere functions run as plain
processes, without the sandbox's root)."""

from __future__ import annotations

import json
import os
import platform

import pytest
from support import payload_json

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root for namespaces and cgroups")

# (x86_64, aarch64) numbers of every call the filter denies whatever the arguments; None where
# the architecture has no such call.
DENIED = {
    "unshare": (272, 97), "setns": (308, 268),
    "mount": (165, 40), "umount2": (166, 39), "pivot_root": (155, 41), "move_mount": (429, 429),
    "open_tree": (428, 428), "fsopen": (430, 430), "fsconfig": (431, 431), "fsmount": (432, 432),
    "fspick": (433, 433), "mount_setattr": (442, 442), "chroot": (161, 51),
    "keyctl": (250, 219), "add_key": (248, 217), "request_key": (249, 218),
    "bpf": (321, 280), "perf_event_open": (298, 241), "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426), "io_uring_register": (427, 427), "userfaultfd": (323, 282),
    "fanotify_init": (300, 262),
    "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "kcmp": (312, 272), "pidfd_getfd": (438, 438),
    "init_module": (175, 105), "finit_module": (313, 273), "delete_module": (176, 106),
    "kexec_load": (246, 104), "kexec_file_load": (320, 294),
    "reboot": (169, 142), "swapon": (167, 224), "swapoff": (168, 225), "acct": (163, 89),
    "settimeofday": (164, 170), "clock_settime": (227, 112), "clock_adjtime": (305, 266),
    "adjtimex": (159, 171), "sethostname": (170, 161), "setdomainname": (171, 162),
    "quotactl": (179, 60), "quotactl_fd": (443, 443), "nfsservctl": (180, 42), "syslog": (103, 116),
    "vhangup": (153, 58), "lookup_dcookie": (212, 18),
    "open_by_handle_at": (304, 265), "name_to_handle_at": (303, 264),
    "iopl": (172, None), "ioperm": (173, None), "uselib": (134, None), "ustat": (136, None),
    "sysfs": (139, None), "_sysctl": (156, None),
}
CLONE, CLONE3, PERSONALITY = (56, 220), (435, 435), (135, 92)

PROBE = r'''
import ctypes, json, os, platform, socket, subprocess, threading, urllib.request

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
ARCH = 0 if platform.machine() == "x86_64" else 1

def call(numbers, *args):
    """errno of a raw system call (0 when it succeeds)."""
    nr = numbers[ARCH]
    ctypes.set_errno(0)
    result = libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) for a in args))
    return ctypes.get_errno() if result == -1 else 0

CLONE_NEW = {"NEWNS": 0x20000, "NEWCGROUP": 0x2000000, "NEWUTS": 0x4000000, "NEWIPC": 0x8000000,
             "NEWUSER": 0x10000000, "NEWPID": 0x20000000, "NEWNET": 0x40000000}
CLONE_THREAD = 0x10000  # without CLONE_SIGHAND the kernel itself answers EINVAL: nothing is cloned

def denied(event):
    out = {}
    for name, numbers in event["denied"].items():
        if numbers[ARCH] is None:
            continue
        # Arguments the kernel rejects (or that change nothing) if the call got through.
        args = {"setns": (-1, 0), "keyctl": (0, -3, 0)}.get(name, (0, 0, 0, 0, 0))
        out[name] = call(numbers, *args)
    for flag, bit in CLONE_NEW.items():
        out["clone " + flag] = call(event["clone"], bit | CLONE_THREAD, 0, 0, 0, 0)
    out["clone plain"] = call(event["clone"], CLONE_THREAD, 0, 0, 0, 0)
    out["clone3"] = call(event["clone3"], 0, 0)
    out["personality ADDR_NO_RANDOMIZE"] = call(event["personality"], 0x0040000)
    out["personality query"] = call(event["personality"], 0xffffffff)
    # Last: before the filter these succeeded (issue 8) and left the process in a new namespace.
    out["unshare NEWUSER"] = call(event["denied"]["unshare"], CLONE_NEW["NEWUSER"])
    out["unshare NEWUSER|NEWNS"] = call(event["denied"]["unshare"], CLONE_NEW["NEWUSER"] | CLONE_NEW["NEWNS"])
    status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
    return {"errno": out, "seccomp": status.get("Seccomp"), "filters": status.get("Seccomp_filters")}

def work(event):
    results = {}
    def square(i):
        results[i] = i * i
    threads = [threading.Thread(target=square, args=(i,)) for i in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    sh = subprocess.run(["/bin/sh", "-c", "echo $((6 * 7)) ${BASH_VERSION:+bash}"], capture_output=True, text=True)
    with open("/tmp/seccomp-probe", "wb") as f:
        f.write(os.urandom(1 << 20))
    size = os.path.getsize("/tmp/seccomp-probe")
    os.remove("/tmp/seccomp-probe")
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    with urllib.request.urlopen(endpoint + "/_nimbus/health", timeout=5) as r:
        health = json.loads(r.read())["status"]
    return {"threads": sorted(results.values()), "sh": sh.stdout.split(), "sh_code": sh.returncode,
            "tmp": size, "health": health}

def in_child(probe, event):
    """Runs `probe` in a forked child: a call the filter fails to deny cannot harm the runtime."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, json.dumps(probe(event)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return json.loads(out)

def handler(event, context):
    return in_child(denied, event) if event["op"] == "denied" else work(event)
'''

NODE = r'''
const { execFileSync, spawnSync } = require("child_process");
const fs = require("fs");
const { Worker } = require("worker_threads");
exports.handler = async () => {
  const sh = execFileSync("/bin/sh", ["-c", "echo child $$"]).toString().trim();
  const ls = spawnSync("ls", ["/"]).stdout.toString().split("\n").includes("tmp");
  fs.writeFileSync("/tmp/node-probe", "x".repeat(1 << 20));
  const size = (await fs.promises.readFile("/tmp/node-probe")).length;
  const worker = await new Promise((resolve, reject) => {
    const w = new Worker("require('worker_threads').parentPort.postMessage(6 * 7)", { eval: true });
    w.on("message", resolve);
    w.on("error", reject);
  });
  return { sh, ls, size, worker };
};
'''

# A `provided` runtime written for Amazon Linux's /bin/sh (bash): [[ ]], arrays, ${var//x/y},
# ${var,,}, $'\r' and /dev/tcp to speak the Runtime API without curl.
BASH_BOOTSTRAP = r'''#!/bin/sh
api=$AWS_LAMBDA_RUNTIME_API
request() {  # method path body: sets status, rid and body
    exec 3<>"/dev/tcp/${api%:*}/${api##*:}"
    printf '%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
        "$1" "/2018-06-01/runtime$2" "$api" "${#3}" "$3" >&3
    local line length=0 headers=()
    IFS= read -r line <&3
    status=${line#* }; status=${status%% *}
    while IFS= read -r line <&3; do
        line=${line%$'\r'}
        [[ -z $line ]] && break
        headers+=("$line")
        [[ ${line,,} == lambda-runtime-aws-request-id:* ]] && rid=${line#*: }
        [[ ${line,,} == content-length:* ]] && length=${line#*: }
    done
    body=
    (( length > 0 )) && IFS= read -r -N "$length" body <&3
    exec 3<&-
}
while true; do
    request GET /invocation/next ""
    [[ $body =~ \"text\":\ *\"([^\"]*)\" ]] && text=${BASH_REMATCH[1]}
    words=(${text//-/ })
    request POST "/invocation/$rid/response" \
        "{\"replaced\": \"${text//-/+}\", \"words\": ${#words[@]}, \"bash\": \"${BASH_VERSION%%.*}\"}"
done
'''


def invoke(client, name, event):
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event))
    assert "FunctionError" not in resp, payload_json(resp)
    return payload_json(resp)


@pytest.fixture(scope="module")
def probe(create_fn):
    return create_fn("seccomp", {"app.py": PROBE}, runtime="python3.12", Timeout=30, MemorySize=256)


@needs_root
def test_dangerous_calls_fail_with_eperm(client, probe):
    event = {"op": "denied", "denied": DENIED, "clone": CLONE, "clone3": CLONE3, "personality": PERSONALITY}
    out = invoke(client, probe, event)
    assert (out["seccomp"], out["filters"]) == ("2", "2"), out
    errno = out["errno"]
    arch = 0 if platform.machine() == "x86_64" else 1
    expected = {name for name, numbers in DENIED.items() if numbers[arch] is not None}
    expected |= {"clone NEWNS", "clone NEWCGROUP", "clone NEWUTS", "clone NEWIPC", "clone NEWUSER",
                 "clone NEWPID", "clone NEWNET", "personality ADDR_NO_RANDOMIZE", "unshare NEWUSER",
                 "unshare NEWUSER|NEWNS"}
    not_eperm = {name: errno[name] for name in expected if errno[name] != 1}
    assert not not_eperm, f"not EPERM: {not_eperm}"
    # Left alone: clone without namespace flags (the kernel's own EINVAL here), the personality
    # query; clone3 says ENOSYS so that libc falls back to clone.
    assert (errno["clone plain"], errno["personality query"], errno["clone3"]) == (22, 0, 38), errno


@needs_root
def test_threads_subprocesses_sockets_and_tmp_still_work(client, probe):
    out = invoke(client, probe, {"op": "work"})
    assert out["threads"] == [i * i for i in range(8)], out
    assert (out["sh"], out["sh_code"]) == (["42", "bash"], 0), out
    assert out["tmp"] == 1 << 20, out
    assert out["health"] == "ready", out


@needs_root
def test_node_child_processes_and_workers_still_work(client, create_fn):
    name = create_fn("seccomp-node", {"index.js": NODE}, runtime="nodejs20.x", handler="index.handler",
                     Timeout=30, MemorySize=256)
    out = invoke(client, name, {})
    assert out["sh"].startswith("child "), out
    assert out["ls"] is True and out["size"] == 1 << 20 and out["worker"] == 42, out


@needs_root
@pytest.mark.skipif(not os.path.exists("/bin/bash"), reason="the host has no bash to serve as /bin/sh")
def test_sh_is_bash_for_custom_runtimes(client, create_fn):
    name = create_fn("bash-bootstrap", {"bootstrap": BASH_BOOTSTRAP}, runtime="provided.al2023", handler="x",
                     executable=("bootstrap",), Timeout=10)
    for _ in range(2):  # the bootstrap's loop serves a second, warm invoke too
        out = invoke(client, name, {"text": "a-b-c"})
        assert out["replaced"] == "a+b+c" and out["words"] == 3 and int(out["bash"]) >= 4, out
