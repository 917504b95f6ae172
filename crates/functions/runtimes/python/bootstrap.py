"""nimbus Python runtime client (embedded in the nimbus binary).

nimbus starts this file once per execution environment as

    <python3 binary> -S <runtime dir>/bootstrap.py      (cwd = function code dir)

and it then behaves like AWS's Python runtime client (awslambdaric): it
imports the handler named by _HANDLER, then loops on the Lambda Runtime API
at http://$AWS_LAMBDA_RUNTIME_API/2018-06-01 (GET invocation/next, POST
invocation/{id}/response or /error, POST init/error on import failure).

Environment read here:
  AWS_LAMBDA_RUNTIME_API       host:port of the Runtime API (default 127.0.0.1:9001)
  _HANDLER                     "module.function"; module may be "pkg.mod" or "src/app"
  LAMBDA_TASK_ROOT             code dir, put first on sys.path (default: cwd)
  NIMBUS_PYTHON_PATH           os.pathsep-separated directories to append to sys.path: the
                               interpreter's site-packages and what their .pth files add,
                               resolved by nimbus (needed because of -S); may be empty
  AWS_LAMBDA_LOG_LEVEL         optional root logger level (as AWS)
  AWS_LAMBDA_FUNCTION_NAME / _VERSION / _MEMORY_SIZE, AWS_LAMBDA_LOG_GROUP_NAME,
  AWS_LAMBDA_LOG_STREAM_NAME   copied into the context object

Start-up time matters (this runs on every cold start), so the module imports
as little as possible (measured with python3.11 -S: `-c pass` 5.8 ms,
`import http.client` +22 ms, `import json` +6 ms, `import logging` +10 ms):
  - HTTP is spoken over the C-level `_socket` module instead of http.client
    (which pulls in email.*, ssl, ...);
  - JSON goes through the `_json` C accelerator that `json` itself uses,
    without importing the `json` package (and with it `re`, `enum`, ...);
    any unusual input falls back to the real `json` module;
  - `logging` is only configured if and when user code imports it;
  - `traceback` is imported only on the error path.
"""

import sys
import os
import time
import _socket  # the C module; `socket` alone costs ~2-3 ms (enum, selectors)


# --------------------------------------------------------------------------
# JSON without importing the json package
# --------------------------------------------------------------------------
#
# json.loads/json.dumps are thin Python wrappers around _json.make_scanner /
# _json.make_encoder; calling those directly gives byte-identical results.
# Anything the fast path does not handle (a decode error, a non-serialisable
# object, a _json API change in some future Python) is simply redone with the
# real json module, so errors and messages are exactly json's.

class _JsonScanContext:
    # The attributes _json.make_scanner reads from a json.JSONDecoder.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__
    memo = {}


try:
    import _json  # the C half of the json package (always built in CPython)

    _json_scan = _json.make_scanner(_JsonScanContext)
except Exception:  # another implementation: use the json module throughout
    _json = _json_scan = None
_JSON_WS = " \t\n\r"


def _json_loads(data):
    """json.loads(data)."""
    if _fast_json:
        try:
            text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
            start = len(text) - len(text.lstrip(_JSON_WS))
            value, end = _json_scan(text, start)
            if not text[end:].strip(_JSON_WS):
                return value
        except Exception:
            pass
    import json

    return json.loads(data)


def _json_dumps(obj, ensure_ascii=True, default=None):
    """json.dumps(obj, ensure_ascii=ensure_ascii, default=default)."""
    if _fast_json:
        try:
            encode_string = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
            # (markers, default, encoder, indent, key_separator, item_separator,
            #  sort_keys, skipkeys, allow_nan): json.dumps' defaults
            encoder = _json.make_encoder({}, default, encode_string, None, ": ", ", ", False, False, True)
            return "".join(encoder(obj, 0))
        except Exception:
            pass
    import json

    return json.dumps(obj, ensure_ascii=ensure_ascii, default=default)


def _check_fast_json():
    # Guard against a future _json whose signatures changed without raising.
    try:
        sample = '{"a": [1, 2.5, "\\u00fc\\n", null, true, false, {}], "b": "x"}'
        value = {"a": [1, 2.5, "\u00fc\n", None, True, False, {}], "b": "x"}
        return _json_scan(sample, 0) == (value, len(sample)) and "".join(
            _json.make_encoder({}, None, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True)(value, 0)
        ) == sample
    except Exception:
        return False


