"""CloudWatch custom metrics and alarms: PutMetricData into an application's namespace, read
back with GetMetricStatistics / GetMetricData / ListMetrics, and alarms that evaluate them."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError

from support import aws_cli_env, aws_client


@pytest.fixture(scope="module")
def cw(server):
    return aws_client("cloudwatch", server.endpoint)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def test_put_metric_data_and_read_it_back(cw):
    ns = f"App/{uuid.uuid4().hex[:8]}"
    dims = [{"Name": "Service", "Value": "api"}]
    cw.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Latency", "Dimensions": dims, "Value": 100, "Unit": "Milliseconds"},
        {"MetricName": "Latency", "Dimensions": dims, "Values": [200, 300], "Counts": [1, 2], "Unit": "Milliseconds"},
        {"MetricName": "Latency", "Dimensions": dims, "Unit": "Milliseconds",
         "StatisticValues": {"SampleCount": 2, "Sum": 50, "Minimum": 10, "Maximum": 40}},
        {"MetricName": "Requests", "Value": 1, "StorageResolution": 1},
    ])
    start, end = now() - dt.timedelta(minutes=5), now() + dt.timedelta(minutes=1)
    stats = cw.get_metric_statistics(Namespace=ns, MetricName="Latency", Dimensions=dims, StartTime=start,
                                     EndTime=end, Period=3600, Statistics=["SampleCount", "Sum", "Minimum", "Maximum", "Average"])
    [point] = stats["Datapoints"]
    assert (point["SampleCount"], point["Sum"], point["Minimum"], point["Maximum"]) == (6, 950, 10, 300)
    assert point["Average"] == pytest.approx(950 / 6)
    assert point["Unit"] == "Milliseconds"
    data = cw.get_metric_data(StartTime=start, EndTime=end, MetricDataQueries=[{
        "Id": "m1", "MetricStat": {"Metric": {"Namespace": ns, "MetricName": "Latency", "Dimensions": dims},
                                   "Period": 3600, "Stat": "Maximum"}}])
    assert data["MetricDataResults"][0]["Values"] == [300]
    math = cw.get_metric_data(StartTime=start, EndTime=end, MetricDataQueries=[
        {"Id": "total", "ReturnData": False, "MetricStat": {"Metric": {"Namespace": ns, "MetricName": "Latency",
                                                                     "Dimensions": dims}, "Period": 3600, "Stat": "Sum"}},
        {"Id": "count", "ReturnData": False, "MetricStat": {"Metric": {"Namespace": ns, "MetricName": "Latency",
                                                                     "Dimensions": dims}, "Period": 3600, "Stat": "SampleCount"}},
        {"Id": "mean", "Expression": "total / count", "Label": "mean latency"}])
    [result] = math["MetricDataResults"]
    assert (result["Id"], result["Label"]) == ("mean", "mean latency")
    assert result["Values"] == [pytest.approx(950 / 6)]
    listed = cw.list_metrics(Namespace=ns)["Metrics"]
    assert sorted(m["MetricName"] for m in listed) == ["Latency", "Requests"]
    assert cw.list_metrics(Namespace=ns, Dimensions=[{"Name": "Service"}])["Metrics"][0]["Dimensions"] == dims


def test_put_metric_data_is_validated(cw):
    with pytest.raises(ClientError) as excinfo:
        cw.put_metric_data(Namespace="AWS/Lambda", MetricData=[{"MetricName": "x", "Value": 1}])
    assert excinfo.value.response["Error"]["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as excinfo:
        cw.put_metric_data(Namespace="App", MetricData=[{"MetricName": "x", "Value": 1, "Values": [1]}])
    assert excinfo.value.response["Error"]["Code"] == "InvalidParameterCombination"


def test_alarms_stored_evaluated_and_set(cw):
    ns, name = f"App/{uuid.uuid4().hex[:8]}", f"high-errors-{uuid.uuid4().hex[:6]}"
    cw.put_metric_alarm(AlarmName=name, Namespace=ns, MetricName="Errors", Statistic="Sum", Period=60,
                        EvaluationPeriods=1, Threshold=5, ComparisonOperator="GreaterThanThreshold",
                        AlarmActions=["arn:aws:sns:us-east-1:000000000000:alerts"], TreatMissingData="notBreaching")
    [alarm] = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert alarm["Threshold"] == 5 and alarm["EvaluationPeriods"] == 1
    assert alarm["AlarmActions"] == ["arn:aws:sns:us-east-1:000000000000:alerts"]
    assert alarm["StateValue"] in ("INSUFFICIENT_DATA", "OK")
    cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="testing")
    [alarm] = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert (alarm["StateValue"], alarm["StateReason"]) == ("ALARM", "testing")
    history = cw.describe_alarm_history(AlarmName=name, HistoryItemType="StateUpdate")["AlarmHistoryItems"]
    assert history[0]["HistorySummary"].endswith("to ALARM")
    assert json.loads(history[0]["HistoryData"])["newState"]["stateValue"] == "ALARM"
    assert [a["AlarmName"] for a in cw.describe_alarms_for_metric(Namespace=ns, MetricName="Errors")["MetricAlarms"]] == [name]
    assert cw.describe_alarms(AlarmNamePrefix=name[:10], StateValue="ALARM")["MetricAlarms"]
    cw.delete_alarms(AlarmNames=[name])
    assert cw.describe_alarms(AlarmNames=[name])["MetricAlarms"] == []
    with pytest.raises(ClientError) as excinfo:
        cw.delete_alarms(AlarmNames=[name])
    assert excinfo.value.response["Error"]["Code"] == "ResourceNotFound"


def test_aws_cli_put_metric_data(server, cw, tmp_path):
    ns = f"Cli/{uuid.uuid4().hex[:8]}"
    env = aws_cli_env(server.endpoint, tmp_path)
    proc = subprocess.run(["aws", "cloudwatch", "put-metric-data", "--namespace", ns, "--metric-name", "Jobs",
                           "--value", "3"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(["aws", "cloudwatch", "list-metrics", "--namespace", ns], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [m["MetricName"] for m in json.loads(proc.stdout)["Metrics"]] == ["Jobs"]


def test_dashboards_and_alarm_tags(cw):
    name = f"dash-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"widgets": []})
    assert cw.put_dashboard(DashboardName=name, DashboardBody=body)["DashboardValidationMessages"] == []
    assert cw.get_dashboard(DashboardName=name)["DashboardBody"] == body
    assert [d["DashboardName"] for d in cw.list_dashboards(DashboardNamePrefix=name)["DashboardEntries"]] == [name]
    cw.delete_dashboards(DashboardNames=[name])
    with pytest.raises(ClientError) as excinfo:
        cw.get_dashboard(DashboardName=name)
    assert excinfo.value.response["Error"]["Code"] == "ResourceNotFound"

    alarm = f"tagged-{uuid.uuid4().hex[:6]}"
    cw.put_metric_alarm(AlarmName=alarm, Namespace="App", MetricName="m", Statistic="Sum", Period=60,
                        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold",
                        Tags=[{"Key": "team", "Value": "data"}])
    arn = cw.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["AlarmArn"]
    cw.tag_resource(ResourceARN=arn, Tags=[{"Key": "env", "Value": "dev"}])
    tags = cw.list_tags_for_resource(ResourceARN=arn)["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {"team": "data", "env": "dev"}
    cw.untag_resource(ResourceARN=arn, TagKeys=["team"])
    assert cw.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "env", "Value": "dev"}]
    cw.delete_alarms(AlarmNames=[alarm])


def test_alarm_state_change_notifies_its_sns_topic(server, cw):
    import time
    sns, sqs = aws_client("sns", server.endpoint), aws_client("sqs", server.endpoint)
    topic = sns.create_topic(Name=f"alerts-{uuid.uuid4().hex[:8]}")["TopicArn"]
    queue_name = f"alerts-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    name = f"notify-{uuid.uuid4().hex[:6]}"
    cw.put_metric_alarm(AlarmName=name, Namespace="App", MetricName="Errors", Statistic="Sum", Period=60,
                        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold",
                        AlarmActions=[topic])
    cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="checking the pager")
    deadline, messages = time.monotonic() + 10, []
    while not messages and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
    assert messages, "no notification"
    envelope = json.loads(messages[0]["Body"])
    assert envelope["Subject"].startswith(f'ALARM: "{name}"')
    notification = json.loads(envelope["Message"])
    assert (notification["AlarmName"], notification["NewStateValue"]) == (name, "ALARM")
    assert notification["NewStateReason"] == "checking the pager"
    assert notification["Trigger"]["MetricName"] == "Errors"
    cw.delete_alarms(AlarmNames=[name])


def test_composite_alarm_follows_its_rule(cw):
    tag = uuid.uuid4().hex[:6]
    cpu, mem, both = f"cpu-{tag}", f"mem-{tag}", f"both-{tag}"
    for name in (cpu, mem):
        cw.put_metric_alarm(AlarmName=name, Namespace="App", MetricName=name, Statistic="Sum", Period=60,
                            EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    cw.put_composite_alarm(AlarmName=both, AlarmRule=f"ALARM({cpu}) AND ALARM(\"{mem}\")")
    cw.set_alarm_state(AlarmName=cpu, StateValue="ALARM", StateReason="t")
    [composite] = cw.describe_alarms(AlarmNames=[both], AlarmTypes=["CompositeAlarm"])["CompositeAlarms"]
    assert composite["StateValue"] == "OK" and composite["AlarmRule"].startswith("ALARM(")
    cw.set_alarm_state(AlarmName=mem, StateValue="ALARM", StateReason="t")
    [composite] = cw.describe_alarms(AlarmNames=[both], AlarmTypes=["CompositeAlarm"])["CompositeAlarms"]
    assert composite["StateValue"] == "ALARM"
    with pytest.raises(ClientError) as excinfo:
        cw.put_composite_alarm(AlarmName=f"bad-{tag}", AlarmRule="ALARM(nobody-has-this)")
    assert excinfo.value.response["Error"]["Code"] == "InvalidParameterValue"
    cw.delete_alarms(AlarmNames=[both, cpu, mem])


def test_alarms_evaluate_on_nimbus_clock(server_factory):
    import time
    import urllib.request
    server = server_factory(extra_args=["--clock", "virtual"])
    cw = aws_client("cloudwatch", server.endpoint)
    name = f"virtual-{uuid.uuid4().hex[:6]}"
    cw.put_metric_alarm(AlarmName=name, Namespace="App", MetricName="Errors", Statistic="Sum", Period=60,
                        EvaluationPeriods=1, Threshold=5, ComparisonOperator="GreaterThanThreshold")
    cw.put_metric_data(Namespace="App", MetricData=[{"MetricName": "Errors", "Value": 9}])
    advance = urllib.request.Request(f"{server.endpoint}/_nimbus/clock/advance?seconds=60", method="POST")
    urllib.request.urlopen(advance).read()
    deadline, state = time.monotonic() + 10, None
    while state != "ALARM" and time.monotonic() < deadline:
        state = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"]
        time.sleep(0.1)
    assert state == "ALARM"
