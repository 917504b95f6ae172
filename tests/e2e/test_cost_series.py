"""The meter as a series over time: on-demand and spot instances run across half an hour of a
virtual clock; `GET /_nimbus/ec2/meter/series` and `nimbus cost --over-time` give what was charged
per minute by service and by purchase option, agreeing with the meter's total; the console's cost
page draws both stacked over time (and updates live), at desktop and phone width; the series
outlives kill -9 and a restart. Screenshots land in target/console-screenshots (or
$NIMBUS_CONSOLE_SCREENSHOTS)."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
import uuid

import pytest

from batch_support import finished, make_env, make_queue, shell_def, until
from console_support import X86_AMI, browser_or_skip, screenshot, severe_console_messages, wait_for
from support import aws_client

VIRTUAL = ["--clock", "virtual", "--capacity", "vcpus=32,memory=32"]


def admin(endpoint, path, method="GET"):
    request = urllib.request.Request(endpoint + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def advance(endpoint, seconds):
    admin(endpoint, f"/_nimbus/clock/advance?seconds={seconds}", method="POST")


def launch(ec2, instance_type, spot=False):
    extra = {"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}
    iid = ec2.run_instances(ImageId=X86_AMI, InstanceType=instance_type, MinCount=1, MaxCount=1, **extra)["Instances"][0]["InstanceId"]
    until(f"{iid} running", lambda: state(ec2, iid) == "running")
    return iid


def state(ec2, iid):
    return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]


def terminate(ec2, *ids):
    ec2.terminate_instances(InstanceIds=list(ids))
    until("terminated", lambda: all(state(ec2, i) == "terminated" for i in ids))


def charged(series, key, name):
    """The buckets (by start) in which `name` was charged something."""
    return {start: usd for start, usd in zip(series["buckets"], series[key].get(name, [])) if usd > 0}


@pytest.fixture(scope="module")
def browser():
    driver = browser_or_skip()
    yield driver
    driver.quit()


def test_a_person_sees_the_ledger_over_time_by_service_and_purchase_option(browser, server_factory, nimbus_bin):
    server = server_factory(extra_args=VIRTUAL)
    endpoint = server.endpoint
    ec2 = aws_client("ec2", endpoint)
    small = launch(ec2, "t3.micro")
    spot = launch(ec2, "t3.micro", spot=True)
    # A Batch job: its compute environment's instance is charged to Batch.
    batch = aws_client("batch", endpoint)
    queue = make_queue(batch, make_env(batch, f"cost-{uuid.uuid4().hex[:6]}", types=("m5.large",), max_vcpus=2))
    job_id = batch.submit_job(jobName="priced", jobQueue=queue, jobDefinition=shell_def(batch, "echo priced"))["jobId"]
    assert finished(batch, job_id)["status"] == "SUCCEEDED"
    advance(endpoint, 600)
    large = launch(ec2, "m5.large")
    advance(endpoint, 600)
    terminate(ec2, small)
    advance(endpoint, 600)

    series = admin(endpoint, "/_nimbus/ec2/meter/series")
    assert series["bucket_seconds"] == 60 and 60 <= len(series["buckets"]) <= 62, (series["bucket_seconds"], len(series["buckets"]))
    on_demand, spot_usd = charged(series, "by_market", "on-demand"), charged(series, "by_market", "spot")
    assert len(on_demand) >= 30 and len(spot_usd) >= 30, (on_demand, spot_usd)
    assert charged(series, "by_market", "reserved") == {}
    # The m5.large joined ten minutes in: EC2's later minutes cost more than its first ones.
    minutes = list(charged(series, "by_service", "EC2").values())
    assert minutes[15] > 3 * minutes[2], minutes
    assert len(charged(series, "by_service", "EC2")) >= 30 and charged(series, "by_service", "Batch"), series["by_service"]
    assert abs(sum(series["totals"]["by_service"].values()) - sum(series["totals"]["by_market"].values())) < 1e-5

    # The page: both charts stacked over time, the spot and on-demand layers in many buckets.
    browser.get(f"{endpoint}/_nimbus/ui/#/cost")
    wait_for(browser, "the cost page", "return document.getElementById('page').dataset.loaded === 'true'")
    buckets = wait_for(browser, "spot and on-demand drawn over time", """
        const rects = [...document.querySelectorAll('#cost-by-market rect[data-series]')];
        const seen = (s) => new Set(rects.filter((r) => r.dataset.series === s).map((r) => r.dataset.bucket)).size;
        return seen('spot') > 1 && seen('on-demand') > 1 ? [seen('spot'), seen('on-demand')] : null""")
    assert min(buckets) >= 30, buckets
    assert browser.execute_script(
        "return new Set([...document.querySelectorAll('#cost-by-service rect[data-series=\"EC2\"]')].map((r) => r.dataset.bucket)).size") >= 30
    assert browser.execute_script("return document.querySelectorAll('#cost-by-service rect[data-series=\"Batch\"]').length") >= 1
    legend = browser.execute_script("return document.querySelector('#cost-by-market .legend').innerText")
    assert "spot $" in legend and "on-demand $" in legend, legend
    assert "buckets of 1 min" in browser.execute_script("return document.getElementById('cost-over-time-note').innerText")

    # Everything stops; the page follows live, and its totals are the endpoint's and the CLI's.
    terminate(ec2, spot, large)
    series = admin(endpoint, "/_nimbus/ec2/meter/series")
    meter = admin(endpoint, "/_nimbus/ec2/meter")
    assert abs(series["totals"]["instances_usd"] - meter["total_usd"]) < 1e-5, (series["totals"], meter["total_usd"])
    by_market = series["totals"]["by_market"]
    assert abs(sum(by_market.values()) - meter["total_usd"]) < 1e-5
    for market in ("on-demand", "spot"):
        metered = sum(line["usd"] for line in meter["lines"] if line["market"] == market)
        assert abs(by_market[market] - metered) < 1e-5, (market, by_market, metered)
    wait_for(browser, "the page's legend at the final totals", f"""
        const usd = (s) => Number(document.querySelector(`#cost-by-market .legend [data-series="${{s}}"]`)?.dataset.usd);
        return Math.abs(usd('spot') - {by_market['spot']}) < 1e-6 && Math.abs(usd('on-demand') - {by_market['on-demand']}) < 1e-6""")

    def nimbus(*args):
        done = subprocess.run([str(nimbus_bin), "cost", *args, "--endpoint", endpoint], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    printed = nimbus("--over-time")
    assert f"total {series['totals']['total_usd']:.6f} USD" in printed and "ON-DEMAND" in printed, printed
    assert len([line for line in printed.splitlines() if line.startswith("20")]) >= 30, printed
    cli = json.loads(nimbus("--over-time", "--bucket", "10m", "--json"))
    assert cli["bucket_seconds"] == 600 and len(cli["buckets"]) <= 8
    assert abs(cli["totals"]["instances_usd"] - meter["total_usd"]) < 1e-5
    assert "total " in nimbus() and "t3.micro" in nimbus()  # the meter's own output is unchanged
    screenshot(browser, "cost", full=True)

    # A phone's width: the charts are drawn again at the column's width, nothing overflows sideways.
    browser.set_window_size(390, 844)
    try:
        wait_for(browser, "the charts redrawn at a phone's width",
                 "return Number(document.querySelector('#cost-by-market svg').getAttribute('viewBox').split(' ')[2]) < 390")
        browser.execute_script("location.hash = '#/'")
        wait_for(browser, "the overview", "return document.getElementById('page').dataset.loaded === 'true'")
        browser.execute_script("location.hash = '#/cost'")
        wait_for(browser, "the cost page opened on a phone", "return document.getElementById('page').dataset.loaded === 'true'"
                 " && document.querySelector('#cost-by-market rect[data-series]') !== null")
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the cost page overflows a phone's width by {overflow}px"
        screenshot(browser, "phone-cost")
    finally:
        browser.set_window_size(1280, 900)
    assert severe_console_messages(browser) == []


def test_bad_series_requests_are_refused_and_change_nothing(server_factory):
    server = server_factory(extra_args=VIRTUAL)
    for query in ("bucket=0", "bucket=-5", "bucket=nan", "bucket=1e30", "bucket=inf", "since=86400&bucket=1"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            admin(server.endpoint, f"/_nimbus/ec2/meter/series?{query}")
        assert refused.value.code == 400, query
    assert admin(server.endpoint, "/_nimbus/ec2/meter/series")["totals"]["total_usd"] == 0


def test_the_series_outlives_kill_9_and_a_restart(server_factory):
    server = server_factory(extra_args=VIRTUAL)
    ec2 = aws_client("ec2", server.endpoint)
    on_demand = launch(ec2, "t3.small")
    spot = launch(ec2, "t3.small", spot=True)
    advance(server.endpoint, 300)
    terminate(ec2, on_demand, spot)
    before = admin(server.endpoint, "/_nimbus/ec2/meter/series?bucket=60")
    assert len(charged(before, "by_market", "spot")) >= 5 and len(charged(before, "by_market", "on-demand")) >= 5
    server.kill()
    server.start()
    # The virtual clock starts again from real time: move it past where it was.
    advance(server.endpoint, 360)
    after = admin(server.endpoint, "/_nimbus/ec2/meter/series?bucket=60")
    for key in ("by_market", "by_service"):
        for name in before[key]:
            assert charged(after, key, name) == charged(before, key, name), (key, name)
    assert after["totals"]["instances_usd"] == before["totals"]["instances_usd"] > 0
