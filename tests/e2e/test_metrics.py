"""CloudWatch metrics of Lambda functions (`AWS/Lambda`, and nimbus's `Nimbus/Lambda`
`BilledGBSeconds`), read with boto3 over every protocol botocore speaks to CloudWatch (Smithy RPC
v2 CBOR by default, JSON 1.0 and Query by overriding the model) and with the aws CLI.

Needs the nimbus-metrics crate wired into the binary: the engine's `metrics` sink and the API's
services.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
import subprocess
import time
import urllib.request

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.loaders import Loader
from support import ROLE, aws_cli_env, make_zip, unique_name

HANDLER = """
def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"ok": True}
"""

OK, FAILED, ON_VERSION, ON_ARM, THROTTLED = 8, 4, 3, 3, 2


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def cloudwatch(endpoint: str, protocol: str | None = None, models=None):
    """A CloudWatch client; `protocol` ("json", "query") rewrites botocore's model to speak it."""
    session = botocore.session.Session()
    if protocol:
        model = copy.deepcopy(Loader().load_service_model("cloudwatch", "service-2"))
        model["metadata"]["protocol"] = protocol
        model["metadata"]["protocols"] = [protocol]
        root = models / protocol
        target = root / "cloudwatch" / model["metadata"]["apiVersion"]
        target.mkdir(parents=True, exist_ok=True)
        (target / "service-2.json").write_text(json.dumps(model))
        session.get_component("data_loader").search_paths.insert(0, str(root))
    return boto3.Session(botocore_session=session).client(
        "cloudwatch",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def activity(create_fn, client):
    """Invocations whose metrics the tests read: `main` runs 8 times, fails 4 times, then 3 times
    as version 1; `arm` (arm64, 512 MB) runs 3 times; `throttled` (reserved concurrency 0) is
    refused twice."""
    started = utcnow()
    main = create_fn("metrics-main", {"app.py": HANDLER}, MemorySize=256)
    arm = create_fn("metrics-arm", {"app.py": HANDLER}, MemorySize=512, Architectures=["arm64"])
    throttled = create_fn("metrics-throttled", {"app.py": HANDLER})
    for i in range(OK + FAILED):
        payload = json.dumps({"fail": i % 3 == 0})  # i = 0, 3, 6, 9 fail
        response = client.invoke(FunctionName=main, Payload=payload)
        assert ("FunctionError" in response) == (i % 3 == 0)
    version = client.publish_version(FunctionName=main)["Version"]
    assert version == "1"
    for _ in range(ON_VERSION):
        assert "FunctionError" not in client.invoke(FunctionName=main, Qualifier=version, Payload="{}")
    for _ in range(ON_ARM):
        assert "FunctionError" not in client.invoke(FunctionName=arm, Payload="{}")
    client.put_function_concurrency(FunctionName=throttled, ReservedConcurrentExecutions=0)
    for _ in range(THROTTLED):
        with pytest.raises(client.exceptions.TooManyRequestsException):
            client.invoke(FunctionName=throttled, Payload="{}")
    return {"main": main, "arm": arm, "throttled": throttled, "start": started - dt.timedelta(minutes=2)}


@pytest.fixture(scope="module")
def cw(server):
    return cloudwatch(server.endpoint)


def window(activity) -> dict:
    """One period holding every invocation of the module."""
    return {"StartTime": activity["start"], "EndTime": utcnow() + dt.timedelta(minutes=2), "Period": 3600}


def eventually(check, timeout: float = 5.0):
    """Metrics are recorded as invocations end: give the last ones a moment."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def statistics(cw, activity, metric: str, dimensions: dict, stats=("Sum",), extended=(), namespace="AWS/Lambda"):
    """The single data point of the module's window, {} when there is none."""
    kwargs = {"Statistics": list(stats)} if stats else {}
    if extended:
        kwargs["ExtendedStatistics"] = list(extended)
    response = cw.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
        **window(activity),
        **kwargs,
    )
    assert response["Label"] == metric
    points = response["Datapoints"]
    assert len(points) <= 1, points
    return points[0] if points else {}


def test_invocations_and_errors_per_function_and_version(cw, activity):
    main = activity["main"]
    total = OK + FAILED + ON_VERSION

    def check():
        assert statistics(cw, activity, "Invocations", {"FunctionName": main})["Sum"] == total

    eventually(check)
    errors = statistics(cw, activity, "Errors", {"FunctionName": main}, ("Sum", "SampleCount", "Average"))
    assert errors["Sum"] == FAILED
    assert errors["SampleCount"] == total
    assert errors["Average"] == pytest.approx(FAILED / total)
    assert errors["Unit"] == "Count"
    latest = {"FunctionName": main, "Resource": f"{main}:$LATEST"}
    assert statistics(cw, activity, "Invocations", latest)["Sum"] == OK + FAILED
    on_version = {"FunctionName": main, "Resource": f"{main}:1"}
    assert statistics(cw, activity, "Invocations", on_version)["Sum"] == ON_VERSION
    assert statistics(cw, activity, "Errors", on_version)["Sum"] == 0
    account = statistics(cw, activity, "Invocations", {})
    assert account["Sum"] >= total + ON_ARM


