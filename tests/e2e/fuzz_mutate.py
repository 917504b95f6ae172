"""Hypothesis strategies for the fuzz pass: corpus requests mutated (headers, path, query, method,
framing, and bodies by fuzz_bodies.py), random requests, and HTTP-level garbage.

Every strategy yields a `Wire`: the exact bytes to write to a socket, and what the answer is held
to (see `Wire`). Values come from Hypothesis only, so a fixed seed replays the same requests.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field, replace
from urllib.parse import quote, urlencode

from hypothesis import strategies as st

from fuzz_bodies import (bytes_mutation, deep_body, mutate_cbor, mutate_form, mutate_json, mutate_xml, odd_json,
                         short_text)
from fuzz_corpus import SEEDS

# Sent once per request that carries it; a long poll is a deliberate wait, not a hang.
LONG_POLL = (b"WaitTimeSeconds", b"ReceiveMessage")


@dataclass
class Wire:
    data: bytes
    label: str  # the seed's service/protocol/operation, or the garbage's kind
    method: str
    service: str | None = None
    protocol: str | None = None
    operation: str | None = None
    # The answer's error must parse with `protocol`'s parser (else: with any protocol's).
    strict: bool = True
    # A well-formed HTTP request: it must be answered (garbage may just be hung up on).
    http_valid: bool = True
    # Still the seed's operation: a success must parse with the operation's output shape.
    same_op: bool = True
    # Write-side shutdown after sending: for requests that leave the server waiting for bytes.
    half_close: bool = False
    expect_status: int | None = None
    mutations: list[str] = field(default_factory=list)

    @property
    def timeout(self) -> float:
        return 25.0 if any(m in self.data for m in LONG_POLL) else 5.0


def assemble(method: str, path: str, headers: list[tuple[str, str]], body: bytes,
             version: str = "HTTP/1.1", length: bool = True) -> bytes:
    lines = [f"{method} {path} {version}".encode("latin-1", "replace")]
    for name, value in headers:
        lines.append(f"{name}: {value}".encode("utf-8", "surrogateescape"))
    if length and (body or method in ("POST", "PUT", "PATCH")):
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# ---------------------------------------------------------------------------
# Mutated corpus requests
# ---------------------------------------------------------------------------

EXTRA_HEADERS = {
    "Content-Encoding": ["gzip", "aws-chunked", "br, aws-chunked", ""],
    "Expect": ["100-continue"],
    "Range": ["bytes=5-1", "bytes=-0", "bytes=0-18446744073709551616", "bytes=a-b", "items=0-1", "bytes=0-1,3-4"],
    "Content-MD5": ["", "bm90LW1kNQ==", "!!!", "1B2M2Y8AsgTpgAmY7PhCfg=="],
    "X-Amz-Content-SHA256": ["STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                             "0" * 64, "zz", "UNSIGNED-PAYLOAD"],
    "x-amz-decoded-content-length": ["-1", "18446744073709551616", "3"],
    "x-amz-copy-source": ["fuzz-bucket", "/", "%zz/%", "fuzz-bucket/nope?versionId=1", "a" * 2000],
    "x-amz-checksum-crc32": ["AAAAAA==", "x", ""],
    "x-amz-checksum-sha256": ["AAAA", "=" * 44],
    "x-amz-tagging": ["a", "=&=", "a=%zz", "&".join(f"k{i}=v" for i in range(60))],
    "x-amz-meta-": ["\u00e9", "x" * 9000],
    "X-Amz-Invocation-Type": ["DryRun", "RequestResponse", "Bogus", ""],
    "X-Amz-Log-Type": ["None", "Tail", "Bogus"],
    "X-Amz-Client-Context": ["!!notbase64", base64.b64encode(b"[1,2,3]").decode(), base64.b64encode(b"x" * 4000).decode()],
    "If-None-Match": ["*", '"x"'],
    "If-Modified-Since": ["yesterday", "Mon, 01 Jan 2224 00:00:00 GMT"],
    "Content-Type": ["application/json", "application/cbor", "application/x-amz-json-1.1", "text/xml",
                     "application/x-www-form-urlencoded; charset=latin1", "multipart/form-data; boundary=x", ""],
    "X-Amz-Target": ["AmazonSQS.Bogus", "Logs_20140328.", "Kinesis_20131202.ListStreams", ".", "AmazonSQS"],
    "x-amzn-query-mode": ["true", "false"],
    "smithy-protocol": ["rpc-v2-cbor", "rpc-v2-json", ""],
    "Authorization": ["AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/kinesis/aws4_request, SignedHeaders=host, "
                      "Signature=00", "AWS4-HMAC-SHA256 Credential=/", "AWS AKID:sig", "Bearer x", ""],
    "X-Amz-Security-Token": ["x" * 5000],
    "Accept": ["application/cbor", "application/xml", "*/*"],
    "Host": ["fuzz-bucket.localhost", "fuzz-bucket.s3.amazonaws.com", "sqs.us-east-1.amazonaws.com", "x" * 300,
             "[::1]:4566", "127.0.0.1:99999", ""],
}
METHODS = ["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS"]
QUERY_NAMES = ["uploadId", "partNumber", "list-type", "max-keys", "Qualifier", "MaxItems", "Marker", "versionId",
               "delete", "notification", "uploads", "tagging", "acl", "cors", "policy", "x-id", "List", "prefix",
               "continuation-token", "start-after", "encoding-type", "FunctionVersion", "Action", "X-Amz-Credential"]


def odd_segment(draw) -> str:
    raw = draw(st.sampled_from(["%", "%zz", "%c3%28", "%00", "%ff", "%2F", "..", ".", "", "a" * 5000, "%%41"]))
    return raw if draw(st.booleans()) else quote(draw(short_text), safe="")


@st.composite
def mutated(draw, family: str) -> Wire:
    seed = draw(st.sampled_from(SEEDS[family]))
    method, headers, body = seed.method, list(seed.headers), seed.body
    path, _, query = seed.path.partition("?")
    wire = Wire(b"", seed.label, method, seed.service, seed.protocol, seed.operation)
    body_kinds = {"rest-json": mutate_json, "json": mutate_json, "rest-xml": mutate_xml,
                  "query": mutate_form, "ec2": mutate_form, "smithy-rpc-v2-cbor": mutate_cbor}
    digest_touched = False
    chunked = False
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["body", "body", "bytes", "header", "path", "query", "method", "target",
                                     "deep", "chunked"]))
        wire.mutations.append(kind)
        if kind == "body" and body:
            body = body_kinds[seed.protocol](draw, body)
        elif kind == "bytes":
            body = bytes_mutation(draw, body)
        elif kind == "deep":
            body = deep_body(draw, seed)
        elif kind == "header":
            name = draw(st.sampled_from(sorted(EXTRA_HEADERS)))
            value = draw(st.sampled_from(EXTRA_HEADERS[name]))
            if name == "x-amz-meta-":
                name += draw(st.sampled_from(["k", "a" * 300]))
            existing = [i for i, (n, _) in enumerate(headers) if n.lower() == name.lower()]
            drop = draw(st.booleans()) and existing
            headers = [h for i, h in enumerate(headers) if i not in existing]
            if not drop:
                headers.append((name, value))
            if name.lower() in seed.identity:
                wire.strict = False
            if name.lower() in ("x-amz-target", "authorization"):
                wire.same_op = False
            digest_touched |= name.lower() in ("content-md5", "x-amz-content-sha256")
        elif kind == "path" and seed.protocol in ("rest-json", "rest-xml", "smithy-rpc-v2-cbor"):
            segments = path.split("/")
            i = draw(st.integers(1, len(segments)))
            op = draw(st.sampled_from(["replace", "insert", "delete", "double"]))
            if op == "replace" and i < len(segments):
                segments[i] = odd_segment(draw)
            elif op == "insert":
                segments.insert(i, odd_segment(draw))
            elif op == "delete" and i < len(segments):
                del segments[i]
            else:
                segments.insert(i, "")
            path = "/".join(segments) or "/"
            path = path if path.startswith("/") else "/" + path
            wire.same_op = False
            if seed.protocol == "smithy-rpc-v2-cbor":
                wire.strict = False
        elif kind == "query":
            name = draw(st.sampled_from(QUERY_NAMES))
            value = draw(st.one_of(st.just(None), short_text.map(lambda s: quote(s, safe="")),
                                   st.sampled_from(["%", "%zz", "-1", "99999999999999999999", "0", "a+b"])))
            query = "&".join(p for p in [query, name if value is None else f"{name}={value}"] if p)
            wire.same_op = False
        elif kind == "method":
            method = draw(st.sampled_from(METHODS))
            wire.same_op = False
        elif kind == "target":
            known = [s.operation for s in SEEDS[family] if s.service == seed.service]
            op = draw(st.one_of(st.sampled_from(known), st.sampled_from(["", "Bogus", "listqueues", "x" * 300, "%00"])))
            headers = [(n, v.rsplit(".", 1)[0] + "." + op) if n.lower() == "x-amz-target" else (n, v)
                       for n, v in headers]
            if path.startswith("/service/"):
                path = path.rsplit("/", 1)[0] + "/" + quote(op, safe="")
            wire.same_op = False
        elif kind == "chunked":
            chunked = True
    if not digest_touched and body != seed.body:
        headers = [(n, base64.b64encode(hashlib.md5(body).digest()).decode()) if n.lower() == "content-md5"
                   else (n, v) for n, v in headers]
    target = path + (f"?{query}" if query else "")
    wire.method = method
    if chunked:
        sizes = draw(st.lists(st.integers(1, 64), min_size=1, max_size=4))
        chunks, rest = [], body
        for size in sizes:
            if rest:
                chunks.append(b"%x\r\n%s\r\n" % (len(rest[:size]), rest[:size]))
                rest = rest[size:]
        if rest:
            chunks.append(b"%x\r\n%s\r\n" % (len(rest), rest))
        wire.data = assemble(method, target, headers + [("Transfer-Encoding", "chunked")],
                             b"".join(chunks) + b"0\r\n\r\n", length=False)
    else:
        wire.data = assemble(method, target, headers, body)
    return wire


# ---------------------------------------------------------------------------
# Random requests (well-formed HTTP, no corpus behind them)
# ---------------------------------------------------------------------------

PREFIXES = ["", "2015-03-31", "2018-10-31", "2017-10-31", "2019-09-30", "2016-08-19", "service", "_nimbus",
            "fuzz-bucket", "000000000000", "v1", "2015-03-31/functions", "2018-10-31/layers"]


@st.composite
def random_request(draw) -> Wire:
    method = draw(st.sampled_from(METHODS))
    segments = [draw(st.sampled_from(PREFIXES))] + [
        quote(s, safe="") for s in draw(st.lists(short_text, max_size=4))
    ]
    path = "/" + "/".join(s for s in segments if s)
    if draw(st.booleans()):
        path += "?" + urlencode(draw(st.lists(st.tuples(st.sampled_from(QUERY_NAMES), short_text), max_size=3)))
    names = draw(st.lists(st.sampled_from(sorted(EXTRA_HEADERS)), max_size=4, unique=True))
    headers = [("Host", "127.0.0.1")] + [(n, draw(st.sampled_from(EXTRA_HEADERS[n]))) for n in names]
    body = draw(st.one_of(
        st.just(b""), st.binary(max_size=200), odd_json.map(lambda v: json.dumps(v).encode()),
        st.sampled_from([b"<Delete><Object><Key>k</Key></Object></Delete>", b"Action=ListQueues", b"\xa0", b"<"]),
    ))
    return Wire(assemble(method, path, headers, body), "random", method, strict=False, same_op=False,
                mutations=["random"])


# ---------------------------------------------------------------------------
# Garbage: malformed HTTP, malformed framing, truncation
# ---------------------------------------------------------------------------

def _seed_parts(draw, families=("lambda", "s3", "sqs", "logs")):
    family = draw(st.sampled_from(families))
    seeds = [s for s in SEEDS[family] if s.body]
    return draw(st.sampled_from(seeds))


# Chunked bodies nimbus's HTTP layer must refuse (400), and two it lets through as hyper does
# (chunk extensions are ignored, whitespace after the size is tolerated): those need no 400.
BAD_CHUNKED = [
    (b"zz\r\nabc\r\n0\r\n\r\n", 400),  # size not hex
    (b"-1\r\nabc\r\n0\r\n\r\n", 400),
    (b"ffffffffffffffffffffff\r\nabc\r\n0\r\n\r\n", 400),  # size overflows
    (b"3\r\nabcdef\r\n0\r\n\r\n", 400),  # more data than the size
    (b"10\r\nabc\r\n0\r\n\r\n", 400),  # less data than the size
    (b"3\r\nabc0\r\n\r\n", 400),  # no CRLF after the data
    (b"3\r\nabc\r\n0\r\nbad trailer\r\n\r\n", 400),
    (b"3\r\nabc\r\n", 400),  # no last chunk, then the client stops sending
    (b"\r\n\r\n", 400),
    (b"3;\x00=\x01\r\nabc\r\n0\r\n\r\n", None),  # extension with control bytes
    (b"3 \r\nabc\r\n0\r\n\r\n", None),
]


@st.composite
def garbage(draw) -> Wire:
    kind = draw(st.sampled_from(["chunked", "truncated", "method", "request-line", "headers", "length",
                                 "raw-path", "random-bytes", "huge-declared", "expect"]))
    seed = _seed_parts(draw)
    base = Wire(b"", f"garbage:{kind}", seed.method, seed.service, seed.protocol, seed.operation,
                http_valid=False, same_op=False, half_close=True, mutations=[kind])
    headers = [h for h in seed.headers if h[0].lower() != "content-md5"]
    if kind == "chunked":
        bad, status = draw(st.sampled_from(BAD_CHUNKED))
        return replace(base, data=assemble(seed.method, seed.path, headers + [("Transfer-Encoding", "chunked")], bad,
                                           length=False), expect_status=status, label=f"garbage:chunked {bad[:24]!r}")
    if kind == "truncated":
        cut = draw(st.integers(0, max(len(seed.body) - 1, 0)))
        data = assemble(seed.method, seed.path, headers + [("Content-Length", str(len(seed.body)))],
                        seed.body[:cut], length=False)
        return replace(base, data=data)
    if kind == "huge-declared":
        n = draw(st.sampled_from(["10737418240", "18446744073709551615", "99999999999999999999999", "-5", "0x10",
                                  "+5", "5, 6", "5 5"]))
        return replace(base, data=assemble(seed.method, seed.path, headers + [("Content-Length", n)], b"",
                                           length=False), strict=False)
    if kind == "expect":  # promises a body after 100 Continue, then sends none
        return replace(base, data=assemble(seed.method, seed.path, headers + [("Expect", "100-continue"),
                                                                              ("Content-Length", "10")], b"",
                                           length=False))
    base.strict = False
    if kind == "method":
        method = draw(st.sampled_from(["G\x00T", "GE T", "", "X" * 10_000, "get", "\xff\xfe", "PRI", "CONNECT",
                                       "TRACE", "BREW", "M-SEARCH", "GET\t"]))
        return replace(base, data=assemble(method, seed.path, headers, seed.body))
    if kind == "request-line":
        line = draw(st.sampled_from([
            b"GET /\r\n\r\n", b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"GET  /  HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET http://example.com/x HTTP/1.1\r\nHost: y\r\n\r\n", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
            b"CONNECT 127.0.0.1:4566 HTTP/1.1\r\nHost: x\r\n\r\n", b"GET / HTTP/1.0\r\n\r\n",
            b"GET / HTTP/1.1\nHost: x\n\n", b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", b"GET / HTTP/1.1\r\n",
            b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        ]))
        return replace(base, data=line)
    if kind == "headers":
        odd = draw(st.sampled_from([
            [("NoColon", None)], [("Host ", "x")], [("X-A", "a\r\n b")], [("X-A", "a\x00b")], [("X-A", "a\rb")],
            [("X(A)", "1")], [(f"X-H{i}", "v") for i in range(200)], [("X-Big", "v" * 100_000)],
            [("X-Big", "v" * 1_000_000)], [("Content-Length", "3"), ("Content-Length", "4")],
            [("Content-Length", "3"), ("Transfer-Encoding", "chunked")], [("Transfer-Encoding", "gzip, chunked")],
            [("Transfer-Encoding", "chunked, identity")], [("Transfer-Encoding", "xchunked")], [("\u00e9", "1")],
            [("Authorization", "\u00e9" * 10)], [("Host", "")], [("Host", "a"), ("Host", "b")],
        ]))
        lines = [f"{seed.method} {seed.path} HTTP/1.1".encode()]
        lines += [f"{n}: {v}".encode("utf-8") for n, v in headers]
        lines += [(n if v is None else f"{n}: {v}").encode("utf-8") for n, v in odd]
        if not any(n.lower() in ("content-length", "transfer-encoding") for n, _ in odd):
            lines.append(f"Content-Length: {len(seed.body)}".encode())
        return replace(base, data=b"\r\n".join(lines) + b"\r\n\r\n" + seed.body)
    if kind == "length":
        n = draw(st.sampled_from([str(len(seed.body) + 5), "0"]))
        return replace(base, data=assemble(seed.method, seed.path, headers + [("Content-Length", n)], seed.body,
                                           length=False))
    if kind == "raw-path":
        bad = draw(st.sampled_from([b"/a b", b"/\x00", b"/\xff\xfe", b"/a\tb", b"/%", b"/\x7f", b"a", b"//",
                                    b"/?\xff", b"/#frag"]))
        return replace(base, data=b"GET " + bad + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    return replace(base, data=draw(st.binary(min_size=1, max_size=300)))
