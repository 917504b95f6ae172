"""End-to-end fixtures: build and start the real `nimbus` binary, drive it with boto3.

Environment:
  NIMBUS_BIN    use this binary instead of building target/release/nimbus
  NIMBUS_E2E_KEEP_LOGS=1  keep server logs / data dirs (they live under pytest's tmp dirs)
  NIMBUS_TEST_DATABASE  postgres://user@host:port/db of a PostgreSQL server where `user` may create
                databases: every server keeps its state there, in a database of its own per data
                directory (`nimbus up --database`). scripts/test sets it for its PostgreSQL pass.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from support import (
    PY_MULTI,
    aws_client,
    ROLE,
    make_zip,
    unique_name,
    zip_file_bytes,
)

REPO = HERE.parent.parent
FIXTURES = REPO / "tests" / "fixtures"
HEALTH_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0
# What `nimbus up` prints once it listens; with `--port 0` it is how we learn the port.
LISTENING = re.compile(rb"nimbus listening on http://127\.0\.0\.1:(\d+)")


# ---------------------------------------------------------------------------
# The binary
# ---------------------------------------------------------------------------


def _cargo(args: list[str], env: dict | None = None, what: str = "cargo build", fatal: bool = False) -> None:
    proc = subprocess.run(
        ["cargo", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-40:])
        message = f"{what} failed (exit {proc.returncode}):\n{tail}"
        if fatal:  # nothing can run without the binary: stop the session with one clear message
            pytest.exit(message, returncode=1)
        pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def nimbus_bin() -> Path:
    override = os.environ.get("NIMBUS_BIN")
    if override:
        path = Path(override).resolve()
        if not path.exists():
            pytest.fail(f"NIMBUS_BIN={override} does not exist", pytrace=False)
        return path
    _cargo(["build", "--release", "--bin", "nimbus"], what="cargo build --release --bin nimbus", fatal=True)
    path = REPO / "target" / "release" / "nimbus"
    assert path.exists(), path
    return path


# ---------------------------------------------------------------------------
# PostgreSQL (NIMBUS_TEST_DATABASE)
# ---------------------------------------------------------------------------

TEST_DATABASE = os.environ.get("NIMBUS_TEST_DATABASE") or None
# Databases this process made, dropped when its session ends.
_made: set[str] = set()


def _psql() -> str:
    """The newest psql of Debian's PostgreSQL installation, else whichever is on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"),
                   key=lambda p: [int(n) for n in re.findall(r"\d+", p.split("/")[4])])
    return found[-1] if found else "psql"


def _sql(*statements: str) -> subprocess.CompletedProcess:
    """Each statement on its own (CREATE and DROP DATABASE cannot run in a transaction)."""
    commands = [arg for statement in statements for arg in ("-c", statement)]
    return subprocess.run([_psql(), "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-d", TEST_DATABASE, *commands],
                          capture_output=True, text=True, timeout=120)


def _database_url(name: str) -> str:
    return urllib.parse.urlsplit(TEST_DATABASE)._replace(path="/" + name).geturl()


def _make_database(name: str, fresh: bool) -> str:
    """Create `name` (emptied first when `fresh`) on the test server; its URL."""
    if fresh:
        dropped = _sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if dropped.returncode != 0:
            pytest.fail(f"cannot drop database {name} on {TEST_DATABASE}:\n{dropped.stderr}", pytrace=False)
    created = _sql(f'CREATE DATABASE "{name}"')
    # Two creates at once: the loser fails, and the database is there all the same.
    if created.returncode != 0 and _sql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").stdout.strip() != "1":
        pytest.fail(f"cannot create database {name} on {TEST_DATABASE}:\n{created.stderr}", pytrace=False)
    _made.add(name)
    return _database_url(name)


def fresh_database_url(name: str) -> str | None:
    """A new, empty database on the test server (several nodes sharing one database, say), its name
    made from `name`; None when NIMBUS_TEST_DATABASE is unset (the servers keep SQLite)."""
    if not TEST_DATABASE:
        return None
    readable = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:30]
    return _make_database(f"nimbus_e2e_{readable}_{secrets.token_hex(4)}", fresh=False)


