"""The test machinery for the PostgreSQL pass: scripts/postgres and conftest's databases."""

import glob
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psutil
import pytest

import conftest

SCRIPT = conftest.REPO / "scripts" / "postgres"
needs_postgres = pytest.mark.skipif(not glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                                    reason="PostgreSQL is not installed: apt-get install postgresql")


def psql(url: str, statement: str) -> str:
    out = subprocess.run([conftest._psql(), "-X", "-tA", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", statement],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def cluster():
    """A server of our own (not under pytest's tmp dir: as root, its user could not reach that)."""
    work = Path(tempfile.mkdtemp(prefix="nimbus-pg-"))
    try:
        started = subprocess.run([SCRIPT, "start", work], capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stderr
        yield work, started.stdout
    finally:
        subprocess.run([SCRIPT, "stop", work], timeout=120)
        shutil.rmtree(work, ignore_errors=True)


@needs_postgres
def test_scripts_postgres_prints_one_url_and_stop_removes_everything():
    work = Path(tempfile.mkdtemp(prefix="nimbus-pg-"))
    started = subprocess.run([SCRIPT, "start", work], capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    lines = started.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("postgres://nimbus@127.0.0.1:") and lines[0].endswith("/postgres")
    port = int(lines[0].split(":")[2].split("/")[0])
    assert psql(lines[0], "SHOW max_connections") == "2000"
    assert psql(lines[0], "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == "t"
    again = subprocess.run([SCRIPT, "start", work], capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "not empty" in again.stderr
    assert subprocess.run([SCRIPT, "stop", work], timeout=120).returncode == 0
    assert not work.exists()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the server still listens"


@needs_postgres
def test_a_database_per_data_directory_kept_across_restarts(cluster, monkeypatch, tmp_path):
    url = cluster[1].strip()
    monkeypatch.setattr(conftest, "TEST_DATABASE", url)
    monkeypatch.setattr(conftest, "_made", set())
    first = conftest._database_args(tmp_path / "a", [])
    assert first[0] == "--database" and first[1].startswith(url.removesuffix("/postgres") + "/nimbus_e2e_")
    psql(first[1], "CREATE TABLE kept (x int)")
    assert conftest._database_args(tmp_path / "a", []) == first  # a restart: same database, same state
    assert psql(first[1], "SELECT count(*) FROM kept") == "0"
    assert conftest._database_args(tmp_path / "b", [])[1] != first[1]
    assert conftest._database_args(tmp_path / "c", ["--database", "postgres://elsewhere/x"]) == []
    # A later session on the same path (pytest reuses them) starts empty.
    monkeypatch.setattr(conftest, "_made", set())
    assert conftest._database_args(tmp_path / "a", []) == first
    assert psql(first[1], "SELECT count(*) FROM pg_tables WHERE tablename = 'kept'") == "0"
    # Two creates of one name: the second finds it there and is content.
    assert conftest._make_database("nimbus_e2e_twice", fresh=False) == conftest._make_database("nimbus_e2e_twice", fresh=False)


@needs_postgres
def test_fresh_database_urls_are_new_and_empty(cluster, monkeypatch):
    monkeypatch.setattr(conftest, "TEST_DATABASE", cluster[1].strip())
    monkeypatch.setattr(conftest, "_made", set())
    one, two = conftest.fresh_database_url("node A"), conftest.fresh_database_url("node A")
    assert one != two and "/nimbus_e2e_node_a_" in one
    for url in (one, two):
        assert psql(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"


def test_without_a_test_database_servers_keep_sqlite(monkeypatch, tmp_path):
    monkeypatch.setattr(conftest, "TEST_DATABASE", None)
    assert conftest.fresh_database_url("x") is None
    assert conftest._database_args(tmp_path / "data", []) == []


def test_the_shared_server_runs_on_the_test_database(server):
    cmdline = psutil.Process(server.proc.pid).cmdline()
    if conftest.TEST_DATABASE:
        given = cmdline[cmdline.index("--database") + 1]
        assert given.startswith(conftest.TEST_DATABASE.rsplit("/", 1)[0] + "/nimbus_e2e_"), cmdline
    else:
        assert "--database" not in cmdline, cmdline