def test_duration_statistics_and_percentiles(cw, activity):
    main = activity["main"]
    point = eventually(lambda: _full_duration(cw, activity, main))
    assert point["Unit"] == "Milliseconds"
    assert 0 < point["Minimum"] <= point["Average"] <= point["Maximum"]
    p50, p99 = point["ExtendedStatistics"]["p50"], point["ExtendedStatistics"]["p99"]
    assert point["Minimum"] <= p50 <= p99 <= point["Maximum"]
    assert point["Sum"] == pytest.approx(point["Average"] * point["SampleCount"])


def _full_duration(cw, activity, main):
    stats = ("SampleCount", "Sum", "Average", "Minimum", "Maximum")
    point = statistics(cw, activity, "Duration", {"FunctionName": main}, stats)
    assert point["SampleCount"] == OK + FAILED + ON_VERSION
    # Percentiles come in their own call: CloudWatch documents Statistics and ExtendedStatistics
    # as exclusive.
    extended = statistics(cw, activity, "Duration", {"FunctionName": main}, (), ("p50", "p99"))
    return {**point, "ExtendedStatistics": extended["ExtendedStatistics"]}


def test_throttles_count_refused_invocations_only(cw, activity):
    throttled = activity["throttled"]
    eventually(lambda: _assert_sum(cw, activity, "Throttles", {"FunctionName": throttled}, THROTTLED))
    assert statistics(cw, activity, "Invocations", {"FunctionName": throttled}) == {}
    assert statistics(cw, activity, "Throttles", {"FunctionName": activity["main"]})["Sum"] == 0


def _assert_sum(cw, activity, metric, dimensions, expected):
    assert statistics(cw, activity, metric, dimensions)["Sum"] == expected


def test_concurrent_executions(cw, activity):
    point = statistics(cw, activity, "ConcurrentExecutions", {"FunctionName": activity["main"]}, ("Maximum",))
    assert point["Maximum"] >= 1


def test_billed_gb_seconds_by_architecture(cw, activity):
    arm = activity["arm"]
    billed = eventually(
        lambda: _point_with_samples(cw, activity, "BilledGBSeconds", {"FunctionName": arm}, ON_ARM, "Nimbus/Lambda")
    )
    duration_ms = statistics(cw, activity, "Duration", {"FunctionName": arm})["Sum"]
    # AWS bills each invocation's duration rounded up to the millisecond, at 512 MB = 0.5 GB.
    assert duration_ms / 1000 * 0.5 <= billed["Sum"] <= (duration_ms + ON_ARM) / 1000 * 0.5
    by_arm = statistics(cw, activity, "BilledGBSeconds", {"Architecture": "arm64"}, namespace="Nimbus/Lambda")
    assert by_arm["Sum"] >= billed["Sum"]
    main_billed = statistics(cw, activity, "BilledGBSeconds", {"FunctionName": activity["main"]},
                             namespace="Nimbus/Lambda")
    by_x86 = statistics(cw, activity, "BilledGBSeconds", {"Architecture": "x86_64"}, namespace="Nimbus/Lambda")
    assert by_x86["Sum"] >= main_billed["Sum"] > 0


def _point_with_samples(cw, activity, metric, dimensions, samples, namespace):
    point = statistics(cw, activity, metric, dimensions, ("Sum", "SampleCount"), namespace=namespace)
    assert point.get("SampleCount") == samples, point
    return point


def test_get_metric_data(cw, activity):
    main = activity["main"]

    def stat(query_id, metric, stat, dimensions):
        return {
            "Id": query_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/Lambda",
                    "MetricName": metric,
                    "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                },
                "Period": 3600,
                "Stat": stat,
            },
        }

    function = {"FunctionName": main}
    queries = [
        stat("invocations", "Invocations", "Sum", function),
        stat("errors", "Errors", "Sum", function),
        stat("p99", "Duration", "p99", function),
        stat("v1", "Invocations", "Sum", {"FunctionName": main, "Resource": f"{main}:1"}),
        {**stat("hidden", "Throttles", "Sum", function), "ReturnData": False},
        {**stat("labelled", "Errors", "Average", function), "Label": "error rate"},
    ]
    w = window(activity)
    response = eventually(lambda: _complete_data(cw, queries, w))
    results = {r["Id"]: r for r in response["MetricDataResults"]}
    assert set(results) == {"invocations", "errors", "p99", "v1", "labelled"}
    assert results["invocations"]["Values"] == [OK + FAILED + ON_VERSION]
    assert results["invocations"]["Label"] == "Invocations"
    assert results["errors"]["Values"] == [FAILED]
    assert results["v1"]["Values"] == [ON_VERSION]
    assert results["p99"]["Values"][0] > 0
    assert results["labelled"]["Label"] == "error rate"
    assert results["labelled"]["Values"][0] == pytest.approx(FAILED / (OK + FAILED + ON_VERSION))
    assert all(r["StatusCode"] == "Complete" for r in results.values())
    assert len(results["invocations"]["Timestamps"]) == 1


