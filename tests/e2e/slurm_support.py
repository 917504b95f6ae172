"""A one-node Slurm cluster for the tests (slurmctld + slurmd on this host, munge), in a temp dir.

`SlurmCluster(dir).start()` writes a minimal slurm.conf (this host's name, its own ports, state and
spool under `dir`), starts munged on its own socket, then slurmctld and slurmd in the foreground as
children; `stop()` cancels what is left, waits for the jobs' step daemons to end, and stops the
daemons — nothing outlives it. `skip_reason()` says why a cluster cannot run here (Debian's
`slurm-wlm` and `munge` missing, or not root).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "munged")
MUNGE_KEY = Path("/etc/munge/munge.key")


def _find(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None)


def skip_reason() -> str | None:
    missing = [b for b in BINARIES if _find(b) is None]
    if missing:
        return f"Slurm not installed (missing {', '.join(missing)}; apt-get install -y slurm-wlm munge)"
    if os.geteuid() != 0:
        return "a test Slurm cluster needs root (slurmd runs jobs as their users)"
    if not MUNGE_KEY.exists():
        return f"munge has no key at {MUNGE_KEY}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_line() -> str:
    """This host's CPUs and memory as slurmd sees them (`slurmd -C`), for the node's line."""
    out = subprocess.run([_find("slurmd"), "-C"], capture_output=True, text=True, timeout=30).stdout
    fields = dict(p.split("=", 1) for p in out.split() if "=" in p and not p.startswith("NodeName"))
    memory = int(fields.get("RealMemory", "1024"))
    return f"RealMemory={max(memory - 256, 256)}"


class SlurmCluster:
    def __init__(self, root: Path, partition: str = "nimbus"):
        self.root = Path(root)
        self.partition = partition
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.procs: list[subprocess.Popen] = []
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def _write_conf(self) -> None:
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(mode=0o755, parents=True, exist_ok=True)
        r = self.root
        self.conf.write_text("\n".join([
            "ClusterName=nimbustest",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={r}/munge.sock",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"StateSaveLocation={r}/state",
            f"SlurmdSpoolDir={r}/spool",
            f"SlurmctldPidFile={r}/slurmctld.pid",
            f"SlurmdPidFile={r}/slurmd.pid",
            f"SlurmctldLogFile={r}/log/slurmctld.log",
            f"SlurmdLogFile={r}/log/slurmd.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SchedulerType=sched/builtin",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SlurmdParameters=config_overrides",
            "MpiDefault=none",
            "ReturnToService=2",
            "MinJobAge=300",
            "KillWait=5",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=60",
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs=8 {_node_line()} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen:
        out = open(self.root / "log" / log, "ab")
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=self.env, start_new_session=True)
        out.close()
        self.procs.append(proc)
        return proc

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        done = subprocess.run(list(args), capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def start(self) -> "SlurmCluster":
        self._write_conf()
        try:
            self._spawn([_find("munged"), "--foreground", "--force", f"--socket={self.root}/munge.sock",
                         f"--pid-file={self.root}/munged.pid", f"--seed-file={self.root}/munge.seed",
                         f"--log-file={self.root}/log/munged.log", f"--key-file={MUNGE_KEY}"], "munged.out")
            self._wait("munge's socket", lambda: (self.root / "munge.sock").exists())
            self._spawn([_find("slurmctld"), "-D", "-i", "-f", str(self.conf)], "slurmctld.out")
            self._spawn([_find("slurmd"), "-D", "-f", str(self.conf), "-N", self.host], "slurmd.out")
            self._wait("the node to be idle", lambda: "idle" in self.run(
                "sinfo", "-h", "-o", "%T", check=False, timeout=10))
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, what: str, check, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise AssertionError(f"{proc.args[0]} exited ({proc.returncode}) waiting for {what}; "
                                         f"logs in {self.root / 'log'}: {self.logs()}")
            if check():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; {self.logs()}")

    def logs(self) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace")[-1500:]
            parts.append(f"--- {path.name}\n{text}")
        return "\n".join(parts)

    def jobs(self) -> list[str]:
        """Lines `id|state|name` of the cluster's jobs still known to it."""
        out = self.run("squeue", "-h", "-t", "all", "-o", "%A|%T|%j", check=False, timeout=10)
        return [line for line in out.splitlines() if line.strip()]

    def stop(self) -> None:
        alive = [p for p in self.procs if p.poll() is None]
        if len(alive) == len(self.procs) and self.procs:
            # Jobs first, so that their step daemons end with them.
            self.run("scancel", "--full", "--partition", self.partition, check=False, timeout=10)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and any(
                    s.split("|")[1] in ("RUNNING", "PENDING", "COMPLETING", "CONFIGURING")
                    for s in self.jobs()):
                time.sleep(0.2)
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
        self.procs.clear()
