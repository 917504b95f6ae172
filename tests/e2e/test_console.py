"""The console at /_nimbus/ui/: its safety (headers, host check, bounded live feed) over plain
HTTP, and a tour of every page in a real browser (Chromium through Selenium) against a nimbus
with a sample workload: a failing function's errors and its error line in the live logs, an
array job's grid filling, an interrupted spot instance on the capacity timeline, a stack, a state
machine's execution drawn as its graph, a queue's depth, the cost meter with its what-if
comparison; a 10,000-child array's grid; the capacity timeline and the functions' sparklines
after a restart. Screenshots of each page land in target/console-screenshots (or
$NIMBUS_CONSOLE_SCREENSHOTS)."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid

import boto3
import pytest

from batch_support import make_env, make_queue, shell_def, until
from console_support import (ARRAY_SIZE, ERROR_MARKER, X86_AMI, browser_or_skip, console_server_args, deploy_workload,
                             screenshot, severe_console_messages, wait_for)
from support import ROLE, aws_client, make_zip

MAX_FEEDS = 64  # nimbus_console::MAX_CLIENTS
BIG_ARRAY = 10_000
WHAT_IF_OPTIONS = ["Lambda/x86_64/on-demand", "Lambda/arm64/on-demand"] + [
    f"Batch/{arch}/{market}" for arch in ("x86_64", "arm64") for market in ("on-demand", "spot", "reserved")]


def fetch(endpoint, path, headers=None):
    request = urllib.request.Request(endpoint + path, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers, response.read()


def test_the_console_is_served_with_a_strict_policy_and_only_to_local_names(server):
    status, headers, body = fetch(server.endpoint, "/_nimbus/ui/")
    assert status == 200 and b'<script type="module" src="app.js">' in body
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, body = fetch(server.endpoint, "/_nimbus/ui/app.js")
    assert headers["Content-Type"].startswith("text/javascript") and b"import" in body
    # A page elsewhere cannot read the console through a name of its own that resolves here.
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch(server.endpoint, "/_nimbus/ui/", headers={"Host": "attacker.example:4566"})
    assert refused.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as missing:
        fetch(server.endpoint, "/_nimbus/ui/../Cargo.toml")
    assert missing.value.code == 404
    # The startup line gives the link.
    assert f"console: {server.endpoint}/_nimbus/ui/" in server.log_text()


def test_state_changing_nimbus_paths_refuse_other_sites(server):
    host = server.endpoint.removeprefix("http://")

    def post(headers):
        request = urllib.request.Request(server.endpoint + "/_nimbus/clock/advance?seconds=1", method="POST", data=b"", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    status, body = post({"Origin": "http://attacker.example"})
    assert status == 403 and b"other sites" in body
    assert post({"Sec-Fetch-Site": "cross-site"})[0] == 403
    # The console's own page (same origin) and clients that name no origin get through (this
    # clock is real, so the answer is that it cannot move).
    for headers in ({"Origin": f"http://{host}"}, {}):
        status, body = post(headers)
        assert status == 400 and b"clock is real time" in body, body


def test_the_live_feed_pushes_watched_paths_and_refuses_others(server):
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch(server.endpoint, "/_nimbus/events?watch=" + urllib.parse.quote("/2015-03-31/functions"))
    assert refused.value.code == 400
    host, port = server.endpoint.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/_nimbus/events?watch=/_nimbus/health&watch=/_nimbus/functions")
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    seen = {}
    while len(seen) < 2:
        line = response.fp.readline().decode()
        if line.startswith("data: ") and '"path"' in line:
            update = json.loads(line[6:])
            seen[update["path"]] = update["body"]
    assert seen["/_nimbus/health"]["status"] == "ready"
    assert "functions" in seen["/_nimbus/functions"]
    connection.close()  # the feed ends at its next tick; nimbus stops cleanly (checked at teardown)


def test_feeds_are_bounded_and_a_client_that_goes_away_frees_its_place(server_factory):
    server = server_factory()  # its own: no other test's feed holds a place
    host, port = server.endpoint.removeprefix("http://").split(":")

    def listen():
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", "/_nimbus/events?watch=/_nimbus/clock")
        return connection, connection.getresponse()

    held = [listen() for _ in range(MAX_FEEDS)]
    assert all(response.status == 200 for _, response in held)
    connection, response = listen()
    assert response.status == 503 and b"at most 64 listen at once" in response.read()
    connection.close()
    for connection, _ in held:
        connection.close()

    def fresh_feed():
        connection, response = listen()
        connection.close()
        return response.status == 200

    until("a place freed by the clients that left", fresh_feed, timeout=10, every=0.2)


@pytest.fixture(scope="module")
def console_server(server_factory):
    return server_factory(extra_args=console_server_args())


@pytest.fixture(scope="module")
def workload(console_server):
    return deploy_workload(console_server.endpoint)


@pytest.fixture(scope="module")
def browser():
    driver = browser_or_skip()
    yield driver
    driver.quit()


def visit(browser, endpoint, route):
    browser.get(f"{endpoint}/_nimbus/ui/#{route}")
    wait_for(browser, f"{route} to load", "return document.getElementById('page').dataset.loaded === 'true'")


def text_of(browser, selector):
    return browser.execute_script(f"const e = document.querySelector({json.dumps(selector)}); return e ? e.innerText : ''")


def test_a_person_sees_the_workload_on_every_page(browser, console_server, workload):
    endpoint = console_server.endpoint
    ui = f"{endpoint}/_nimbus/ui/"

    browser.get(ui)
    wait_for(browser, "the overview", "return document.querySelector('.card .v.ok')?.innerText === 'ready'")
    assert "Memory in use" in text_of(browser, "main")
    instances = wait_for(browser, "the instances running", "const card = [...document.querySelectorAll('.card')]"
                         ".find((c) => c.querySelector('.k').innerText === 'Instances'); return Number(card?.querySelector('.v').innerText) || 0")
    assert instances >= 2  # the spot instance (until its notice runs out), the group's, Batch's
    screenshot(browser, "overview")

    # Functions: the failing one shows its errors in the list.
    visit(browser, endpoint, "/functions")
    failing = workload["failing_fn"]
    errors = wait_for(browser, "the failing function's errors",
                      f"return document.querySelector('[data-function=\"{failing}\"] .errors.bad')?.innerText")
    assert int(errors) >= 3
    ok_errors = text_of(browser, f"[data-function=\"{workload['ok_fn']}\"] .errors")
    assert ok_errors == "0"
    # The sparklines come from CloudWatch's per-minute figures: the errors made before the page
    # opened are drawn at once.
    wait_for(browser, "the last hour's history", "return Number(document.getElementById('function-list').dataset.history) >= 2")
    assert browser.execute_script(f"return document.querySelector('[data-function=\"{failing}\"] svg.spark polyline.err') !== null")
    # Invocations made now show up without a reload, and the activity sparkline draws them.
    lam = aws_client("lambda", endpoint)
    for _ in range(4):
        lam.invoke(FunctionName=workload["ok_fn"], Payload=b'{"n": 2}')
    ok_row = f"[data-function=\"{workload['ok_fn']}\"]"
    wait_for(browser, "the new invocations, live",
             f"return document.querySelector('{ok_row} .num')?.innerText === '7'"
             f" && document.querySelector('{ok_row} svg.spark polyline') !== null")
    screenshot(browser, "functions")

    # Its page: error count, the error line in the live logs, a test invoke after confirming.
    visit(browser, endpoint, f"/functions/{failing}")
    assert int(text_of(browser, "#fn-errors .v")) >= 3
    wait_for(browser, "the error line in the logs",
             f"return document.getElementById('logs').innerText.includes('{ERROR_MARKER}')")
    assert browser.execute_script("return document.querySelector('#logs .line.error') !== null")
    wait_for(browser, "the last hour from CloudWatch", "return /\\d+ minutes? with invocations/.test(document.getElementById('last-hour').innerText)")
    screenshot(browser, "function")
    browser.find_element("id", "invoke").click()
    browser.switch_to.alert.accept()
    result = wait_for(browser, "the invoke's result",
                      "const t = document.getElementById('invoke-result').innerText; return t.includes('function error') && t")
    assert "Unhandled" in result and ERROR_MARKER in result
    screenshot(browser, "function-invoke")

    # Batch: the array job's grid fills as its children succeed.
    visit(browser, endpoint, "/batch")
    assert "console-array" in text_of(browser, "main")
    # The dependant hangs under the array job in the dependency graph.
    wait_for(browser, "the dependency graph",
             f"return !!document.querySelector('#dependencies g[data-node=\"{workload['after_job']}\"]')"
             f" && !!document.querySelector('#dependencies g[data-node=\"{workload['array_job']}\"]')")
    screenshot(browser, "batch")
    visit(browser, endpoint, f"/batch/jobs/{workload['array_job']}")
    done_counts = []

    def grid_done():
        statuses = browser.execute_script("return document.getElementById('array-grid').dataset.statuses || ''")
        done_counts.append(statuses.count("D"))
        return len(statuses) == ARRAY_SIZE and set(statuses) == {"D"} and statuses

    statuses = wait_for(browser, "every child to succeed", grid_done, timeout=90)
    assert statuses == "D" * ARRAY_SIZE
    # The grid only ever fills: no succeeded child goes back.
    assert done_counts == sorted(done_counts), done_counts
    assert f"SUCCEEDED: {ARRAY_SIZE}" in text_of(browser, "#array-counts")
    wait_for(browser, "the array job's own status", "return document.querySelector('h1 .badge')?.innerText === 'SUCCEEDED'")
    screenshot(browser, "batch-array")

    # Capacity: the timeline holds what happened before the page opened (kept in nimbus's store);
    # each running instance shows the CPU and memory it uses now.
    visit(browser, endpoint, "/capacity")
    wait_for(browser, "the spot instance's launch on the timeline",
             f"return (document.querySelector('#spot-timeline svg')?.textContent || '').includes('{workload['spot']}')")
    wait_for(browser, "the spot instance's CPU and memory",
             f"return document.querySelectorAll('tr[data-instance=\"{workload['spot']}\"] .meter-cell').length === 2")
    cpu = text_of(browser, f"tr[data-instance=\"{workload['spot']}\"] .meter-cell")
    assert " / " in cpu, cpu
    # A spot instance interrupted from its row (after confirming) lands on the timeline.
    button = f"button.interrupt[data-instance=\"{workload['spot']}\"]"
    wait_for(browser, "the spot instance's interrupt button", f"return document.querySelector('{button}') !== null")
    browser.execute_script(f"document.querySelector('{button}').click()")
    browser.switch_to.alert.accept()
    wait_for(browser, "the interruption on the timeline",
             f"return (document.getElementById('spot-timeline').dataset.interruptions || '').includes('{workload['spot']}')")
    assert browser.execute_script("return document.querySelectorAll('#spot-timeline circle.interruption').length") >= 1
    wait_for(browser, "the group's scaling activity", f"return document.getElementById('page').innerText.includes('{workload['group']}')")
    screenshot(browser, "capacity", full=True)

    # Cost: the workload priced as Lambda and as Batch on each purchase option and architecture,
    # with the price sources and their dates.
    visit(browser, endpoint, "/cost")
    assert "Metered cost" in text_of(browser, "main")
    options = browser.execute_script("return [...document.querySelectorAll('#what-if-table tr[data-option]')].map((r) => r.dataset.option)")
    assert sorted(options) == sorted(WHAT_IF_OPTIONS), options
    assert browser.execute_script("return document.querySelectorAll('#what-if-table tr.best').length") == 1
    sources = text_of(browser, "#price-sources")
    assert "2026-07-20" in sources and "Lambda" in sources and "karpenter" in sources, sources
    requests = browser.execute_script("const card = [...document.querySelectorAll('#what-if-workload .card')]"
                                      ".find((c) => c.querySelector('.k').innerText === 'Function requests'); return card?.querySelector('.v').innerText")
    assert int(requests.replace(",", "")) >= 6
    # Over time: the functions' GB-seconds (CloudWatch's figures) and the spot instance, stacked.
    wait_for(browser, "Lambda and spot over time",
             "return document.querySelector('#cost-by-service rect[data-series=\"Lambda\"]') !== null"
             " && document.querySelector('#cost-by-market rect[data-series=\"spot\"]') !== null")
    screenshot(browser, "cost", full=True)

    # Stacks: the stack's resource and output.
    cfn_done = until("the stack created", lambda: "CREATE_COMPLETE" in admin_stack_status(endpoint, workload["stack"]))
    assert cfn_done
    visit(browser, endpoint, f"/stacks/{workload['stack']}")
    wait_for(browser, "the stack's resources", "return document.getElementById('page').innerText.includes('AWS::SQS::Queue')")
    assert "InboxUrl" in text_of(browser, "main")
    screenshot(browser, "stack")

    # State machines: the execution's graph colours the states it went through.
    visit(browser, endpoint, f"/states/{urllib.parse.quote(workload['machine'], safe='')}/"
                             f"{urllib.parse.quote(workload['execution'], safe='')}")
    wait_for(browser, "the execution's states",
             "return document.querySelector('#execution-graph g[data-node=\"Done\"]')?.dataset.status === 'SUCCEEDED'")
    assert browser.execute_script(
        "return document.querySelector('#execution-graph g[data-node=\"Stop\"]').dataset.status") == ""
    screenshot(browser, "execution")

    visit(browser, endpoint, "/streams")
    wait_for(browser, "the queue's depth", f"return document.getElementById('queues').innerText.includes('{workload['queue']}')")
    screenshot(browser, "streams")

    # A phone's width: the menu folds away, nothing overflows sideways.
    browser.set_window_size(390, 844)
    for shot, route in (("overview", "/"), ("functions", "/functions"), ("batch-array", f"/batch/jobs/{workload['array_job']}")):
        visit(browser, endpoint, route)
        assert browser.execute_script("return getComputedStyle(document.getElementById('menu')).display") != "none"
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{route} overflows a phone's width by {overflow}px"
        screenshot(browser, f"phone-{shot}")
    browser.set_window_size(1280, 900)

    assert severe_console_messages(browser) == []


def admin_stack_status(endpoint, stack):
    return aws_client("cloudformation", endpoint).describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]


def test_the_what_if_comparison_prices_the_workload_seen(console_server, workload):
    status, _, body = fetch(console_server.endpoint, "/_nimbus/ec2/what-if")
    answer = json.loads(body)
    functions = answer["workload"]["functions"]
    assert functions["unknown"] is None and functions["requests"] >= 6 and functions["gb_seconds"] > 0
    assert answer["workload"]["instances"]["billed_seconds"] > 0
    options = {f"{o['service']}/{o['architecture']}/{o['market']}": o for o in answer["options"]}
    assert sorted(options) == sorted(WHAT_IF_OPTIONS)
    for option in options.values():
        assert abs(option["usd"] - option["functions_usd"] - option["instances_usd"]) < 1e-5, option
    # Graviton's GB-second is cheaper; spot and reserved capacity cost less than on demand.
    assert options["Lambda/arm64/on-demand"]["functions_usd"] < options["Lambda/x86_64/on-demand"]["functions_usd"]
    for arch in ("x86_64", "arm64"):
        on_demand = options[f"Batch/{arch}/on-demand"]["instances_usd"]
        assert options[f"Batch/{arch}/spot"]["instances_usd"] < on_demand
        assert options[f"Batch/{arch}/reserved"]["instances_usd"] < on_demand
    assert {s["date"] for s in answer["sources"]} >= {"2026-07-20"} and all(s["source"] for s in answer["sources"])
    assert answer["as_metered"]["usd"] >= answer["as_metered"]["instances_usd"] > 0


def test_a_ten_thousand_child_array_grid_stays_responsive(browser, console_server):
    """The issue's scale: an array of 10,000 children drawn as one canvas, redrawn live as every
    child changes state, while the page keeps answering."""
    endpoint = console_server.endpoint
    batch = aws_client("batch", endpoint)
    # A disabled environment: the children wait RUNNABLE (nothing runs 10,000 processes here).
    queue = make_queue(batch, make_env(batch, f"console-off-{uuid.uuid4().hex[:6]}", state="DISABLED"))
    definition = shell_def(batch, "true")
    job_id = batch.submit_job(jobName="console-10k", jobQueue=queue, jobDefinition=definition,
                              arrayProperties={"size": BIG_ARRAY})["jobId"]
    visit(browser, endpoint, f"/batch/jobs/{job_id}")
    wait_for(browser, "10,000 runnable children in the grid",
             f"return document.getElementById('array-grid').dataset.statuses === 'R'.repeat({BIG_ARRAY})", timeout=60)
    # One canvas, not a node per child: the page stays small.
    assert browser.execute_script("return document.getElementsByTagName('*').length") < 1000
    assert f"RUNNABLE: {BIG_ARRAY:,}" in text_of(browser, "#array-counts")
    screenshot(browser, "batch-array-10000")
    # Terminating the parent fails every child; the grid follows live, and the page still answers
    # a navigation at once after the last redraw.
    batch.terminate_job(jobId=job_id, reason="console test: done looking")
    wait_for(browser, "every child failed in the grid",
             f"return document.getElementById('array-grid').dataset.statuses === 'F'.repeat({BIG_ARRAY})", timeout=120)
    browser.execute_script("location.hash = '#/batch'")
    wait_for(browser, "the batch page after the big grid", "return document.getElementById('page').dataset.loaded === 'true'")
    assert severe_console_messages(browser) == []


def test_the_capacity_timeline_and_sparklines_outlive_a_restart(browser, server_factory):
    server = server_factory(extra_args=console_server_args())
    endpoint = server.endpoint
    ec2 = aws_client("ec2", endpoint)
    spot = ec2.run_instances(ImageId=X86_AMI, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                             InstanceMarketOptions={"MarketType": "spot"})["Instances"][0]["InstanceId"]
    until("the spot instance running", lambda: ec2.describe_instances(InstanceIds=[spot])
          ["Reservations"][0]["Instances"][0]["State"]["Name"] == "running")
    request = urllib.request.Request(f"{endpoint}/_nimbus/ec2/interrupt?instance={spot}", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
    lam = aws_client("lambda", endpoint)
    name = f"console-restart-{uuid.uuid4().hex[:6]}"
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": make_zip({"app.py": "def handler(event, context):\n    return event\n"})}, Timeout=10)
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    for _ in range(3):
        lam.invoke(FunctionName=name, Payload=b"{}")
    server.stop()
    server.start()
    endpoint = server.endpoint

    visit(browser, endpoint, "/capacity")
    wait_for(browser, "the interruption from before the restart",
             f"return (document.getElementById('spot-timeline').dataset.interruptions || '').includes('{spot}')")
    visit(browser, endpoint, "/functions")
    wait_for(browser, "the invocations from before the restart in the sparkline",
             f"return document.querySelector('[data-function=\"{name}\"] svg.spark polyline, [data-function=\"{name}\"] svg.spark circle') !== null"
             " && Number(document.getElementById('function-list').dataset.history) >= 1")
    assert severe_console_messages(browser) == []


def test_another_regions_function_is_listed_and_opens_in_its_region(browser, console_server):
    endpoint = console_server.endpoint
    name = f"console-west-{uuid.uuid4().hex[:8]}"
    west = boto3.client("lambda", endpoint_url=endpoint, region_name="eu-west-1",
                        aws_access_key_id="test", aws_secret_access_key="test")
    arn = west.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                               Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return e\n"})})["FunctionArn"]
    assert ":eu-west-1:" in arn
    try:
        visit(browser, endpoint, "/functions")
        row = f"[data-function=\"{name}\"]"
        shown = wait_for(browser, "the other region's function in the list",
                         f"return document.querySelector('{row}')?.innerText")
        assert "eu-west-1" in shown
        browser.execute_script(f"document.querySelector('{row} a').click()")
        wait_for(browser, "its page, read in its region",
                 f"return document.getElementById('page').innerText.includes({json.dumps(arn)})")
        assert browser.execute_script("return localStorage.getItem('nimbus.region')") == "eu-west-1"
        assert not severe_console_messages(browser)
    finally:
        browser.execute_script("localStorage.removeItem('nimbus.region')")
        west.delete_function(FunctionName=name)


def test_a_page_left_while_loading_does_not_draw_over_the_next(browser, console_server, workload):
    endpoint = console_server.endpoint
    visit(browser, endpoint, "/")
    failing = workload["failing_fn"]
    # The function's page is still fetching when the overview opens.
    browser.execute_script(f"location.hash = '#/functions/{failing}'; setTimeout(() => {{ location.hash = '#/'; }}, 5);")
    wait_for(browser, "the overview", "return location.hash === '#/' && document.getElementById('page').dataset.loaded === 'true'")
    # Long enough for the function's page to have answered had it drawn anyway.
    browser.execute_script("return new Promise((done) => setTimeout(done, 1500))")
    heading = text_of(browser, "#page h1")
    assert heading == "Overview", heading
