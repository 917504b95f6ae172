"""Tests for the runtime clients nimbus embeds (python/bootstrap.py, node/bootstrap.js).

Each test writes a tiny function into a tmp dir, starts a fake Lambda Runtime
API (http.server in a thread) with queued events, runs the real bootstrap
against it exactly as nimbus does, and checks what got posted.

The fake server also snapshots the runtime's stdout/stderr pipes at the
moment each response/error arrives (non-blocking drain, as nimbus does), so
the tests verify that output is in the pipe *before* the response is posted.

Run:  python3 -m pytest crates/functions/runtimes/tests -q
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

RUNTIMES = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY_BOOTSTRAP = os.path.join(RUNTIMES, "python", "bootstrap.py")
NODE_BOOTSTRAP = os.path.join(RUNTIMES, "node", "bootstrap.js")
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node not installed: apt-get install nodejs")

PREFIX = "/2018-06-01/runtime"
TIMEOUT = 10.0  # per runtime run; normal runs take well under a second


# ---------------------------------------------------------------------------
# Fake Runtime API
# ---------------------------------------------------------------------------

class Posted:
    def __init__(self, kind, request_id, headers, body, client, stdout, stderr):
        self.kind = kind  # "response" | "error" | "init_error"
        self.request_id = request_id
        self.headers = headers  # lower-cased names
        self.body = body
        self.client = client  # (host, port) of the runtime's connection
        self.stdout = stdout  # everything the runtime had written when this arrived
        self.stderr = stderr

    def json(self):
        return json.loads(self.body)


class FakeRuntimeApi:
    """Serves queued events on GET /invocation/next (blocking when the queue is
    empty, like RAPID) and records every POST."""

    def __init__(self, events=(), chunked=False, close_connections=False, silent_close=False, max_body=None):
        self.events = list(events)
        self.chunked = chunked  # send event bodies with Transfer-Encoding: chunked
        self.close_connections = close_connections  # "Connection: close" on every response
        self.silent_close = silent_close  # drop the connection after each POST without saying so
        self.max_body = max_body  # like nimbus' 6 MB limit: 413 + drop the connection, body unread
        self.posted = []
        self.next_clients = []
        self.cond = threading.Condition()
        self.closed = False
        self.pipes = None  # set by run(): {"stdout": fd, "stderr": fd}
        self.output = {"stdout": bytearray(), "stderr": bytearray()}
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                # headers and body go out in separate writes; without this,
                # Nagle + delayed ACK adds ~40 ms per exchange to every test
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self):
                if self.path != PREFIX + "/invocation/next":
                    return self._reply(404, b'{"errorType":"NotFound"}')
                event = api._take_event(self.client_address)
                if event is None:  # shutting down
                    return self._reply(500, b"")
                payload = event["payload"]
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                headers = {
                    "Lambda-Runtime-Aws-Request-Id": event["id"],
                    "Lambda-Runtime-Deadline-Ms": str(event.get("deadline_ms", int(time.time() * 1000) + 30000)),
                    "Lambda-Runtime-Invoked-Function-Arn": event.get(
                        "arn", "arn:aws:lambda:us-east-1:000000000000:function:fn"
                    ),
                    "Content-Type": "application/json",
                }
                for key, name in (
                    ("trace_id", "Lambda-Runtime-Trace-Id"),
                    ("client_context", "Lambda-Runtime-Client-Context"),
                    ("cognito_identity", "Lambda-Runtime-Cognito-Identity"),
                ):
                    if key in event:
                        headers[name] = event[key]
                self._reply(200, body, headers)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                if api.max_body is not None and length > api.max_body:
                    self.rfile.read(api.max_body)
                    request_id = self.path.split("/")[-2]
                    api._record("too_large", request_id, self.headers, b"", self.client_address)
                    self.close_connection = True
                    return self._reply(413, b'{"errorType":"RequestEntityTooLarge"}')
                body = self.rfile.read(length)
                m = re.fullmatch(re.escape(PREFIX) + r"/invocation/([^/]+)/(response|error)", self.path)
                if m:
                    kind, request_id = m.group(2), m.group(1)
                elif self.path == PREFIX + "/init/error":
                    kind, request_id = "init_error", None
                else:
                    return self._reply(404, b'{"errorType":"NotFound"}')
                api._record(kind, request_id, self.headers, body, self.client_address)
                self._reply(202, b'{"status":"OK"}')
                if api.silent_close:
                    self.close_connection = True  # the client finds a dead keep-alive socket

            def _reply(self, status, body, headers=None):
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                if api.close_connections:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                if api.chunked and status == 200:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    half = len(body) // 2
                    for part in (body[:half], body[half:]):
                        if part:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = "127.0.0.1:%d" % self.server.server_address[1]
        # short poll interval: shutdown() waits up to one interval
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def _take_event(self, client):
        with self.cond:
            while not self.events and not self.closed:
                self.cond.wait()
            if self.closed:
                return None
            self.next_clients.append(client)
            return self.events.pop(0)

    def drain(self):
        """Read whatever the runtime has written so far (non-blocking)."""
        with self.cond:
            for name, fd in (self.pipes or {}).items():
                while True:
                    try:
                        chunk = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    if not chunk:
                        break
                    self.output[name] += chunk
            return self.output["stdout"].decode(errors="replace"), self.output["stderr"].decode(errors="replace")

    def _record(self, kind, request_id, headers, body, client):
        stdout, stderr = self.drain()
        with self.cond:
            headers = {k.lower(): v for k, v in headers.items()}
            self.posted.append(Posted(kind, request_id, headers, body, client, stdout, stderr))
            self.cond.notify_all()

    def wait_posted(self, count, proc, timeout=TIMEOUT, until=None):
        deadline = time.monotonic() + timeout
        done = until or (lambda posted: len(posted) >= count)
        with self.cond:
            while not done(self.posted):
                if proc.poll() is not None and proc.returncode is not None:
                    # give an in-flight POST a moment to land
                    self.cond.wait(0.2)
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.cond.wait(min(remaining, 0.05))
            return list(self.posted)

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()


class Run:
    def __init__(self, api, proc, stdout, stderr):
        self.posted = api.posted
        self.next_clients = api.next_clients
        self.returncode = proc.returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def results(self):
        return [p for p in self.posted if p.kind != "init_error"]

    @property
    def init_error(self):
        errors = [p for p in self.posted if p.kind == "init_error"]
        assert len(errors) == 1, (self.posted, self.stdout, self.stderr)
        return errors[0]


def event(payload, request_id=None, **extra):
    ev = {"id": request_id or "req-%d" % (time.monotonic_ns() % 10**9), "payload": payload}
    ev.update(extra)
    return ev


def write_files(root, files):
    for name, content in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(content).lstrip("\n"))


def run(lang, tmp_path, files, handler, events=(), env=None, expect=None, server_opts=None, kill=True, until=None):
    """Run one runtime process until it has posted `expect` results (default:
    one per event, or a single init error when no events are given) or
    until(posted) is true, then stop it (kill=False: wait for it to exit by
    itself). Returns a Run with everything observed."""
    code_dir = str(tmp_path / "code")
    os.makedirs(code_dir, exist_ok=True)
    write_files(code_dir, files)
    events = list(events)
    api = FakeRuntimeApi(events, **(server_opts or {}))
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": code_dir,
        "AWS_LAMBDA_FUNCTION_NAME": "fn",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]abc",
    }
    full_env.update(env or {})
    if lang == "python":
        cmd = [sys.executable, "-S", PY_BOOTSTRAP]
    else:
        cmd = [NODE, NODE_BOOTSTRAP]

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    os.set_blocking(out_r, False)
    os.set_blocking(err_r, False)
    api.pipes = {"stdout": out_r, "stderr": err_r}
    proc = subprocess.Popen(cmd, cwd=code_dir, env=full_env, stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w)
    os.close(out_w)
    os.close(err_w)
    try:
        expected = expect if expect is not None else (len(events) or 1)
        api.wait_posted(expected, proc, until=until)
        if events and kill:
            # all done: the runtime is now parked in GET /next; stop it
            proc.kill()
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stdout, stderr = api.drain()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        api.close()
        os.close(out_r)
        os.close(err_r)
    result = Run(api, proc, stdout, stderr)
    assert len(api.posted) >= expected, "runtime posted %d of %d\nstdout:\n%s\nstderr:\n%s" % (
        len(api.posted),
        expected,
        stdout,
        stderr,
    )
    return result


# ===========================================================================
# Python
# ===========================================================================

PY_APP = """
import os

