#!/usr/bin/env python3
"""The console at scale, in headless Chromium through Selenium: first paint of the functions page
(navigation start → the list's first rows drawn) with 1,000 functions, a jump to the end of the
list (scroll → the last rows drawn), a 10,000-child array's grid drawn (canvas alone), and a real
10,000-child array job's page: navigation → all 10,000 children drawn, and while every child
flips to FAILED (the parent terminated) the longest gap between frames and the time until the
grid shows them all.

    cargo build --bin nimbus && python3 bench/console.py [--functions 1000] [--rounds 5]

Needs Debian's chromium and chromium-driver and the selenium package. Starts its own nimbus on a
free port with a temporary data directory and stops it at the end. The debug build is the
default (`--nimbus` for another).
"""

import argparse
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLE = "arn:aws:iam::000000000000:role/r"

FIRST_ROWS = """
const done = arguments[arguments.length - 1];
const check = () => document.querySelector('#function-list .row[data-function]')
  ? done(performance.now()) : requestAnimationFrame(check);
check();
"""

GRID_10000 = """
const done = arguments[arguments.length - 1];
import('./charts.js').then(({ drawGrid }) => {
  const canvas = document.createElement('canvas');
  document.body.append(canvas);
  const statuses = 'D'.repeat(6000) + 'U'.repeat(2000) + 'R'.repeat(2000);
  const start = performance.now();
  drawGrid(canvas, statuses);
  requestAnimationFrame(() => done(performance.now() - start));
});
"""

# Frames while the page lives: the longest gap between two, from now on.
WATCH_FRAMES = """
window.__gaps = { last: performance.now(), longest: 0, frames: 0 };
const tick = (now) => {
  const g = window.__gaps;
  g.longest = Math.max(g.longest, now - g.last); g.last = now; g.frames += 1;
  requestAnimationFrame(tick);
};
requestAnimationFrame(tick);
"""

GRID_IS = """
const done = arguments[arguments.length - 1];
const [want, size] = [arguments[0], arguments[1]];
const start = performance.now();
const check = () => {
  const grid = document.getElementById('array-grid');
  // [ms since this call, ms since the navigation started], at the frame after the grid is drawn.
  if (grid && grid.dataset.statuses === want.repeat(size)) requestAnimationFrame(() => done([performance.now() - start, performance.now()]));
  else setTimeout(check, 5);
};
check();
"""

