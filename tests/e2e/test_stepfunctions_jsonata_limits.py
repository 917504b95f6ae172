"""Step Functions end to end: JSONata's limits. Hostile expressions (memory, recursion, endless
loops, huge ranges and results) fail their state with States.QueryEvaluationError, which Retry
and Catch handle, while the server and its warm worker processes carry on; the EvaluationFailed
events AWS records, caught or not; and the values AWS gives for non-finite numbers."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sfn_support import advance, finished, history, machine, run, sfn, sfn_client, types, virtual  # noqa: F401
from support import wait_until

MEMORY = "Expression evaluation memory limit exceeded: Check for excessive memory usage"
STACK = "Stack overflow error: Check for non-terminating recursive function. Consider rewriting as tail-recursive"


def workers(server) -> dict[int, str]:
    """The JSONata worker processes of a nimbus: pid → state (R, S, Z …)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == server.proc.pid and b"__jsonata-worker" in cmdline:
            found[int(entry.name)] = fields[0]
    return found


def guarded(expression: str) -> dict:
    """A machine whose Parallel state evaluates `expression` in its Arguments and catches what
    it throws; a Pass state afterwards proves the server still evaluates JSONata."""
    return {"QueryLanguage": "JSONata", "StartAt": "Risky", "States": {
        "Risky": {"Type": "Parallel", "Arguments": {"v": "{% " + expression + " %}"},
                  "Branches": [{"StartAt": "B", "States": {"B": {"Type": "Pass", "End": True}}}],
                  "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "After",
                             "Output": "{% $states.errorOutput %}"}], "End": True},
        "After": {"Type": "Pass", "Output": {"caught": "{% $states.input %}", "sum": "{% $sum([1..10]) %}"},
                  "End": True}}}


def test_hostile_expressions_fail_the_state_and_the_server_carries_on(sfn, virtual):
    double = "($f := function($s, $n){ $n = 0 ? $s : $f($s & $s, $n - 1) }; $length($f('x', 40)))"
    deep = "$reduce([1..200000], function($acc, $v){ {'a': $acc} }, {})"
    cases = [
        # The string doubles past the worker's address space: the worker dies, is replaced.
        (double, f"threw an error during evaluation: {MEMORY}"),
        # Non-tail recursion stops where AWS stops it.
        ("($f := function($x){ 1 + $f($x + 1) }; $f(0))", f"threw an error during evaluation: {STACK}"),
        ("$range(0, 1e9, 1)", f"threw an error during evaluation: {MEMORY}"),
        ("[1..900000] ~> $count()", f"threw an error during evaluation: {MEMORY}"),
        # A result too large to hand back.
        ("$map([1..800000], function($v){ 123456789 })", f"threw an error during evaluation: {MEMORY}"),
        # A value 200,000 levels deep: the worker, not the server, pays for walking it.
        (deep, "threw an error during evaluation: "),
    ]
    for expression, ending in cases:
        described = run(sfn, guarded(expression))
        assert described["status"] == "SUCCEEDED", (expression, described.get("error"), described.get("cause"))
        output = json.loads(described["output"])
        assert output["sum"] == 55
        assert output["caught"]["Error"] == "States.QueryEvaluationError", expression
        cause = output["caught"]["Cause"]
        assert cause.startswith("An error occurred while executing the state 'Risky' (entered at the event id #2). "
                                f"The JSONata expression '{expression}' specified for the field 'Arguments/v' "
                                "threw an error during evaluation"), cause
        assert ending in cause, cause
    # Every dead worker was reaped; what is left is the warm pool.
    assert all(state != "Z" for state in workers(virtual).values())
    assert 1 <= len(workers(virtual)) <= 4


def test_an_endless_loop_ends_on_the_time_limit_and_retry_runs_it_again(sfn, virtual):
    definition = guarded("($f := function($x){ $f($x + 1) }; $f(0))")
    definition["States"]["Risky"]["Retry"] = [
        {"ErrorEquals": ["States.QueryEvaluationError"], "IntervalSeconds": 1, "MaxAttempts": 1}]
    execution = sfn.start_execution(stateMachineArn=machine(sfn, definition), input="{}")["executionArn"]
    wait_until(lambda: "EvaluationFailed" in types(history(sfn, execution)), timeout=30, what="the first attempt")

    def retried():
        # The clock moves past the retry's interval whenever the retry starts waiting.
        advance(virtual.endpoint, 1)
        described = sfn.describe_execution(executionArn=execution)
        return described if described["status"] != "RUNNING" else None

    described = wait_until(retried, timeout=40, interval=0.2, what="the retried attempt")
    output = json.loads(described["output"])
    assert output["caught"]["Cause"].endswith(
        "threw an error during evaluation. D1012: Evaluation timeout after 5000 milliseconds. Check for infinite loop")
    assert types(history(sfn, execution)).count("EvaluationFailed") == 2