_fast_json = _check_fast_json()


# --------------------------------------------------------------------------
# sys.path / stdio set-up (must happen before the handler is imported)
# --------------------------------------------------------------------------

def _setup_sys_path():
    # Python put this script's directory (the nimbus runtime dir) at
    # sys.path[0]; drop it so it can never shadow user modules.
    here = os.path.dirname(os.path.realpath(__file__))
    if sys.path and sys.path[0] == here:
        del sys.path[0]

    # -S skipped `site`, so add the interpreter's site-packages explicitly
    # (nimbus computes them once with the real interpreter). addsitedir also
    # processes .pth files, which some packages rely on. It appends, so these
    # end up after the task root, as on AWS.
    # Skip missing ones (typically the user site dir): site.main() does the same,
    # and every missing sys.path entry costs a stat on each import.
    # nimbus resolved the interpreter's site directories, and the directories their .pth files
    # add, once: appending them costs nothing, where `import site` + .pth processing costs ~20 ms
    # per start. (Code lines in .pth files are not run, as under -S.)
    sys.path.extend(d for d in os.environ.get("NIMBUS_PYTHON_PATH", "").split(os.pathsep) if d and os.path.isdir(d))

    # Same precedence as the managed runtime: task root, then layers.
    front = [os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()]
    layer_site = "/opt/python/lib/python%d.%d/site-packages" % sys.version_info[:2]
    for d in (layer_site, "/opt/python"):
        if os.path.isdir(d):
            front.append(d)
    sys.path[:0] = front

    # site.main() would also have defined exit()/quit() (used by some scripts
    # and REPL-style code); they exist on AWS, so provide them (~0.1 ms).
    import builtins
    import _sitebuiltins

    for name, eof in (("exit", "Ctrl-D (i.e. EOF)"), ("quit", "Ctrl-D (i.e. EOF)")):
        if not hasattr(builtins, name):
            setattr(builtins, name, _sitebuiltins.Quitter(name, eof))


def _setup_stdio():
    # stdout to a pipe is block-buffered by default; prints would reach nimbus
    # late and out of order with stderr. AWS wraps both streams to flush on
    # every write; line buffering gives the same ordering for line-oriented
    # output, and we flush explicitly before every post (see _flush_stdio).
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except Exception:
            pass


def _flush_stdio():
    # nimbus drains the output pipes right after it receives the response to
    # build the log tail, so everything printed during the invocation must be
    # in the pipe before we post. Streams may have been replaced/closed by
    # user code: never let that break the runtime.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


# --------------------------------------------------------------------------
# Logging: configured lazily, exactly like AWS once it is configured
# --------------------------------------------------------------------------

_current_request_id = None  # read by the logging filter; "" before first invoke


def _setup_logging(logging):
    """Install AWS's root handler on the `logging` module passed in.

    AWS puts a handler on the root logger before user code runs; one visible
    consequence is that logging.basicConfig() in user code is a no-op, so it
    must be installed before the user module calls it (see _LoggingImportHook).
    The root level stays WARNING unless AWS_LAMBDA_LOG_LEVEL says otherwise.
    """
    logging.Formatter.converter = time.gmtime

    class LambdaLoggerHandler(logging.Handler):
        def emit(self, record):
            try:
                msg = self.format(record)
                if not msg.endswith("\n"):  # exc_info text comes after the format's "\n"
                    msg += "\n"
                sys.stdout.write(msg)  # AWS logs to stdout (looked up each time: may be replaced)
            except Exception:
                self.handleError(record)

    class LambdaLoggerFilter(logging.Filter):
        def filter(self, record):
            record.aws_request_id = _current_request_id or ""
            return True

    handler = LambdaLoggerHandler()
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
            "%Y-%m-%dT%H:%M:%S",
        )
    )
    handler.addFilter(LambdaLoggerFilter())
    root = logging.getLogger()
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    if level in logging._nameToLevel:
        root.setLevel(level)
    root.addHandler(handler)


