"""Body mutations for the fuzz pass: odd values, and structure-aware changes to JSON, XML, Query
forms and CBOR (type confusion, deletions, additions, nesting), plus raw byte edits.
Each takes Hypothesis's `draw` and a body, and returns the mutated body.
"""

from __future__ import annotations

import datetime
import json
import re
import struct
import xml.etree.ElementTree as ET
from urllib.parse import parse_qsl, urlencode

from botocore.parsers import create_parser
from hypothesis import strategies as st

from fuzz_corpus import Seed

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
ET.register_namespace("", S3_NS)
CBOR = create_parser("smithy-rpc-v2-cbor")

# ---------------------------------------------------------------------------
# Odd values
# ---------------------------------------------------------------------------

ODD_STRINGS = [
    "", " ", "a" * 300, "x" * 70_000, "\u0000", "\r\n", "\t", "é", "😀" * 40, "\u202e", "\ufeff",
    "../../etc/passwd", "..", ".", "/", "//", "%", "%zz", "%c3%28", "%00", "%ff%fe", "*", "?", "#", "&", "=",
    "-1", "0", "1e309", "NaN", "null", "true", "[]", "{}", "<a/>", "]]>", "&amp;", "${x}", "'\"",
    "arn:aws:lambda:us-east-1:000000000000:function:fuzz-fn:$LATEST", "arn:aws:sqs:us-east-1:000000000000:nope",
    "arn:", "arn:aws:s3:::", "http://127.0.0.1:1/000000000000/q", "$LATEST", "fuzz-fn:live",
]
ODD_NUMBERS = [0, -1, 1, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30,
               1.5, -0.0, 1e308, -1e308, 5e-324]
odd_text = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=12))
# For URIs and header values: hyper refuses URIs past 64 KiB (414) before nimbus sees them.
short_text = st.one_of(st.sampled_from([s for s in ODD_STRINGS if len(s) < 1000]), st.text(max_size=12))
odd_number = st.one_of(st.sampled_from(ODD_NUMBERS), st.integers(), st.floats(allow_nan=False, allow_infinity=False))
odd_json = st.recursive(
    st.one_of(st.none(), st.booleans(), odd_number, odd_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(odd_text, inner, max_size=3)),
    max_leaves=6,
)


# Nesting depths for "deep" bodies: ordinary, past any AWS shape, and past a naive parser's stack.
DEPTHS = [64, 1_000, 100_000]

# ---------------------------------------------------------------------------
# Structure-aware body mutations
# ---------------------------------------------------------------------------


