"""Runtimes run on an interpreter of exactly their version wherever the host has one (PATH,
pyenv, uv, asdf, mise, conda), and Python functions can import boto3 as on AWS."""

from __future__ import annotations

import glob
import os
import shutil

import pytest
from support import PY_MULTI, payload_json

HOME = os.path.expanduser("~")
# A sample of the places nimbus looks (crates/functions/src/runtimes/installs.rs has them all).
PYTHON_312 = [shutil.which("python3.12") or ""] + [
    path
    for pattern in (
        ".pyenv/versions/3.12*/bin/python3.12",
        ".local/share/uv/python/cpython-3.12*/bin/python3.12",
        ".asdf/installs/python/3.12*/bin/python3.12",
        ".local/share/mise/installs/python/3.12*/bin/python3.12",
        "miniconda3/envs/*/bin/python3.12",
    )
    for path in glob.glob(os.path.join(HOME, pattern))
]
HAS_312 = any(os.access(path, os.X_OK) and "shims" not in path for path in PYTHON_312)


@pytest.mark.skipif(not HAS_312, reason="no Python 3.12 on this host (uv python install 3.12, or pyenv install 3.12)")
def test_python312_runs_on_a_python_312_and_has_boto3(client, create_fn):
    name = create_fn("py312", {"app.py": PY_MULTI}, runtime="python3.12", Timeout=30)
    out = payload_json(client.invoke(FunctionName=name, Payload=b'{"op": "env"}'))
    assert out["python"][:2] == [3, 12], out["python"]
    listed = payload_json(client.invoke(FunctionName=name, Payload=b'{"op": "boto3"}'))
    assert name in listed["names"]