class _LoggingImportHook:
    """sys.meta_path finder that configures `logging` the moment it is imported.

    Importing logging costs ~10 ms here (threading, traceback, string, ...),
    which would double the runtime's own start-up for handlers that never log.
    So instead of importing it eagerly we wrap the real loader: after the
    module body has run (and before the importing code gets it back) the AWS
    handler is installed. Functions that do import logging see exactly what
    they would see on AWS.
    """

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "logging":
            return None
        for finder in sys.meta_path:
            if finder is cls or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        real_exec_module = getattr(loader, "exec_module", None)
        if real_exec_module is None:
            return spec

        def exec_module(module):
            real_exec_module(module)
            try:
                sys.meta_path.remove(cls)  # one-shot
            except ValueError:
                pass
            try:
                _setup_logging(module)
            except Exception:
                pass  # never break the user's `import logging`

        loader.exec_module = exec_module  # instance attribute shadows the method
        return spec


def _install_logging():
    if "logging" in sys.modules:  # e.g. imported by a .pth file from the site dirs
        _setup_logging(sys.modules["logging"])
    else:
        sys.meta_path.insert(0, _LoggingImportHook)


# --------------------------------------------------------------------------
# Minimal HTTP/1.1 client over one persistent connection
# --------------------------------------------------------------------------

class _ConnectionClosed(Exception):
    pass


class _RuntimeApiClient:
    """Just enough HTTP/1.1 for the Runtime API: one keep-alive connection,
    Content-Length or chunked bodies. A kept-alive connection the server has
    closed in the meantime is detected before reuse and replaced (urllib3's
    rule); a GET that still fails on a reused connection without any answer
    is retried once on a fresh one. POSTs are never re-sent: the API may have
    acted on them (e.g. answered 413 to an oversized response and dropped
    the connection while the body was still being written)."""

    def __init__(self, address):
        host, _, port = address.rpartition(":")
        if not host:  # "9001" alone
            host, port = "127.0.0.1", address
        self._host_header = address.encode("latin-1")
        self._host = host[1:-1] if host.startswith("[") else host  # [::1]:9001
        self._port = int(port)
        self._sock = None
        self._buf = bytearray()
        self._got_bytes = False  # any response byte seen for the current request?

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self._buf = bytearray()

    def _connect(self):
        error = None
        # host as bytes: a str host makes getaddrinfo import encodings.idna (~1 ms)
        for family, socktype, proto, _, sockaddr in _socket.getaddrinfo(
            self._host.encode("ascii", "ignore"), self._port, 0, _socket.SOCK_STREAM
        ):
            sock = _socket.socket(family, socktype, proto)
            try:
                sock.connect(sockaddr)
            except OSError as e:
                sock.close()
                error = e
                continue
            # Requests are written with a single sendall, but don't let Nagle +
            # delayed ACK ever add 40 ms to an invocation.
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            return sock
        raise error or OSError("cannot resolve %s" % self._host)

    def request(self, method, path, body=b"", headers=()):
        """Returns (status, {lower-case header: value}, body bytes)."""
        lines = [b"%s %s HTTP/1.1" % (method.encode(), path.encode("utf-8")), b"Host: " + self._host_header]
        if method != "GET":
            lines.append(b"Content-Length: %d" % len(body))
        for name, value in headers:
            lines.append(("%s: %s" % (name, value)).encode("latin-1", "replace"))
        data = b"\r\n".join(lines) + b"\r\n\r\n" + body

        for attempt in (1, 2):
            if self._sock is not None and self._dropped():
                self.close()
            reused = self._sock is not None
            if not reused:
                self._sock = self._connect()
            self._got_bytes = False
            try:
                self._sock.sendall(data)
                return self._read_response(method)
            except (OSError, _ConnectionClosed):
                self.close()
                if attempt == 2 or not reused or self._got_bytes or method != "GET":
                    raise

    def _dropped(self):
        """True when the idle connection has been closed (or reset) by the server."""
        if self._buf:
            return True  # unsolicited bytes between requests: don't trust it
        try:
            return self._sock.recv(1, _socket.MSG_PEEK | _socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False  # nothing to read: alive
        except OSError:
            return True

    def _recv(self):
        chunk = self._sock.recv(262144)
        if not chunk:
            raise _ConnectionClosed("connection closed by the Runtime API")
        self._got_bytes = True
        self._buf += chunk

    def _readline(self):
        while True:
            i = self._buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self._buf[:i])
                del self._buf[: i + 2]
                return line
            self._recv()

    def _read_exact(self, n):
        while len(self._buf) < n:
            self._recv()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _read_response(self, method):
        while True:
            status_line = self._readline()
            parts = status_line.split(None, 2)
            version, status = parts[0], int(parts[1])
            headers = {}
            while True:
                line = self._readline()
                if not line:
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            if not 100 <= status < 200:  # skip "100 Continue" and friends
                break

        keep_alive = headers.get("connection", "").lower() != "close" and version != b"HTTP/1.0"
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                size = int(self._readline().split(b";", 1)[0], 16)
                if size == 0:
                    while self._readline():  # trailers
                        pass
                    break
                body += self._read_exact(size)
                self._read_exact(2)  # CRLF after each chunk
            body = bytes(body)
        elif "content-length" in headers:
            body = self._read_exact(int(headers["content-length"]))
        else:  # body delimited by connection close
            try:
                while True:
                    self._recv()
            except _ConnectionClosed:
                pass
            body, keep_alive = bytes(self._buf), False
            self._buf = bytearray()
        if not keep_alive:
            self.close()
        return status, headers, body


