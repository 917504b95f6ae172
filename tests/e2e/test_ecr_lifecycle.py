"""ECR lifecycle policies enforced on nimbus's (virtual) clock: rules in priority order, tagged
by prefix or pattern, untagged, counts and ages; the preview says what a policy would expire;
expired images go and garbage collection takes their blobs; bad policies are refused as AWS
refuses them."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

from oci_images import Image, docker_save, layer
from support import aws_cli_env, aws_client, unique_name, wait_until


@pytest.fixture(scope="module")
def clocked(server_factory):
    return server_factory(extra_args=["--clock", "virtual"])


def post(endpoint: str, path: str, body: bytes = b"") -> dict:
    request = urllib.request.Request(endpoint + path, data=body, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def push(server, name: str, tag: str, content: bytes) -> str:
    """Stores an image of one file as `name:tag`; returns its digest."""
    image = Image([layer([("file", "content", content)])])
    imported = post(server.endpoint, f"/_nimbus/images/import?repository={name}&tag={tag}", docker_save(image, f"{name}:{tag}"))
    return imported["imported"][0]["digest"]


def rule(priority: int, **selection) -> dict:
    return {"rulePriority": priority, "selection": selection, "action": {"type": "expire"}}


def test_rules_expire_images_in_priority_order_and_their_blobs_are_collected(clocked, tmp_path):
    ecr = aws_client("ecr", clocked.endpoint)
    name = unique_name("life").lower()
    ecr.create_repository(repositoryName=name)
    prod1 = push(clocked, name, "prod-1", b"p1")
    prod2 = push(clocked, name, "prod-2", b"p2")
    old_dev = push(clocked, name, "dev-1", b"d1")
    dev = push(clocked, name, "dev-1", b"d2")  # the tag moves: the first dev image is untagged now
    release = push(clocked, name, "v1-rc1", b"rc")
    policy = {"rules": [
        rule(1, tagStatus="tagged", tagPrefixList=["prod"], countType="imageCountMoreThan", countNumber=1),
        rule(2, tagStatus="untagged", countType="sinceImagePushed", countUnit="days", countNumber=1),
        rule(3, tagStatus="tagged", tagPatternList=["v*-rc*"], countType="sinceImagePushed", countUnit="days", countNumber=30),
    ]}
    ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=json.dumps(policy))

    started = ecr.start_lifecycle_policy_preview(repositoryName=name)
    assert started["status"] == "IN_PROGRESS"
    preview = ecr.get_lifecycle_policy_preview(repositoryName=name)
    assert preview["status"] == "COMPLETE"
    assert [(r["imageDigest"], r["imageTags"], r["appliedRulePriority"], r["action"]["type"])
            for r in preview["previewResults"]] == [(prod1, ["prod-1"], 1, "EXPIRE")]
    assert preview["summary"] == {"expiringImageTotalCount": 1}

    # Two days on: the older prod image and the untagged one expire; the release candidate
    # is younger than 30 days.
    post(clocked.endpoint, "/_nimbus/clock/advance?seconds=172800")

    def left():
        digests = {d["imageDigest"] for d in ecr.describe_images(repositoryName=name)["imageDetails"]}
        return digests if prod1 not in digests and old_dev not in digests else None

    assert wait_until(left, timeout=30) == {prod2, dev, release}
    collected = post(clocked.endpoint, "/_nimbus/images/gc?grace=0")
    assert collected["blobs"] >= 4, collected  # two manifests and their layers at least
    listed = subprocess.run(["aws", "ecr", "list-images", "--repository-name", name, "--output", "json"],
                            env=aws_cli_env(clocked.endpoint, tmp_path), capture_output=True, text=True, check=True)
    assert len(json.loads(listed.stdout)["imageIds"]) == 3


def test_bad_policies_and_missing_previews_answer_as_aws(clocked):
    ecr = aws_client("ecr", clocked.endpoint)
    name = unique_name("lifebad").lower()
    ecr.create_repository(repositoryName=name)
    bad = [
        {"rules": [rule(1, tagStatus="tagged", countType="imageCountMoreThan", countNumber=1)]},
        {"rules": [rule(1, tagStatus="untagged", countType="sinceImagePushed", countNumber=1)]},
        {"rules": [rule(1, tagStatus="any", countType="imageCountMoreThan", countNumber=1),
                   rule(2, tagStatus="untagged", countType="imageCountMoreThan", countNumber=1)]},
        {"rules": [rule(1, tagStatus="untagged", countType="imageCountMoreThan", countNumber=1),
                   rule(1, tagStatus="any", countType="imageCountMoreThan", countNumber=2)]},
    ]
    for policy in bad:
        with pytest.raises(ecr.exceptions.InvalidParameterException) as error:
            ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=json.dumps(policy))
        assert ("Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
                "'Lifecycle policy validation failure: ") in str(error.value), policy
    with pytest.raises(ecr.exceptions.LifecyclePolicyNotFoundException):
        ecr.get_lifecycle_policy(repositoryName=name)
    with pytest.raises(ecr.exceptions.LifecyclePolicyPreviewNotFoundException) as error:
        ecr.get_lifecycle_policy_preview(repositoryName=name)
    assert f"There is no dry run for the repository with name '{name}'" in str(error.value)