def _places(value, out, parent=None, key=None):
    out.append((parent, key))
    if isinstance(value, dict):
        for k, v in value.items():
            _places(v, out, value, k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _places(v, out, value, i)
    return out


def mutate_tree(draw, doc):
    """Type confusion, deletion and additions at one place in a decoded JSON or CBOR document."""
    places = _places(doc, [])
    parent, key = draw(st.sampled_from(places))
    op = draw(st.sampled_from(["replace", "delete", "add", "wrap", "deep"]))
    if parent is None:  # the document itself
        return draw(odd_json) if op in ("replace", "delete") else [doc] if op == "wrap" else doc
    if op == "replace":
        parent[key] = draw(odd_json)
    elif op == "delete":
        del parent[key]
    elif op == "add" and isinstance(parent, dict):
        parent[draw(odd_text)] = draw(odd_json)
    elif op == "add":
        parent.append(draw(odd_json))
    elif op == "wrap":
        parent[key] = [parent[key]] if draw(st.booleans()) else {"member": parent[key]}
    else:
        inner = parent[key]
        for _ in range(draw(st.sampled_from([50, 200]))):
            inner = [inner]
        parent[key] = inner
    return doc


def mutate_json(draw, body: bytes) -> bytes:
    try:
        doc = json.loads(body) if body else {}
    except (ValueError, RecursionError):
        return body
    doc = mutate_tree(draw, doc)
    raw = json.dumps(doc, allow_nan=True)
    if draw(st.integers(0, 9)) == 0:  # a member twice, as JSON allows and AWS rejects
        raw = raw.replace("{", '{"dup": 1, "dup": "x", ', 1) if raw.startswith("{") else raw
    return raw.encode()


def mutate_xml(draw, body: bytes) -> bytes:
    try:
        return _mutate_xml(draw, body)
    except (ET.ParseError, RecursionError):  # not XML any more, or nested past Python's stack
        return body


def _mutate_xml(draw, body: bytes) -> bytes:
    root = ET.fromstring(body)
    elements = list(root.iter())
    target = draw(st.sampled_from(elements))
    parents = {child: parent for parent in elements for child in parent}
    op = draw(st.sampled_from(["text", "delete", "duplicate", "add", "rename", "attribute", "entity", "doctype"]))
    if op == "text":
        target.text = draw(odd_text).replace("\x00", "")
    elif op == "delete" and target in parents:
        parents[target].remove(target)
    elif op == "duplicate" and target in parents:
        parents[target].append(ET.fromstring(ET.tostring(target)))
    elif op == "add":
        tag = draw(st.sampled_from(["Key", "Object", "Part", "PartNumber", "ETag", "Event", "Filter", "Bogus"]))
        ET.SubElement(target, f"{{{S3_NS}}}{tag}").text = draw(odd_text).replace("\x00", "")
    elif op == "rename":
        target.tag = f"{{{S3_NS}}}{draw(st.sampled_from(['Bogus', 'Delete', 'Part', 'Key', 'Quiet']))}"
    elif op == "attribute":
        target.set(draw(st.sampled_from(["id", "xmlns:x", "x:y"])), draw(odd_text).replace("\x00", ""))
    raw = ET.tostring(root)
    if op == "entity":  # references no parser should resolve
        ref = draw(st.sampled_from([b"&bogus;", b"&#0;", b"&#x110000;", b"&#xD800;", b"&lt", b"&"]))
        raw = raw.replace(b"</", ref + b"</", 1)
    elif op == "doctype":  # an entity bomb and an external entity: neither may be expanded
        raw = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">'
               b'<!ENTITY c "&b;&b;&b;&b;&b;&b;"><!ENTITY x SYSTEM "file:///etc/passwd">]>'
               + raw.replace(b"</", b"&c;&x;</", 1))
    return raw


def mutate_form(draw, body: bytes) -> bytes:
    pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    op = draw(st.sampled_from(["value", "key", "drop", "duplicate", "add", "index", "raw", "action"]))
    i = draw(st.integers(0, max(len(pairs) - 1, 0)))
    if op == "value" and pairs:
        pairs[i] = (pairs[i][0], str(draw(st.one_of(odd_text, odd_number))))
    elif op == "key" and pairs:
        pairs[i] = (draw(short_text), pairs[i][1])
    elif op == "drop" and pairs:
        del pairs[i]
    elif op == "duplicate" and pairs:
        pairs.append((pairs[i][0], "other"))
    elif op == "add":
        pairs.append((draw(st.sampled_from(["Version", "Action", "QueueUrl", "MaxNumberOfMessages", "Attribute.1.Name",
                                            "MetricData.member.1.Value", "NextToken", draw(odd_text)])),
                      str(draw(st.one_of(odd_text, odd_number)))))
    elif op == "index" and pairs:  # member.N with N that is no index
        n = draw(st.sampled_from(["0", "-1", "99999999999999999999", "1.5", "", "01", "4294967297"]))
        pairs[i] = (re.sub(r"\.\d+", "." + n, pairs[i][0], count=1), pairs[i][1])
    elif op == "action" and pairs:
        pairs[0] = ("Action", draw(st.sampled_from(["Bogus", "", "sendmessage", "CreateQueue ", "ListQueues\x00"])))
    raw = urlencode(pairs).encode()
    if op == "raw":
        raw += draw(st.sampled_from([b"&%", b"&a=%zz", b"&=&&", b"&a=b=c", b"&%c3%28=1", b"&a=%ff%fe", b";x=1"]))
    return raw