# --------------------------------------------------------------------------
# Errors (same types, messages and JSON shape as awslambdaric)
# --------------------------------------------------------------------------

class _FaultException(Exception):
    IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
    BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
    MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
    USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
    MARSHAL_ERROR = "Runtime.MarshalError"
    UNMARSHAL_ERROR = "Runtime.UnmarshalError"
    CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

    def __init__(self, exception_type, msg, trace=None):
        super().__init__(msg)
        self.exception_type = exception_type
        self.msg = msg
        self.trace = trace


def _make_error(message, error_type, stack_trace, request_id=None):
    return {
        "errorMessage": message or "",
        "errorType": error_type or "",
        "requestId": request_id if request_id is not None else "",
        "stackTrace": stack_trace or [],
    }


def _error_from_exception(exc, request_id=None):
    """Error document for an arbitrary user exception, as awslambdaric builds
    it: frames formatted with traceback.format_list, minus this file's own
    leading frames (the runtime's call into the handler)."""
    import traceback  # error path only: ~5 ms to import

    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(exc.__traceback__)]
    own = __file__
    while frames and frames[0][0] == own:
        del frames[0]
    # format_list on plain tuples (not FrameSummary) gives AWS's format, i.e.
    # without the 3.11 "^^^^" column markers.
    return _make_error(str(exc), type(exc).__name__, traceback.format_list(frames), request_id)


def _log_error(error):
    """`[ERROR] Type: message` + traceback, like awslambdaric's text log_error.

    (AWS joins the lines with "\\r" and indents with U+00A0 so CloudWatch keeps
    one event; locally plain newlines and spaces are what a reader wants.)"""
    description = "[ERROR]"
    if error.get("errorType"):
        description += " " + error["errorType"]
    if error.get("errorMessage"):
        if error.get("errorType"):
            description += ":"
        description += " " + error["errorMessage"]
    lines = [description, "Traceback (most recent call last):"]
    for element in error.get("stackTrace") or ():
        lines.extend(element.splitlines() if element else [""])
    try:
        sys.stderr.write("\n".join(lines) + "\n")
    except Exception:
        pass


# --------------------------------------------------------------------------
# Handler loading
# --------------------------------------------------------------------------

