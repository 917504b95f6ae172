"""The layer API through boto3: publishing, listing, finding by ARN, deleting, and the limits a
function's layers obey."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from support import ROLE, make_zip, unique_name, zip_bomb


def publish(client, name, **kwargs):
    return client.publish_layer_version(LayerName=name, Content={"ZipFile": make_zip({"python/m.py": "X = 1\n"})},
                                        **kwargs)


def test_layer_versions_list_get_and_delete(client):
    name = unique_name("layer-api")
    first = publish(client, name, CompatibleRuntimes=["python3.12"], Description="one")
    second = publish(client, name, CompatibleRuntimes=["python3.13"], CompatibleArchitectures=["arm64"])
    assert (first["Version"], second["Version"]) == (1, 2)
    assert first["LayerVersionArn"] == first["LayerArn"] + ":1"
    assert first["Content"]["CodeSize"] > 0 and first["Content"]["CodeSha256"]
    versions = client.list_layer_versions(LayerName=name)["LayerVersions"]
    assert [v["Version"] for v in versions] == [2, 1]
    filtered = client.list_layer_versions(LayerName=name, CompatibleRuntime="python3.12")["LayerVersions"]
    assert [v["Version"] for v in filtered] == [1]
    layers = {l["LayerName"]: l for l in client.list_layers()["Layers"]}
    assert layers[name]["LatestMatchingVersion"]["Version"] == 2
    by_arn = client.get_layer_version_by_arn(Arn=first["LayerVersionArn"])
    assert by_arn["Description"] == "one"
    assert client.get_layer_version(LayerName=name, VersionNumber=2)["CompatibleArchitectures"] == ["arm64"]
    client.delete_layer_version(LayerName=name, VersionNumber=2)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_layer_version(LayerName=name, VersionNumber=2)
    assert publish(client, name)["Version"] == 3  # numbers are never reused


def test_layer_rules(client):
    name = unique_name("layer-rules")
    with pytest.raises(ClientError) as raised:
        publish(client, name, CompatibleRuntimes=["cobol42"])
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    arns = [publish(client, name)["LayerVersionArn"] for _ in range(6)]
    with pytest.raises(ClientError) as raised:
        client.create_function(FunctionName=unique_name("six-layers"), Runtime="python3.12", Role=ROLE,
                               Handler="app.handler", Code={"ZipFile": make_zip({"app.py": "def handler(e, c): return 1\n"})},
                               Layers=arns)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    missing = arns[0].rsplit(":", 1)[0] + ":99"
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.create_function(FunctionName=unique_name("no-layer"), Runtime="python3.12", Role=ROLE,
                               Handler="app.handler", Code={"ZipFile": make_zip({"app.py": "x = 1\n"})},
                               Layers=[missing])


def test_code_and_layers_share_the_250_mb_limit(client):
    big = client.publish_layer_version(LayerName=unique_name("big-layer"),
                                       Content={"ZipFile": zip_bomb(200 * 1024 * 1024)})
    with pytest.raises(client.exceptions.InvalidParameterValueException) as raised:
        client.create_function(FunctionName=unique_name("too-big"), Runtime="python3.12", Role=ROLE,
                               Handler="app.handler", Code={"ZipFile": zip_bomb(60 * 1024 * 1024)},
                               Layers=[big["LayerVersionArn"]])
    assert "combined with layers exceeds the maximum allowed size of 262144000 bytes" in str(raised.value)