def _database_args(data_dir: Path, extra_args: list[str]) -> list[str]:
    """`--database URL` for a server on `data_dir`, unless it was given one: a database per data
    directory, so a restart on the same directory finds the same state. The first start in this
    session empties it (pytest reuses its temporary paths once old runs are cleaned up)."""
    if not TEST_DATABASE or any(a == "--database" or a.startswith("--database=") for a in extra_args):
        return []
    name = "nimbus_e2e_" + hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    if name in _made:
        return ["--database", _database_url(name)]
    return ["--database", _make_database(name, fresh=True)]


@pytest.hookimpl(trylast=True)  # after the servers are stopped
def pytest_sessionfinish(session):
    if TEST_DATABASE and _made and not os.environ.get("NIMBUS_E2E_KEEP_LOGS"):
        _sql(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in sorted(_made)))


# ---------------------------------------------------------------------------
# A running server
# ---------------------------------------------------------------------------


def _processes_touching(path: str, endpoint: str | None = None) -> list[psutil.Process]:
    """Live processes whose cmdline, cwd or environment mention `path`, or whose environment
    points AWS_ENDPOINT_URL at `endpoint` (every execution environment of a server does, even
    one inside its own mount namespace where cwd and paths mean nothing to us)."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        if proc.pid == me:
            continue
        try:
            cmdline = " ".join(proc.info.get("cmdline") or [])
            cwd = proc.info.get("cwd") or ""
            hit = path in cmdline or cwd.startswith(path)
            if not hit:
                try:
                    env = proc.environ()
                    hit = any(path in v for v in env.values()) or (
                        endpoint is not None and env.get("AWS_ENDPOINT_URL", "").rstrip("/") == endpoint
                    )
                except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
                    pass
            if hit and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


class NimbusServer:
    """One `nimbus up` process with its own port and data directory."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, extra_args: list[str] | None = None):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self._log = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int | None = None) -> NimbusServer:
        """Start on `port`, or without one on `--port 0`: nimbus picks a free port and says which
        (no window in which another test, or another pytest-xdist worker, can take it)."""
        assert self.proc is None, "already started"
        # The data dir itself is left for nimbus to create, as on a fresh checkout.
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.port = port
        self._log = open(self.log_path, "ab")
        self._log_start = self._log.tell()
        cmd = [
            str(self.binary), "up",
            "--host", "127.0.0.1",
            "--port", str(port or 0),
            "--data-dir", str(self.data_dir),
            *self.extra_args,
            *_database_args(self.data_dir, self.extra_args),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.setdefault("RUST_BACKTRACE", "1")
        self._log.write(f"\n===== {' '.join(cmd)}\n".encode())
        self._log.flush()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=str(self.data_dir.parent)
        )
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT
        last_err = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nimbus exited with {self.proc.returncode} before ready:\n{self.log_tail()}")
            try:
                if self.port is None:
                    self.port = self._announced_port()
                    if self.port is None:
                        raise RuntimeError("no `nimbus listening on` line yet")
                self.health()
                self.ready_after = time.monotonic() - self.started_at
                return
            except Exception as e:
                last_err = e
                time.sleep(0.02)
        self.kill()
        raise AssertionError(f"nimbus not healthy after {HEALTH_TIMEOUT}s ({last_err}):\n{self.log_tail()}")

    def _announced_port(self) -> int | None:
        with open(self.log_path, "rb") as log:
            log.seek(self._log_start)
            found = LISTENING.search(log.read())
        return int(found.group(1)) if found else None

    def health(self) -> dict:
        with urllib.request.urlopen(f"{self.endpoint}/_nimbus/health", timeout=2) as r:
            body = json.loads(r.read())
        if body.get("status") != "ready":
            raise RuntimeError(f"not ready: {body}")
        return body

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT, check_children: bool = True) -> int:
        """Signal the server, wait for it; SIGKILL as a fallback. Returns its exit code.

        With `check_children`, asserts that no execution environment outlives it.
        """
        if self.proc is None:
            return 0
        children = self.descendants()
        endpoint = self.endpoint
        killed = False
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                killed = True
        code = self.proc.returncode
        self.proc = None
        self._log.close()
        leftovers = []
        if check_children:
            # Give the kernel a moment to reap what the server killed on its way out.
            gone, alive = psutil.wait_procs(children, timeout=2)
            leftovers = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            leftovers += [p for p in _processes_touching(str(self.data_dir), endpoint) if p not in leftovers]
        for p in leftovers:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        assert not killed, f"nimbus ignored signal {sig} for {timeout}s and was SIGKILLed:\n{self.log_tail()}"
        if check_children:
            described = []
            for p in leftovers:
                try:
                    described.append(f"{p.pid} {' '.join(p.cmdline())}")
                except psutil.Error:
                    described.append(str(p.pid))
            assert not leftovers, f"processes outlived nimbus: {described}"
        return code

    def kill(self) -> None:
        children = self.descendants() if self.proc else []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for p in children:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        self.proc = None
        if self._log:
            self._log.close()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def client(self, **config):
        return lambda_client(self.endpoint, **config)


