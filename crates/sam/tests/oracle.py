"""Runs AWS's own SAM translator (pip `aws-sam-translator`) over SAM templates: the oracle of
nimbus's transform in `crates/sam`.

    python3 oracle.py FILE.yaml... > out.json

prints one JSON object, per file either {"template": <transformed>, "input": <input as JSON>} or
{"error": "<message>", "input": …}. YAML's CloudFormation short tags (!Ref, !GetAtt a.b, !Sub …)
become their long JSON forms, so the Rust side reads JSON only. No network: the managed-policy
lookup the translator falls back to answers from an empty map (its bundled map covers AWS's
managed policies), and the region comes from the environment.
"""

import json
import logging
import os
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

# Context the Rust test gives nimbus's transform too.
REGION = os.environ["AWS_DEFAULT_REGION"]
ACCOUNT = "123456789012"
STACK = "sam-test"

try:
    import yaml
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform
except Exception as e:  # noqa: BLE001
    print(json.dumps({"unavailable": f"{type(e).__name__}: {e}"}))
    sys.exit(0)


class CfnLoader(yaml.SafeLoader):
    pass


def _tag(name):
    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


for short in ["Ref", "Condition"]:
    CfnLoader.add_constructor("!" + short, _tag(short))
for fn in [
    "And", "Base64", "Cidr", "Equals", "FindInMap", "GetAtt", "GetAZs", "If", "ImportValue",
    "Join", "Not", "Or", "Select", "Split", "Sub", "Transform", "Length", "ToJsonString",
]:
    CfnLoader.add_constructor("!" + fn, _tag("Fn::" + fn))
# Timestamps stay strings, as CloudFormation reads them.
CfnLoader.yaml_implicit_resolvers = {
    k: [(tag, regexp) for tag, regexp in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in CfnLoader.yaml_implicit_resolvers.items()
}


class NoNetworkPolicies:
    def load(self):
        return {}


def key_order(value, path, out):
    """Every mapping's keys in source order (the Rust side's JSON maps forget it)."""
    if isinstance(value, dict):
        out.append([path, list(value.keys())])
        for k, v in value.items():
            key_order(v, path + [k], out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            key_order(v, path + [f"[{i}]"], out)
    return out


def run(path):
    with open(path, encoding="utf-8") as f:
        template = yaml.load(f, Loader=CfnLoader)  # noqa: S506 (SafeLoader subclass)
    source = json.loads(json.dumps(template))
    order = key_order(source, [], [])
    params = {
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::StackName": STACK,
        "AWS::Partition": "aws",
    }
    try:
        out = transform(json.loads(json.dumps(template)), params, NoNetworkPolicies())
        return {"input": source, "order": order, "template": out}
    except InvalidDocumentException as e:
        message = " ".join([e.message] + [cause.message for cause in e.causes])
        return {"input": source, "order": order, "error": "Transform AWS::Serverless-2016-10-31 failed with: " + message}


def main():
    logging.disable(logging.CRITICAL)
    print(json.dumps({os.path.basename(p): run(p) for p in sys.argv[1:]}, sort_keys=True))


if __name__ == "__main__":
    main()
