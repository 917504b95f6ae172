"""CloudWatch Logs subscription and metric filters: stored and described as AWS does."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from support import aws_client


@pytest.fixture(scope="module")
def logs(server):
    return aws_client("logs", server.endpoint)


@pytest.fixture
def group(logs):
    name = f"/app/{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=name)
    return name


def test_subscription_filters(logs, group):
    target = "arn:aws:lambda:us-east-1:000000000000:function:processor"
    logs.put_subscription_filter(logGroupName=group, filterName="errors", filterPattern="ERROR",
                                 destinationArn=target)
    [stored] = logs.describe_subscription_filters(logGroupName=group)["subscriptionFilters"]
    assert (stored["filterName"], stored["filterPattern"], stored["destinationArn"]) == ("errors", "ERROR", target)
    assert stored["distribution"] == "ByLogStream" and stored["logGroupName"] == group
    logs.put_subscription_filter(logGroupName=group, filterName="all", filterPattern="", destinationArn=target)
    with pytest.raises(logs.exceptions.LimitExceededException):
        logs.put_subscription_filter(logGroupName=group, filterName="third", filterPattern="", destinationArn=target)
    assert [f["filterName"] for f in logs.describe_subscription_filters(logGroupName=group, filterNamePrefix="er")["subscriptionFilters"]] == ["errors"]
    logs.delete_subscription_filter(logGroupName=group, filterName="errors")
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.delete_subscription_filter(logGroupName=group, filterName="errors")
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.describe_subscription_filters(logGroupName=group + "-missing")


def test_metric_filters(logs, group):
    transformation = {"metricName": "Errors", "metricNamespace": "App", "metricValue": "1", "defaultValue": 0.0}
    logs.put_metric_filter(logGroupName=group, filterName="count-errors", filterPattern="[level=ERROR, ...]",
                           metricTransformations=[transformation])
    [stored] = logs.describe_metric_filters(logGroupName=group)["metricFilters"]
    assert stored["metricTransformations"] == [transformation]
    found = logs.describe_metric_filters(metricName="Errors", metricNamespace="App")["metricFilters"]
    assert group in [f["logGroupName"] for f in found]
    with pytest.raises(ClientError) as excinfo:
        logs.put_metric_filter(logGroupName=group, filterName="bad", filterPattern="{ $.x = ",
                               metricTransformations=[transformation])
    assert excinfo.value.response["Error"]["Code"] == "InvalidParameterException"
    logs.delete_metric_filter(logGroupName=group, filterName="count-errors")
    assert logs.describe_metric_filters(logGroupName=group)["metricFilters"] == []
    # Deleting the group takes its filters along.
    logs.put_metric_filter(logGroupName=group, filterName="again", filterPattern="", metricTransformations=[transformation])
    logs.delete_log_group(logGroupName=group)
    logs.create_log_group(logGroupName=group)
    assert logs.describe_metric_filters(logGroupName=group)["metricFilters"] == []