def lambda_client(endpoint: str, read_timeout: float = 60, max_pool_connections: int = 32):
    return aws_client(
        "lambda", endpoint, read_timeout=read_timeout, connect_timeout=5, max_pool_connections=max_pool_connections
    )


@pytest.fixture(scope="session")
def server_factory(nimbus_bin, tmp_path_factory):
    """Start extra servers: `server_factory(extra_args=[...], data_dir=...)`. All stopped at the end."""
    servers: list[NimbusServer] = []

    def make(extra_args=None, data_dir: Path | None = None, start: bool = True) -> NimbusServer:
        base = tmp_path_factory.mktemp("nimbus")
        srv = NimbusServer(nimbus_bin, data_dir or base / "data", base / "nimbus.log", extra_args)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    errors = []
    for srv in servers:
        if srv.proc is not None:
            try:
                srv.stop()
            except AssertionError as e:
                errors.append(str(e))
    assert not errors, "\n".join(errors)


@pytest.fixture(scope="session")
def server(server_factory) -> NimbusServer:
    """The shared server most tests use (tests use unique function names); default settings."""
    return server_factory()


@pytest.fixture(scope="session")
def endpoint(server) -> str:
    return server.endpoint


@pytest.fixture(scope="session")
def client(server):
    return server.client()


# ---------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def create_fn(client):
    """create_fn(name_prefix, files|zip, runtime=..., handler=..., **kwargs) -> name; waits until Active."""

    def create(prefix: str, code, runtime: str = "python3.12", handler: str = "app.handler", cl=None,
               executable=(), wait: bool = True, **kwargs) -> str:
        cl = cl or client
        name = unique_name(prefix)
        zip_bytes = code if isinstance(code, bytes) else make_zip(code, executable=executable)
        cl.create_function(
            FunctionName=name, Runtime=runtime, Role=ROLE, Handler=handler,
            Code={"ZipFile": zip_bytes}, **kwargs,
        )
        if wait:
            cl.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        return name

    return create


@pytest.fixture(scope="session")
def py_fn(create_fn) -> str:
    """A shared python3.12 function built from support.PY_MULTI."""
    return create_fn(
        "py-multi", {"app.py": PY_MULTI}, MemorySize=256, Timeout=30,
        Environment={"Variables": {"MY_VAR": "my-value", "OTHER": "x=y;z"}},
    )


@pytest.fixture(scope="session")
def rust_echo_zip() -> bytes:
    """Build tests/fixtures/rust-echo (lambda_runtime crate) once, cached in target/fixtures."""
    manifest = FIXTURES / "rust-echo" / "Cargo.toml"
    target_dir = REPO / "target" / "fixtures"
    _cargo(
        ["build", "--release", "--manifest-path", str(manifest)],
        env={"CARGO_TARGET_DIR": str(target_dir)},
        what="building tests/fixtures/rust-echo",
    )
    return zip_file_bytes(str(target_dir / "release" / "bootstrap"), "bootstrap", 0o755)


def pytest_report_header(config):
    return (f"nimbus e2e: repo {REPO}, NIMBUS_BIN={os.environ.get('NIMBUS_BIN', '(cargo build)')}, "
            f"NIMBUS_TEST_DATABASE={TEST_DATABASE or '(unset: SQLite)'}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of the shared server's log to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("call", "setup"):
        srv = getattr(item, "funcargs", {}).get("server")
        if isinstance(srv, NimbusServer):
            report.sections.append(("nimbus log (tail)", srv.log_tail(40)))