def test_the_warm_path_keeps_its_worker(sfn, virtual):
    arn = machine(sfn, {"QueryLanguage": "JSONata", "StartAt": "P", "States": {
        "P": {"Type": "Pass", "Output": {"n": "{% $states.input.n + 1 %}"}, "End": True}}})
    before = None
    for n in range(20):
        execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"n": n}))["executionArn"]
        assert json.loads(finished(sfn, execution)["output"]) == {"n": n + 1}
        now = set(workers(virtual))
        assert before is None or now == before, "no worker started or ended on the warm path"
        before = now


def test_evaluation_failed_is_recorded_caught_or_not(sfn, virtual):
    expected = {"state": "Risky", "error": "States.QueryEvaluationError", "location": "Arguments/v"}
    # Caught: EvaluationFailed, then the state exits to its catcher's Next; no ExecutionFailed.
    described = run(sfn, guarded("$states.input.absent"))
    events = history(sfn, described["executionArn"])
    assert types(events) == [
        "ExecutionStarted", "ParallelStateEntered", "EvaluationFailed", "ParallelStateExited",
        "PassStateEntered", "PassStateExited", "ExecutionSucceeded"]
    failed = events[2]["evaluationFailedEventDetails"]
    assert {k: failed[k] for k in expected} == expected
    assert failed["cause"] == (
        "An error occurred while executing the state 'Risky' (entered at the event id #2). The JSONata expression "
        "'$states.input.absent' specified for the field 'Arguments/v' returned nothing (undefined).")
    assert events[2]["previousEventId"] == events[1]["id"]
    # Uncaught: EvaluationFailed, then ExecutionFailed with the same error and cause.
    definition = guarded("$states.input.absent")
    del definition["States"]["Risky"]["Catch"], definition["States"]["After"]
    described = run(sfn, definition)
    events = history(sfn, described["executionArn"])
    assert types(events) == ["ExecutionStarted", "ParallelStateEntered", "EvaluationFailed", "ExecutionFailed"]
    assert events[3]["executionFailedEventDetails"] == {"error": "States.QueryEvaluationError",
                                                        "cause": events[2]["evaluationFailedEventDetails"]["cause"]}
    # A catcher whose own Output fails records it too, and the execution fails.
    definition = guarded("$states.input.absent")
    definition["States"]["Risky"]["Catch"][0]["Output"] = "{% $states.errorOutput.Nope %}"
    described = run(sfn, definition)
    events = history(sfn, described["executionArn"])
    assert types(events) == ["ExecutionStarted", "ParallelStateEntered", "EvaluationFailed", "EvaluationFailed",
                             "ExecutionFailed"]
    assert events[3]["evaluationFailedEventDetails"]["location"] == "Catch[0]/Output"


def test_non_finite_numbers_are_what_aws_gives(sfn):
    described = run(sfn, {"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {
        "Type": "Pass", "Output": {"inf": "{% 1/$states.input.zero %}", "neg": "{% -1/0 %}",
                                   "list": "{% [1/0, 0/0, 2] %}"}, "End": True}}}, {"zero": 0})
    assert json.loads(described["output"]) == {"inf": "Infinity", "neg": "-Infinity", "list": ["Infinity", "NaN", 2]}
    # Used as an operand, a non-finite number is JSONata's D1001.
    described = run(sfn, {"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {
        "Type": "Pass", "Output": {"v": "{% 1/0 + 1 %}"}, "End": True}}})
    assert (described["status"], described["error"]) == ("FAILED", "States.QueryEvaluationError")
    assert described["cause"].endswith(
        "The JSONata expression '1/0 + 1' specified for the field 'Output/v' threw an error during evaluation. "
        "D1001: Number out of range")


def test_workers_end_with_the_server(server_factory):
    server = server_factory()
    client = sfn_client(server.endpoint)
    described = run(client, {"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {
        "Type": "Pass", "Output": "{% 1 + 1 %}", "End": True}}})
    assert described["output"] == "2"
    pids = list(workers(server))
    assert pids
    server.stop()
    wait_until(lambda: not any(os.path.exists(f"/proc/{pid}/cmdline") and
                               b"__jsonata-worker" in Path(f"/proc/{pid}/cmdline").read_bytes() for pid in pids),
               timeout=10, what="the workers to exit")