SCROLL_TO_END = """
const done = arguments[arguments.length - 1];
const [box, last] = [document.getElementById('function-list'), arguments[0]];
const start = performance.now();
box.scrollTop = box.scrollHeight;
const check = () => document.querySelector(`[data-function="${last}"]`)
  ? requestAnimationFrame(() => done(performance.now() - start)) : requestAnimationFrame(check);
check();
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def big_array(driver, endpoint, rounds, size=10_000):
    """Each round: a fresh 10,000-child array (its environment disabled: the children wait
    RUNNABLE), its page opened, then the parent terminated so that every child fails live."""
    batch = boto3.client("batch", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
                         aws_secret_access_key="x")
    batch.create_compute_environment(computeEnvironmentName="bench-off", type="MANAGED", state="DISABLED", computeResources={
        "type": "EC2", "minvCpus": 0, "maxvCpus": 16, "instanceTypes": ["optimal"], "subnets": ["subnet-1"],
        "securityGroupIds": ["sg-1"], "instanceRole": "ecsInstanceRole"})
    while batch.describe_compute_environments(computeEnvironments=["bench-off"])["computeEnvironments"][0]["status"] != "VALID":
        time.sleep(0.1)
    batch.create_job_queue(jobQueueName="bench-q", priority=1, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "bench-off"}])
    while batch.describe_job_queues(jobQueues=["bench-q"])["jobQueues"][0]["status"] != "VALID":
        time.sleep(0.1)
    batch.register_job_definition(jobDefinitionName="bench-def", type="container", containerProperties={
        "image": "nimbus/host", "command": ["true"], "vcpus": 1, "memory": 128})
    out = {"open": [], "flip": [], "gap": [], "elements": 0}
    for _ in range(rounds):
        job = batch.submit_job(jobName="bench-10k", jobQueue="bench-q", jobDefinition="bench-def",
                               arrayProperties={"size": size})["jobId"]
        while True:  # every child stored before the page is timed
            with urllib.request.urlopen(f"{endpoint}/_nimbus/batch/array?job={job}", timeout=30) as answer:
                if json.load(answer)["statuses"] == "R" * size:
                    break
            time.sleep(0.2)
        driver.get("about:blank")
        driver.get(f"{endpoint}/_nimbus/ui/#/batch/jobs/{job}")
        out["open"].append(driver.execute_async_script(GRID_IS, "R", size)[1])
        out["elements"] = driver.execute_script("return document.getElementsByTagName('*').length")
        driver.execute_script(WATCH_FRAMES)
        batch.terminate_job(jobId=job, reason="bench")
        out["flip"].append(driver.execute_async_script(GRID_IS, "F", size)[0])
        out["gap"].append(driver.execute_script("return window.__gaps.longest"))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nimbus", default=os.path.join(REPO, "target/debug/nimbus"))
    parser.add_argument("--functions", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    data = tempfile.mkdtemp(prefix="nimbus-bench-console-")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([args.nimbus, "up", "--port", str(port), "--data-dir", data, "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = None
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(endpoint + "/_nimbus/health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        lam = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
                           aws_secret_access_key="x", config=Config(max_pool_connections=8, retries={"total_max_attempts": 1}))
        package = io.BytesIO()
        with zipfile.ZipFile(package, "w") as z:
            z.writestr("app.py", "def handler(event, context):\n    return event\n")
        code = package.getvalue()
        names = [f"fn-{i:04d}" for i in range(args.functions)]
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: lam.create_function(FunctionName=n, Runtime="python3.12", Role=ROLE,
                                                        Handler="app.handler", Code={"ZipFile": code}), names))
        print(f"created {args.functions} functions in {time.monotonic() - started:.1f} s")

        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
            options.add_argument(arg)
        # Chromium's profile and singleton socket under the bench's own directory (removed below).
        options.add_argument(f"--user-data-dir={data}/chromium")
        service = Service(shutil.which("chromedriver"), env={**os.environ, "TMPDIR": str(data)})
        driver = webdriver.Chrome(service=service, options=options)
        driver.set_script_timeout(300)
        paints, scrolls, loaded = [], [], []
        for _ in range(args.rounds):
            driver.get("about:blank")
            driver.get(f"{endpoint}/_nimbus/ui/#/functions")
            paints.append(driver.execute_async_script(FIRST_ROWS))
            loaded.append(driver.execute_script("return performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"))
            scrolls.append(driver.execute_async_script(SCROLL_TO_END, names[-1]))
        grids = [driver.execute_async_script(GRID_10000) for _ in range(args.rounds)]
        rows = driver.execute_script("return document.querySelectorAll('#function-list .row[data-function]').length")
        array = big_array(driver, endpoint, args.rounds)
        print("rounds:", [round(p) for p in paints])
        print(f"first paint of the functions page, {args.functions} functions: "
              f"median {statistics.median(paints):.0f} ms (min {min(paints):.0f}, max {max(paints):.0f}, {args.rounds} rounds)")
        print(f"  of which the page and its modules loaded (DOMContentLoaded): median {statistics.median(loaded):.0f} ms;"
              " the rest is the feed's first answer of /_nimbus/functions and drawing")
        print(f"scroll to the end → last rows drawn: median {statistics.median(scrolls):.1f} ms")
        print(f"a 10,000-child array grid drawn (canvas) → next frame: median {statistics.median(grids):.1f} ms")
        print(f"rows in the document at once: {rows} (of {args.functions})")
        print(f"a 10,000-child array job's page: navigation → every child drawn: median {statistics.median(array['open']):.0f} ms"
              f" (min {min(array['open']):.0f}, max {max(array['open']):.0f})")
        print(f"  every child flipping to FAILED live: grid complete after median {statistics.median(array['flip']):.0f} ms;"
              f" longest gap between frames meanwhile: median {statistics.median(array['gap']):.0f} ms"
              f" (max {max(array['gap']):.0f}); elements in the page: {array['elements']}")
    finally:
        if driver:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