def _get_handler(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise _FaultException(
            _FaultException.MALFORMED_HANDLER_NAME, "Bad handler '{}': {}".format(handler, str(e))
        )

    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise _FaultException(
                _FaultException.BUILT_IN_MODULE_CONFLICT,
                "Cannot use built-in module {} as a handler module".format(modname),
            )
        # __import__ + sys.modules instead of importlib.import_module: same
        # result without importing the importlib package (~1 ms).
        import_name = modname.replace("/", ".")
        __import__(import_name)
        module = sys.modules[import_name]
    except ImportError as e:
        raise _FaultException(
            _FaultException.IMPORT_MODULE_ERROR, "Unable to import module '{}': {}".format(modname, str(e))
        )
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise _FaultException(
            _FaultException.USER_CODE_SYNTAX_ERROR, "Syntax error in module '{}': {}".format(modname, str(e)), trace
        )

    try:
        return getattr(module, fname)
    except AttributeError:
        raise _FaultException(
            _FaultException.HANDLER_NOT_FOUND, "Handler '{}' missing on module '{}'".format(fname, modname)
        )


# --------------------------------------------------------------------------
# Context object (mirrors awslambdaric.lambda_context)
# --------------------------------------------------------------------------

class CognitoIdentity(object):
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __repr__(self):
        return "CognitoIdentity([cognito_identity_id=%s,cognito_identity_pool_id=%s])" % (
            self.cognito_identity_id,
            self.cognito_identity_pool_id,
        )


class Client(object):
    __slots__ = ["installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]


class ClientContext(object):
    __slots__ = ["custom", "env", "client"]


def _obj_from_dict(cls, d):
    if d is None:
        return None
    obj = cls()
    for field in cls.__slots__:
        setattr(obj, field, d.get(field) if isinstance(d, dict) else None)
    return obj


class LambdaContext(object):
    # Read once: the environment doesn't change between invocations.
    _env = os.environ

    def __init__(self, request_id, client_context, cognito_identity, deadline_ms, invoked_function_arn):
        env = self._env
        self.aws_request_id = request_id
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        # A string, exactly as awslambdaric exposes it (it reads the env var).
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = None

        self.client_context = _obj_from_dict(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = _obj_from_dict(Client, self.client_context.client)
        # AWS always provides an identity object; its fields are None when the
        # invocation carried no Cognito identity.
        self.identity = _obj_from_dict(CognitoIdentity, {})
        if cognito_identity is not None:
            self.identity.cognito_identity_id = cognito_identity.get("cognitoIdentityId")
            self.identity.cognito_identity_pool_id = cognito_identity.get("cognitoIdentityPoolId")

        self._epoch_deadline_time_in_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        delta_ms = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return delta_ms if delta_ms > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            "LambdaContext([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,function_name=%s,"
            "memory_limit_in_mb=%s,function_version=%s,invoked_function_arn=%s,client_context=%s,identity=%s])"
            % (
                self.aws_request_id,
                self.log_group_name,
                self.log_stream_name,
                self.function_name,
                self.memory_limit_in_mb,
                self.function_version,
                self.invoked_function_arn,
                self.client_context,
                self.identity,
            )
        )


def _parse_json_header(value, name):
    if not value:
        return None
    try:
        return _json_loads(value)
    except Exception as e:
        raise _FaultException(
            _FaultException.CONTEXT_UNMARSHAL_ERROR, "Unable to parse {} JSON: {}".format(name, str(e))
        )


# --------------------------------------------------------------------------
# Marshalling
# --------------------------------------------------------------------------

def _json_default(obj):
    # awslambdaric serialises decimal.Decimal (boto3's DynamoDB numbers) as a
    # JSON number. Checked by name so `decimal` is never imported by us.
    if type(obj).__name__ == "Decimal" and type(obj).__module__ == "decimal":
        if obj.is_nan():
            return float("nan")
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


def _marshal_response(response):
    if isinstance(response, bytes):  # raw bytes pass through, as on AWS
        return response, "application/unknown"
    try:
        try:
            # ensure_ascii=False as in the python3.12+ managed runtimes.
            return _json_dumps(response, False, _json_default).encode("utf-8"), "application/json"
        except UnicodeEncodeError:  # lone surrogates: fall back to \u escapes
            return _json_dumps(response, True, _json_default).encode("ascii"), "application/json"
    except Exception as e:
        raise _FaultException(_FaultException.MARSHAL_ERROR, "Unable to marshal response: {}".format(str(e)))


def _unmarshal_event(body, content_type):
    # RAPID sends application/json; anything else is handed over raw (AWS).
    if content_type and "json" not in content_type.lower():
        return body
    try:
        return _json_loads(body)
    except Exception as e:
        raise _FaultException(_FaultException.UNMARSHAL_ERROR, "Unable to unmarshal input: {}".format(str(e)))


# --------------------------------------------------------------------------
# Main loop
# --------------------------------------------------------------------------

_API_PREFIX = "/2018-06-01/runtime"
_ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"


def _post(client, path, body, headers):
    _flush_stdio()
    try:
        status, _, response_body = client.request("POST", _API_PREFIX + path, body, headers)
    except (OSError, _ConnectionClosed) as e:
        # E.g. a response over the 6 MB limit: the API answers 413 and drops
        # the connection while we are still sending. The invocation is settled
        # on the API's side either way; the next GET reconnects (and exits if
        # the API is really gone).
        sys.stderr.write("nimbus runtime: POST %s failed: %s\n" % (path, e))
        return
    if status >= 500:
        # Container error per the spec: non-recoverable, exit promptly.
        sys.stderr.write("nimbus runtime: POST %s -> %d, exiting\n" % (path, status))
        _flush_stdio()
        os._exit(1)
    if status >= 300:
        sys.stderr.write("nimbus runtime: POST %s -> %d: %s\n" % (path, status, response_body[:500].decode("utf-8", "replace")))


def _handle_invocation(client, request_handler, headers, body):
    request_id = headers.get("lambda-runtime-aws-request-id", "")
    error = None
    try:
        deadline = headers.get("lambda-runtime-deadline-ms")
        # No deadline header (not sent by RAPID, but be lenient): Lambda's max timeout.
        deadline_ms = int(deadline) if deadline else int(time.time() * 1000) + 900000
        context = LambdaContext(
            request_id,
            _parse_json_header(headers.get("lambda-runtime-client-context"), "Client Context"),
            _parse_json_header(headers.get("lambda-runtime-cognito-identity"), "Cognito Identity"),
            deadline_ms,
            headers.get("lambda-runtime-invoked-function-arn"),
        )
        event = _unmarshal_event(body, headers.get("content-type"))
        result, content_type = _marshal_response(request_handler(event, context))
    except _FaultException as e:
        error = _make_error(e.msg, e.exception_type, e.trace, request_id)
    except Exception as e:
        # BaseException (SystemExit, KeyboardInterrupt) is deliberately not
        # caught: the process exits, as on AWS (Runtime.ExitError).
        error = _error_from_exception(e, request_id)

    path = "/invocation/%s/" % request_id
    if error is not None:
        _log_error(error)
        _post(
            client,
            path + "error",
            _json_dumps(error).encode("utf-8"),
            (("Content-Type", "application/json"), (_ERROR_TYPE_HEADER, "Unhandled")),
        )
    else:
        _post(client, path + "response", result, (("Content-Type", content_type),))


def main():
    global _current_request_id

    _setup_sys_path()
    _setup_stdio()
    _install_logging()
    client = _RuntimeApiClient(os.environ.get("AWS_LAMBDA_RUNTIME_API") or "127.0.0.1:9001")

    # Init: import the handler; any failure is reported once and is fatal.
    try:
        request_handler = _get_handler(os.environ.get("_HANDLER", ""))
    except Exception as e:
        if isinstance(e, _FaultException):
            error = _make_error(e.msg, e.exception_type, e.trace)
        else:  # exception raised by the module body itself
            error = _error_from_exception(e)
        _log_error(error)
        try:
            _post(
                client,
                "/init/error",
                _json_dumps(error).encode("utf-8"),
                (("Content-Type", "application/json"), (_ERROR_TYPE_HEADER, error["errorType"])),
            )
        except Exception as post_error:
            sys.stderr.write("nimbus runtime: could not report init error: %s\n" % post_error)
        _flush_stdio()
        sys.exit(1)

    while True:
        try:
            status, headers, body = client.request("GET", _API_PREFIX + "/invocation/next")
        except Exception as e:
            sys.stderr.write("nimbus runtime: Runtime API unreachable (%s), exiting\n" % e)
            _flush_stdio()
            sys.exit(1)
        if status != 200:
            sys.stderr.write("nimbus runtime: GET invocation/next -> %d, exiting\n" % status)
            _flush_stdio()
            sys.exit(1)

        _current_request_id = headers.get("lambda-runtime-aws-request-id")
        trace_id = headers.get("lambda-runtime-trace-id")
        if trace_id:
            os.environ["_X_AMZN_TRACE_ID"] = trace_id
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)

        _handle_invocation(client, request_handler, headers, body)


if __name__ == "__main__":
    main()