def handler(event, context):
    print("hello from handler", event.get("n"))
    return {"ok": True, "event": event, "trace": os.environ.get("_X_AMZN_TRACE_ID")}
"""


def test_python_success_two_invocations_one_connection(tmp_path):
    r = run(
        "python",
        tmp_path,
        {"app.py": PY_APP},
        "app.handler",
        [event({"n": 1}, "id-1", trace_id="Root=1-abc"), event({"n": 2}, "id-2")],
    )
    assert [p.kind for p in r.posted] == ["response", "response"]
    assert [p.request_id for p in r.posted] == ["id-1", "id-2"]
    assert r.posted[0].json() == {"ok": True, "event": {"n": 1}, "trace": "Root=1-abc"}
    assert r.posted[1].json()["trace"] is None  # cleared when the header is absent
    assert r.posted[0].headers["content-type"] == "application/json"
    # print() output was in the pipe before the response was posted
    assert "hello from handler 1\n" in r.posted[0].stdout
    assert "hello from handler 2\n" in r.posted[1].stdout
    # one persistent keep-alive connection for everything
    clients = set(r.next_clients) | {p.client for p in r.posted}
    assert len(clients) == 1, clients


def test_python_raised_error_shape(tmp_path):
    app = """
    def inner():
        raise ValueError("boom")

    def handler(event, context):
        print("before the error")
        inner()
    """
    r = run("python", tmp_path, {"app.py": app}, "app.handler", [event({}, "err-1")])
    (p,) = r.posted
    assert p.kind == "error"
    assert p.headers["lambda-runtime-function-error-type"] == "Unhandled"
    body = p.json()
    assert set(body) == {"errorMessage", "errorType", "requestId", "stackTrace"}
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "boom"
    assert body["requestId"] == "err-1"
    app_path = os.path.join(str(tmp_path), "code", "app.py")
    # awslambdaric: traceback.format_list entries, runtime frames stripped
    assert body["stackTrace"] == [
        '  File "%s", line 6, in handler\n    inner()\n' % app_path,
        '  File "%s", line 2, in inner\n    raise ValueError("boom")\n' % app_path,
    ]
    # logged to stderr before the post, AWS text format
    assert "before the error\n" in p.stdout
    assert "[ERROR] ValueError: boom\nTraceback (most recent call last):\n" in p.stderr
    assert '  File "%s", line 2, in inner' % app_path in p.stderr


@pytest.mark.parametrize(
    "files,handler,error_type,message",
    [
        ({}, "app.handler", "Runtime.ImportModuleError", "Unable to import module 'app': No module named 'app'"),
        (
            {"app.py": "import not_a_real_module_xyz\n"},
            "app.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'app': No module named 'not_a_real_module_xyz'",
        ),
        (
            {"app.py": "def handler(e, c): pass\n"},
            "app.nope",
            "Runtime.HandlerNotFound",
            "Handler 'nope' missing on module 'app'",
        ),
        (
            {"app.py": "def handler(e, c): pass\n"},
            "x",
            "Runtime.MalformedHandlerName",
            "Bad handler 'x': not enough values to unpack (expected 2, got 1)",
        ),
        (
            {"app.py": "def handler(e, c): pass\n"},
            "sys.handler",
            "Runtime.BuiltInModuleConflict",
            "Cannot use built-in module sys as a handler module",
        ),
        ({"app.py": "raise RuntimeError('init failed')\n"}, "app.handler", "RuntimeError", "init failed"),
    ],
)
def test_python_init_errors(tmp_path, files, handler, error_type, message):
    r = run("python", tmp_path, files, handler)
    p = r.init_error
    assert p.headers["lambda-runtime-function-error-type"] == error_type
    body = p.json()
    assert body["errorType"] == error_type
    assert body["errorMessage"] == message
    assert body["requestId"] == ""
    assert isinstance(body["stackTrace"], list)
    assert r.returncode not in (0, None)
    assert "[ERROR] %s: %s" % (error_type, message) in p.stderr


def test_python_syntax_error(tmp_path):
    r = run("python", tmp_path, {"app.py": "def handler(event, context)\n    return 1\n"}, "app.handler")
    body = r.init_error.json()
    assert body["errorType"] == "Runtime.UserCodeSyntaxError"
    assert body["errorMessage"].startswith("Syntax error in module 'app': ")
    assert "app.py, line 1" in body["errorMessage"]
    app_path = os.path.join(str(tmp_path), "code", "app.py")
    assert body["stackTrace"] == ['  File "%s" Line 1\n    def handler(event, context)\n' % app_path]
    assert r.returncode not in (0, None)


def test_python_context(tmp_path):
    app = """
    def handler(event, context):
        c = context
        return {
            "function_name": c.function_name,
            "function_version": c.function_version,
            "invoked_function_arn": c.invoked_function_arn,
            "memory_limit_in_mb": c.memory_limit_in_mb,
            "aws_request_id": c.aws_request_id,
            "log_group_name": c.log_group_name,
            "log_stream_name": c.log_stream_name,
            "identity": [c.identity.cognito_identity_id, c.identity.cognito_identity_pool_id],
            "client_context": [c.client_context.custom, c.client_context.env,
                               c.client_context.client.installation_id],
            "remaining": c.get_remaining_time_in_millis(),
        }
    """
    now = int(time.time() * 1000)
    r = run(
        "python",
        tmp_path,
        {"app.py": app},
        "app.handler",
        [
            event(
                {},
                "ctx-1",
                deadline_ms=now + 60000,
                arn="arn:aws:lambda:us-east-1:000000000000:function:fn:live",
                client_context=json.dumps({"custom": {"a": 1}, "env": {"b": 2}, "client": {"installation_id": "i"}}),
                cognito_identity=json.dumps({"cognitoIdentityId": "cid", "cognitoIdentityPoolId": "pool"}),
            )
        ],
    )
    body = r.posted[0].json()
    remaining = body.pop("remaining")
    assert 60000 - TIMEOUT * 1000 < remaining <= 60000  # counts down from the header
    assert body == {
        "function_name": "fn",
        "function_version": "$LATEST",
        "invoked_function_arn": "arn:aws:lambda:us-east-1:000000000000:function:fn:live",
        "memory_limit_in_mb": "256",  # a string, as awslambdaric
        "aws_request_id": "ctx-1",
        "log_group_name": "/aws/lambda/fn",
        "log_stream_name": "2024/01/01/[$LATEST]abc",
        "identity": ["cid", "pool"],
        "client_context": [{"a": 1}, {"b": 2}, "i"],
    }


def test_python_context_without_mobile_headers_and_expired_deadline(tmp_path):
    app = """
    def handler(event, context):
        return [context.client_context, context.identity.cognito_identity_id,
                context.get_remaining_time_in_millis()]
    """
    r = run(
        "python",
        tmp_path,
        {"app.py": app},
        "app.handler",
        [event({}, deadline_ms=int(time.time() * 1000) - 1000)],
    )
    assert r.posted[0].json() == [None, None, 0]


def test_python_none_return_and_raw_event_types(tmp_path):
    app = """
    def handler(event, context):
        return None if event == "nothing" else event
    """
    r = run(
        "python",
        tmp_path,
        {"app.py": app},
        "app.handler",
        [event("nothing"), event([1, "ü", None]), event("é")],
    )
    assert r.posted[0].body == b"null"
    assert r.posted[1].json() == [1, "ü", None]
    assert r.posted[2].json() == "é"


def test_python_non_serializable_return(tmp_path):
    app = """
    def handler(event, context):
        return {1, 2}
    """
    r = run("python", tmp_path, {"app.py": app}, "app.handler", [event({}, "m-1")])
    (p,) = r.posted
    assert p.kind == "error"
    body = p.json()
    assert body == {
        "errorMessage": "Unable to marshal response: Object of type set is not JSON serializable",
        "errorType": "Runtime.MarshalError",
        "requestId": "m-1",
        "stackTrace": [],
    }
    assert "[ERROR] Runtime.MarshalError: Unable to marshal response" in p.stderr


def test_python_decimal_and_bytes_return(tmp_path):
    app = """
    import decimal
    def handler(event, context):
        if event == "bytes":
            return b"\\x00raw"
        return {"int": decimal.Decimal("3"), "float": decimal.Decimal("1.5")}
    """
    r = run("python", tmp_path, {"app.py": app}, "app.handler", [event("dec"), event("bytes")])
    assert r.posted[0].json() == {"int": 3, "float": 1.5}
    assert r.posted[1].body == b"\x00raw"
    assert r.posted[1].headers["content-type"] == "application/unknown"


@pytest.mark.parametrize("handler", ["src/app.handler", "src.app.handler"])
def test_python_nested_module_paths(tmp_path, handler):
    files = {"src/app.py": "from src import helper\ndef handler(e, c):\n    return helper.VALUE\n", "src/helper.py": "VALUE = 7\n"}
    r = run("python", tmp_path, files, handler, [event({})])
    assert r.posted[0].json() == 7


def test_python_logging_like_aws(tmp_path):
    app = """
    import logging
    logging.basicConfig(level=logging.DEBUG)   # a no-op on AWS: root already has a handler
    logger = logging.getLogger()
    logger.info("init info is hidden")         # root level stays WARNING

    def handler(event, context):
        logger.warning("warned %s", 1)
        logging.getLogger("child").error("child error")
        return len(logging.getLogger().handlers)
    """
    r = run("python", tmp_path, {"app.py": app}, "app.handler", [event({}, "log-1")])
    p = r.posted[0]
    assert p.json() == 1
    assert re.search(r"^\[WARNING\]\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\tlog-1\twarned 1$", p.stdout, re.M), p.stdout
    assert re.search(r"^\[ERROR\]\t\S+Z\tlog-1\tchild error$", p.stdout, re.M)
    assert "init info is hidden" not in r.stdout + r.stderr


def test_python_log_level_env_and_lazy_import(tmp_path):
    app = """
    def handler(event, context):
        import logging                  # first imported during an invocation
        logging.getLogger().debug("dbg")
        return "ok"
    """
    r = run("python", tmp_path, {"app.py": app}, "app.handler", [event({}, "lv-1")], env={"AWS_LAMBDA_LOG_LEVEL": "debug"})
    assert re.search(r"^\[DEBUG\]\t\S+Z\tlv-1\tdbg$", r.posted[0].stdout, re.M), r.posted[0].stdout


def test_python_site_dirs_and_sys_path(tmp_path):
    site_dir = tmp_path / "site-packages"
    write_files(
        str(site_dir),
        {
            "sitepkg_mod.py": "VALUE = 'from site dir'\n",
            "extra.pth": "extra_dir\n",
            "extra_dir/pth_mod.py": "VALUE = 'from pth'\n",
        },
    )
    app = """
    import sys, os, sitepkg_mod, pth_mod
    def handler(event, context):
        return [sitepkg_mod.VALUE, pth_mod.VALUE, sys.path[0], "site" in sys.modules,
                any(p.endswith("/runtimes/python") for p in sys.path)]
    """
    r = run(
        "python",
        tmp_path,
        {"app.py": app},
        "app.handler",
        [event({})],
        env={"NIMBUS_PYTHON_PATH": os.pathsep.join(["", str(site_dir), str(site_dir / "extra_dir"), "/nonexistent"])},
    )
    # nimbus resolves .pth path entries itself; the client never imports `site`.
    assert r.posted[0].json() == ["from site dir", "from pth", str(tmp_path / "code"), False, False]


def test_python_no_site_import_when_no_site_dirs(tmp_path):
    app = """
    import sys
    def handler(event, context):
        return [m for m in ("site", "logging", "http.client", "json", "re", "traceback") if m in sys.modules]
    """
    r = run("python", tmp_path, {"app.py": app}, "app.handler", [event({"x": [1, 2]})])
    assert r.posted[0].json() == []  # the runtime itself stayed lean


HTTP_VARIANTS = [{"chunked": True}, {"close_connections": True}, {"silent_close": True}]


@pytest.mark.parametrize("opts", HTTP_VARIANTS)
def test_python_http_chunked_and_connection_close(tmp_path, opts):
    r = run(
        "python",
        tmp_path,
        {"app.py": PY_APP},
        "app.handler",
        [event({"n": 1}), event({"n": 2}), event({"n": 3})],
        server_opts=opts,
    )
    assert [p.json()["event"]["n"] for p in r.posted] == [1, 2, 3]


@pytest.mark.parametrize("lang", ["python", pytest.param("node", marks=needs_node)])
def test_oversized_response_does_not_kill_the_runtime(tmp_path, lang):
    files = {
        "app.py": "def handler(event, context):\n    return 'x' * event['size']\n",
        "index.js": "exports.handler = async (event) => 'x'.repeat(event.size);\n",
    }
    handler = "app.handler" if lang == "python" else "index.handler"
    r = run(
        lang,
        tmp_path,
        files,
        handler,
        [event({"size": 4_000_000}, "big"), event({"size": 3}, "small")],
        server_opts={"max_body": 1_000_000},
        until=lambda posted: any(p.request_id == "small" for p in posted),
    )
    # the oversized body is sent once (never re-sent), then the runtime goes on
    assert [(p.kind, p.request_id) for p in r.posted] == [("too_large", "big"), ("response", "small")]
    assert r.posted[-1].json() == "xxx"


def test_python_large_event(tmp_path):
    app = "def handler(event, context):\n    return len(event['data'])\n"
    r = run("python", tmp_path, {"app.py": app}, "app.handler", [event({"data": "x" * 3_000_000})])
    assert r.posted[0].json() == 3_000_000


# ===========================================================================
# Node.js
# ===========================================================================

LOG_LINE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t%s\t%s\t%s$"


@needs_node
def test_node_cjs_success_console_format_one_connection(tmp_path):
    app = """
    console.log('loading');
    exports.handler = async (event, context) => {
      console.log('hello %s', 'world', {a: 1});
      console.warn('careful');
      console.error('bad');
      process.stdout.write('direct write\\n');
      return { ok: true, event, trace: process.env._X_AMZN_TRACE_ID || null };
    };
    """
    r = run(
        "node",
        tmp_path,
        {"index.js": app},
        "index.handler",
        [event({"n": 1}, "n-1", trace_id="Root=1-xyz"), event({"n": 2}, "n-2")],
    )
    assert [p.kind for p in r.posted] == ["response", "response"]
    assert r.posted[0].json() == {"ok": True, "event": {"n": 1}, "trace": "Root=1-xyz"}
    assert r.posted[1].json()["trace"] is None
    out = r.posted[0].stdout  # snapshot taken when the response arrived
    assert re.search(LOG_LINE % ("undefined", "INFO", "loading"), out, re.M), out
    assert re.search(LOG_LINE % ("n-1", "INFO", re.escape("hello world { a: 1 }")), out, re.M), out
    assert re.search(LOG_LINE % ("n-1", "WARN", "careful"), out, re.M)
    assert re.search(LOG_LINE % ("n-1", "ERROR", "bad"), out, re.M)
    assert "direct write\n" in out  # process.stdout made synchronous
    clients = set(r.next_clients) | {p.client for p in r.posted}
    assert len(clients) == 1, clients


@needs_node
def test_node_esm_mjs(tmp_path):
    app = """
    import { sep } from 'node:path';
    export const handler = async (event) => ({ esm: true, sep, got: event });
    """
    r = run("node", tmp_path, {"index.mjs": app}, "index.handler", [event({"x": 1})])
    assert r.posted[0].json() == {"esm": True, "sep": "/", "got": {"x": 1}}


@needs_node
def test_node_esm_type_module_js(tmp_path):
    files = {
        "package.json": '{"type": "module"}',
        "src/app.js": "export async function handler(e) { return { module: import.meta.url.startsWith('file://') }; }\n",
    }
    r = run("node", tmp_path, files, "src/app.handler", [event({})])
    assert r.posted[0].json() == {"module": True}


@needs_node
def test_node_cjs_extension_and_nested_property(tmp_path):
    files = {"lib/mod.cjs": "module.exports = { api: { handler: async () => 'nested' } };\n"}
    r = run("node", tmp_path, files, "lib/mod.api.handler", [event({})])
    assert r.posted[0].json() == "nested"


@needs_node
def test_node_callback_styles(tmp_path):
    app = """
    exports.cb = (event, context, callback) => {
      setTimeout(() => {}, 60000);      // callbackWaitsForEmptyEventLoop treated as false
      setImmediate(() => callback(null, { cb: event.n }));
    };
    exports.cbErr = (event, context, callback) => callback('plain string error');
    exports.succeed = (event, context) => context.succeed('via succeed');
    exports.noReply = (event, context) => { return 'ignored, as on AWS'; };
    exports.undef = async () => undefined;
    exports.twice = (event, context, callback) => { callback(null, 1); callback(null, 2); };
    """
    results = {}
    for handler, expected in [
        ("cb", {"cb": 5}),
        ("succeed", "via succeed"),
        ("noReply", None),
        ("undef", None),
        ("twice", 1),
    ]:
        t0 = time.monotonic()
        r = run("node", tmp_path / handler, {"index.js": app}, "index." + handler, [event({"n": 5})])
        results[handler] = r.posted[0].json()
        assert r.posted[0].kind == "response"
        assert results[handler] == expected, (handler, r.stdout, r.stderr)
        assert time.monotonic() - t0 < TIMEOUT  # did not wait for the 60 s timer
    r = run("node", tmp_path / "cbErr", {"index.js": app}, "index.cbErr", [event({})])
    assert r.posted[0].kind == "error"
    assert r.posted[0].json() == {"errorType": "string", "errorMessage": "plain string error", "trace": []}


@needs_node
def test_node_async_handler_that_never_settles(tmp_path):
    app = "exports.handler = async () => new Promise(() => {});\n"
    r = run("node", tmp_path, {"index.js": app}, "index.handler", [event({}, "ns-1"), event({}, "ns-2")])
    assert [p.kind for p in r.posted] == ["error", "error"]  # and the runtime carries on
    body = r.posted[0].json()
    assert body["errorType"] == "Runtime.NodeJsExit"
    assert body["errorMessage"].startswith("The Lambda runtime client detected an unexpected Node.js exit code.")


@needs_node
def test_node_thrown_and_rejected_errors(tmp_path):
    app = """
    class MyError extends Error { constructor(m) { super(m); this.name = 'MyError'; } }
    exports.sync = () => { throw new TypeError('sync boom'); };
    exports.async = async () => { throw new MyError('async boom'); };
    """
    r = run("node", tmp_path / "a", {"index.js": app}, "index.sync", [event({}, "e-1")])
    (p,) = r.posted
    assert p.kind == "error"
    assert p.headers["lambda-runtime-function-error-type"] == "Unhandled"
    body = p.json()
    assert set(body) == {"errorType", "errorMessage", "trace"}
    assert body["errorType"] == "TypeError"
    assert body["errorMessage"] == "sync boom"
    assert body["trace"][0] == "TypeError: sync boom"
    assert any("index.js" in line for line in body["trace"][1:])
    assert re.search(LOG_LINE % ("e-1", "ERROR", r"Invoke Error \t\{.*\"errorType\":\"TypeError\".*"), p.stdout, re.M), p.stdout

    r = run("node", tmp_path / "b", {"index.js": app}, "index.async", [event({})])
    body = r.posted[0].json()
    assert (body["errorType"], body["errorMessage"]) == ("MyError", "async boom")


@needs_node
def test_node_unserializable_result(tmp_path):
    app = "exports.handler = async () => { const a = {}; a.self = a; return a; };\n"
    r = run("node", tmp_path, {"index.js": app}, "index.handler", [event({})])
    body = r.posted[0].json()
    assert r.posted[0].kind == "error"
    assert (body["errorType"], body["errorMessage"]) == ("Error", "Unable to stringify response body")


@needs_node
def test_node_uncaught_exception_during_invoke(tmp_path):
    app = "exports.handler = () => { setTimeout(() => { throw new Error('late'); }, 1); };\n"
    r = run("node", tmp_path, {"index.js": app}, "index.handler", [event({}, "u-1")], kill=False)
    (p,) = r.posted
    assert p.kind == "error" and p.request_id == "u-1"
    assert p.json()["errorMessage"] == "late"
    assert r.returncode == 129


@needs_node
def test_node_uncaught_exception_between_invocations(tmp_path):
    app = "exports.handler = async () => { setTimeout(() => { throw new Error('later'); }, 50); return 'done'; };\n"
    r = run("node", tmp_path, {"index.js": app}, "index.handler", [event({}, "b-1")], kill=False)
    assert [(p.kind, p.request_id) for p in r.posted] == [("response", "b-1")]  # nothing else posted
    assert r.returncode == 129
    assert re.search(LOG_LINE % ("b-1", "ERROR", r"Uncaught Exception \t\{.*later.*"), r.stdout, re.M), r.stdout


@needs_node
def test_node_context(tmp_path):
    app = """
    exports.handler = async (event, context) => ({
      functionName: context.functionName,
      functionVersion: context.functionVersion,
      invokedFunctionArn: context.invokedFunctionArn,
      memoryLimitInMB: context.memoryLimitInMB,
      awsRequestId: context.awsRequestId,
      logGroupName: context.logGroupName,
      logStreamName: context.logStreamName,
      identity: context.identity,
      clientContext: context.clientContext,
      waits: context.callbackWaitsForEmptyEventLoop,
      remaining: context.getRemainingTimeInMillis(),
    });
    """
    now = int(time.time() * 1000)
    r = run(
        "node",
        tmp_path,
        {"index.js": app},
        "index.handler",
        [
            event(
                {},
                "c-1",
                deadline_ms=now + 60000,
                arn="arn:aws:lambda:us-east-1:000000000000:function:fn",
                cognito_identity='{"cognitoIdentityId":"cid","cognitoIdentityPoolId":"pool"}',
                client_context='{"custom":{"k":"v"}}',
            )
        ],
    )
    body = r.posted[0].json()
    remaining = body.pop("remaining")
    assert 60000 - TIMEOUT * 1000 < remaining <= 60000  # counts down from the header
    assert body == {
        "functionName": "fn",
        "functionVersion": "$LATEST",
        "invokedFunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
        "memoryLimitInMB": "256",
        "awsRequestId": "c-1",
        "logGroupName": "/aws/lambda/fn",
        "logStreamName": "2024/01/01/[$LATEST]abc",
        "identity": {"cognitoIdentityId": "cid", "cognitoIdentityPoolId": "pool"},
        "clientContext": {"custom": {"k": "v"}},
        "waits": True,
    }


@needs_node
@pytest.mark.parametrize(
    "files,handler,error_type,message",
    [
        ({}, "index.handler", "Runtime.ImportModuleError", "Error: Cannot find module 'index'\nRequire stack:\n- "),
        (
            {"index.js": "require('not-a-real-pkg-xyz');\n"},
            "index.handler",
            "Runtime.ImportModuleError",
            "Error: Cannot find module 'not-a-real-pkg-xyz'\nRequire stack:\n- ",
        ),
        ({"index.js": "exports.handler = () => 1;\n"}, "index.nope", "Runtime.HandlerNotFound", "index.nope is undefined or not exported"),
        ({"index.js": "exports.handler = 5;\n"}, "index.handler", "Runtime.HandlerNotFound", "index.handler is not a function"),
        ({"index.js": "exports.handler = () => 1;\n"}, "index", "Runtime.MalformedHandlerName", "Bad handler"),
        ({"index.js": "exports.handler = () => {;\n"}, "index.handler", "Runtime.UserCodeSyntaxError", "SyntaxError: "),
        ({"index.mjs": "export const handler = (;\n"}, "index.handler", "Runtime.UserCodeSyntaxError", "SyntaxError: "),
        ({"index.js": "throw new RangeError('init failed');\n"}, "index.handler", "RangeError", "init failed"),
    ],
)
def test_node_init_errors(tmp_path, files, handler, error_type, message):
    r = run("node", tmp_path, files, handler)
    p = r.init_error
    assert p.headers["lambda-runtime-function-error-type"] == error_type
    body = p.json()
    assert body["errorType"] == error_type
    assert body["errorMessage"].startswith(message), body["errorMessage"]
    assert isinstance(body["trace"], list) and body["trace"][0].startswith(error_type)
    assert r.returncode not in (0, None)
    assert re.search(LOG_LINE % ("undefined", "ERROR", r"Uncaught Exception \t\{.*"), p.stdout, re.M), p.stdout


@needs_node
def test_node_log_level_filter(tmp_path):
    app = "exports.handler = async () => { console.debug('dbg'); console.info('inf'); console.error('err'); return 1; };\n"
    r = run("node", tmp_path, {"index.js": app}, "index.handler", [event({}, "l-1")], env={"AWS_LAMBDA_LOG_LEVEL": "error"})
    out = r.posted[0].stdout
    assert "dbg" not in out and "inf" not in out
    assert re.search(LOG_LINE % ("l-1", "ERROR", "err"), out, re.M)


@needs_node
@pytest.mark.parametrize("opts", HTTP_VARIANTS)
def test_node_http_chunked_and_connection_close(tmp_path, opts):
    app = "exports.handler = async (e) => e.n;\n"
    r = run("node", tmp_path, {"index.js": app}, "index.handler", [event({"n": i}) for i in range(3)], server_opts=opts)
    assert [p.json() for p in r.posted] == [0, 1, 2]