def cbor_encode(value) -> bytes:
    """Schemaless CBOR (RFC 8949): enough to re-encode a decoded request with confused types."""
    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        for info, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
            if n < 1 << (8 * struct.calcsize(fmt)):
                return bytes([major << 5 | info]) + struct.pack(fmt, n)
        raise OverflowError(n)

    if value is None:
        return b"\xf6"
    if value is True or value is False:
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        if -(2**64) <= value < 2**64:
            return head(0, value) if value >= 0 else head(1, -1 - value)
        return b"\xc2" + cbor_encode(value.to_bytes((value.bit_length() + 7) // 8, "big")) if value > 0 else b"\xf6"
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
        return head(3, len(raw)) + raw
    if isinstance(value, datetime.datetime):
        return b"\xc1" + cbor_encode(value.timestamp())
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(cbor_encode(v) for v in value)
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(cbor_encode(k) + cbor_encode(v) for k, v in value.items())
    raise TypeError(type(value))


# Hand-made CBOR no encoder would produce: each must be refused, not crash or hang.
CBOR_ODDITIES = [
    b"\xa1\x63abc\x5b\xff\xff\xff\xff\xff\xff\xff\xff",  # byte string claiming 2^64-1 bytes
    b"\x9b\x00\x00\x00\x00\xff\xff\xff\xff",  # array claiming 4 billion items
    b"\xbb\x00\x00\x00\x01\x00\x00\x00\x00",  # map claiming 2^32 pairs
    b"\x9f\x9f\x9f\x9f",  # indefinite arrays never closed
    b"\xbf\x61a\x01\x61a\x02\xff",  # duplicate keys in an indefinite map
    b"\x7f\x61a\x41b\xff",  # byte chunk inside a text string
    b"\xa1\x62\xc3\x28\x01",  # invalid UTF-8 key
    b"\xc1\xc1\xc1\xc1\xc1\x00",  # tags on tags
    b"\xc2\x5a\x00\x10\x00\x00",  # bignum longer than the body
    b"\x1c", b"\x3e", b"\xfc", b"\xff", b"\xf8\x00",  # reserved and misplaced items
    b"\xa1\x01\x02",  # a non-text key
    b"\xf9\x7e\x00", b"\xfa\x7f\x80\x00\x00",  # NaN, infinity
]


def mutate_cbor(draw, body: bytes) -> bytes:
    if draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(CBOR_ODDITIES))
    try:
        doc = CBOR.parse_data_item(CBOR.get_peekable_stream_from_bytes(body)) if body else {}
        return cbor_encode(mutate_tree(draw, doc))
    except Exception:
        return body


def deep_body(draw, seed: Seed) -> bytes:
    depth = draw(st.sampled_from(DEPTHS))
    if seed.protocol == "rest-xml":
        root = seed.body[1:seed.body.index(b" ")] if seed.body.startswith(b"<") else b"Delete"
        return b"<" + root + b">" + b"<a>" * depth + b"</a>" * depth + b"</" + root + b">"
    if seed.protocol == "smithy-rpc-v2-cbor":
        return b"\xa1\x69Namespace" + b"\x81" * depth + b"\x00"
    if seed.protocol in ("query", "ec2"):
        return seed.body + b"&" + b"a." * depth + b"1=x"
    kind = draw(st.sampled_from(["list", "object"]))
    if kind == "list":
        return b'{"a": ' + b"[" * depth + b"]" * depth + b"}"
    return b'{"a": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


def bytes_mutation(draw, body: bytes) -> bytes:
    op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]))
    if not body:
        return draw(st.binary(max_size=64))
    i = draw(st.integers(0, len(body) - 1))
    if op == "flip":
        return body[:i] + bytes([body[i] ^ (1 << draw(st.integers(0, 7)))]) + body[i + 1:]
    if op == "set":
        return body[:i] + bytes([draw(st.integers(0, 255))]) + body[i + 1:]
    if op == "insert":
        return body[:i] + draw(st.binary(min_size=1, max_size=16)) + body[i:]
    if op == "delete":
        return body[:i] + body[i + draw(st.integers(1, 16)):]
    if op == "truncate":
        return body[:i]
    return body + draw(st.binary(min_size=1, max_size=64))