def _complete_data(cw, queries, w):
    response = cw.get_metric_data(MetricDataQueries=queries, StartTime=w["StartTime"], EndTime=w["EndTime"])
    invocations = next(r for r in response["MetricDataResults"] if r["Id"] == "invocations")
    assert invocations["Values"] == [OK + FAILED + ON_VERSION]
    return response


def test_get_metric_data_per_minute_newest_first(cw, activity):
    query = {
        "Id": "m",
        "MetricStat": {
            "Metric": {"Namespace": "AWS/Lambda", "MetricName": "Invocations",
                       "Dimensions": [{"Name": "FunctionName", "Value": activity["main"]}]},
            "Period": 60,
            "Stat": "Sum",
        },
    }
    w = window(activity)
    result = cw.get_metric_data(MetricDataQueries=[query], StartTime=w["StartTime"], EndTime=w["EndTime"])
    series = result["MetricDataResults"][0]
    assert sum(series["Values"]) == OK + FAILED + ON_VERSION
    assert series["Timestamps"] == sorted(series["Timestamps"], reverse=True)
    assert all(t.second == 0 for t in series["Timestamps"])
    ascending = cw.get_metric_data(MetricDataQueries=[query], StartTime=w["StartTime"], EndTime=w["EndTime"],
                                   ScanBy="TimestampAscending")["MetricDataResults"][0]
    assert ascending["Timestamps"] == sorted(series["Timestamps"])


def test_list_metrics(cw, activity):
    main = activity["main"]
    listed = cw.list_metrics(Namespace="AWS/Lambda", Dimensions=[{"Name": "FunctionName", "Value": main}])
    names = {m["MetricName"] for m in listed["Metrics"]}
    assert {"Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions"} <= names
    resources = {
        d["Value"] for m in listed["Metrics"] for d in m["Dimensions"] if d["Name"] == "Resource"
    }
    assert resources == {f"{main}:$LATEST", f"{main}:1"}
    throttled = cw.list_metrics(Dimensions=[{"Name": "FunctionName", "Value": activity["throttled"]}])
    assert {m["MetricName"] for m in throttled["Metrics"]} == {"Throttles"}
    paginated = [m for page in cw.get_paginator("list_metrics").paginate(Namespace="Nimbus/Lambda") for m in page["Metrics"]]
    assert {"BilledGBSeconds"} == {m["MetricName"] for m in paginated}
    architectures = {d["Value"] for m in paginated for d in m["Dimensions"] if d["Name"] == "Architecture"}
    assert {"x86_64", "arm64"} <= architectures
    recent = cw.list_metrics(MetricName="Invocations", RecentlyActive="PT3H",
                             Dimensions=[{"Name": "FunctionName", "Value": main}])
    assert [{"Name": "FunctionName", "Value": main}] in [m["Dimensions"] for m in recent["Metrics"]]


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_other_protocols_read_the_same_numbers(server, activity, protocol, tmp_path_factory):
    other = cloudwatch(server.endpoint, protocol, tmp_path_factory.mktemp("models"))
    assert other.meta.service_model.protocol == protocol
    main = activity["main"]
    eventually(lambda: _assert_sum(other, activity, "Invocations", {"FunctionName": main}, OK + FAILED + ON_VERSION))
    point = statistics(other, activity, "Duration", {"FunctionName": main}, (), ("p50",))
    assert point["ExtendedStatistics"]["p50"] > 0
    w = window(activity)
    query = {"Id": "e", "MetricStat": {"Metric": {"Namespace": "AWS/Lambda", "MetricName": "Errors",
             "Dimensions": [{"Name": "FunctionName", "Value": main}]}, "Period": 3600, "Stat": "Sum"}}
    data = other.get_metric_data(MetricDataQueries=[query], StartTime=w["StartTime"], EndTime=w["EndTime"])
    assert data["MetricDataResults"][0]["Values"] == [FAILED]
    listed = other.list_metrics(Namespace="AWS/Lambda", MetricName="Invocations",
                                Dimensions=[{"Name": "FunctionName", "Value": main}])
    assert len(listed["Metrics"]) == 3
    _assert_errors(other)


def test_errors_raise_botocores_exception_classes(cw):
    _assert_errors(cw)


def _assert_errors(cw):
    now = utcnow()
    base = {"Namespace": "AWS/Lambda", "MetricName": "Invocations"}
    with pytest.raises(cw.exceptions.InvalidParameterValueException, match="StartTime"):
        cw.get_metric_statistics(**base, StartTime=now, EndTime=now - dt.timedelta(hours=1), Period=60,
                                 Statistics=["Sum"])
    with pytest.raises(cw.exceptions.InvalidParameterValueException, match="Period"):
        cw.get_metric_statistics(**base, StartTime=now - dt.timedelta(hours=1), EndTime=now, Period=61,
                                 Statistics=["Sum"])
    with pytest.raises(cw.exceptions.InvalidParameterCombinationException, match="1440"):
        cw.get_metric_statistics(**base, StartTime=now - dt.timedelta(days=2), EndTime=now, Period=60,
                                 Statistics=["Sum"])
    with pytest.raises(cw.exceptions.InvalidParameterCombinationException):
        cw.get_metric_statistics(**base, StartTime=now - dt.timedelta(hours=1), EndTime=now, Period=60)
    with pytest.raises(cw.exceptions.InvalidParameterValueException, match="expression"):
        cw.get_metric_data(MetricDataQueries=[{"Id": "e", "Expression": "m9 * 2"}],
                           StartTime=now - dt.timedelta(hours=1), EndTime=now)
    with pytest.raises(cw.exceptions.InvalidNextToken):
        cw.get_metric_data(
            MetricDataQueries=[{"Id": "m", "MetricStat": {"Metric": base, "Period": 60, "Stat": "Sum"}}],
            StartTime=now - dt.timedelta(hours=1), EndTime=now, NextToken="not-a-token")
    with pytest.raises(cw.exceptions.ClientError) as refused:
        cw.put_anomaly_detector(SingleMetricAnomalyDetector={"Namespace": "N", "MetricName": "m", "Stat": "Sum"})
    assert refused.value.response["Error"]["Code"] == "InvalidAction"


def test_nimbus_functions_inventory_shows_the_same_figures(server, activity):
    with urllib.request.urlopen(f"{server.endpoint}/_nimbus/functions", timeout=5) as r:
        listing = json.loads(r.read())
    row = next(f for f in listing["functions"] if f["name"] == activity["main"])
    assert row["invocations"] == OK + FAILED + ON_VERSION
    assert row["errors"] == FAILED
    assert row["p50_ms"] > 0


@pytest.mark.skipif(shutil.which("aws") is None, reason="aws CLI not installed")
def test_aws_cli_get_metric_statistics(server, activity, tmp_path):
    env = aws_cli_env(None, tmp_path)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    w = window(activity)
    proc = subprocess.run(
        ["aws", "--endpoint-url", server.endpoint, "cloudwatch", "get-metric-statistics",
         "--namespace", "AWS/Lambda", "--metric-name", "Errors",
         "--dimensions", f"Name=FunctionName,Value={activity['main']}",
         "--start-time", w["StartTime"].strftime(fmt), "--end-time", w["EndTime"].strftime(fmt),
         "--period", "3600", "--statistics", "Sum", "SampleCount", "--output", "json"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["Label"] == "Errors"
    [point] = out["Datapoints"]
    assert point["Sum"] == FAILED
    assert point["SampleCount"] == OK + FAILED + ON_VERSION
    bad = subprocess.run(
        ["aws", "--endpoint-url", server.endpoint, "cloudwatch", "get-metric-statistics",
         "--namespace", "AWS/Lambda", "--metric-name", "Errors", "--start-time", "2024-01-02T00:00:00Z",
         "--end-time", "2024-01-01T00:00:00Z", "--period", "60", "--statistics", "Sum"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode != 0
    assert "InvalidParameterValue" in bad.stderr


def test_metrics_survive_a_restart(server_factory, tmp_path):
    srv = server_factory(data_dir=tmp_path / "data")
    cl = srv.client()
    name = unique_name("metrics-restart")
    cl.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                       Code={"ZipFile": make_zip({"app.py": HANDLER})})
    cl.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    for _ in range(3):
        cl.invoke(FunctionName=name, Payload="{}")
    activity = {"start": utcnow() - dt.timedelta(minutes=2)}
    before = statistics(cloudwatch(srv.endpoint), activity, "Invocations", {"FunctionName": name})
    assert before["Sum"] == 3
    assert srv.stop() == 0
    srv.start()
    after = statistics(cloudwatch(srv.endpoint), activity, "Invocations", {"FunctionName": name})
    assert after["Sum"] == 3
