//! The worker's answers, and the pool's handling of workers that die, hang or exit, with shell
//! scripts standing in for the worker (the nimbus binary itself is driven by the e2e tests).

use serde_json::{json, Value};

use super::*;

fn states_of<'a>(input: &'a Value, context: &'a Value) -> States<'a> {
    States { input, result: None, error_output: None, context }
}

fn shell(script: &str, deadline: Duration) -> Pool {
    Pool::new("/bin/sh".into(), vec!["-c".into(), script.into()], 1, deadline)
}

#[test]
fn a_request_line_is_answered_with_the_value_or_the_failure() {
    let (input, context) = (json!({"n": 2}), json!({"Execution": {"Name": "e"}, "$vars": {}}));
    let states = States { result: Some(&json!("r")), ..states_of(&input, &context) };
    let line =
        request(&json!({"a": "{% $states.input.n * 3 %}", "r": "{% $states.result %}"}), &states, "Output");
    assert!(line.ends_with(b"}\n") && !line[..line.len() - 1].contains(&b'\n'));
    let answered: Value = serde_json::from_slice(&answer(std::str::from_utf8(&line).unwrap())).unwrap();
    assert_eq!(answered, json!({"ok": {"a": 6, "r": "r"}}));

    let line = request(&json!("{% $states.input.n + 'x' %}"), &states, "Output/v");
    let answered: Value = serde_json::from_slice(&answer(std::str::from_utf8(&line).unwrap())).unwrap();
    assert_eq!(answered["error"], ERROR);
    assert!(answered["cause"].as_str().unwrap().starts_with(
        "The JSONata expression '$states.input.n + 'x'' specified for the field 'Output/v' threw an error during evaluation. T2002"
    ));
}

#[test]
fn an_answer_larger_than_the_memory_limit_is_refused() {
    let (input, context) = (json!({}), json!({}));
    // 800,000 elements fit the sequence budget but their JSON does not fit the answer's.
    let line = request(
        &json!("{% $map([1..800000], function($v){ 123456789 }) %}"),
        &states_of(&input, &context),
        "Output",
    );
    let answered: Value = serde_json::from_slice(&answer(std::str::from_utf8(&line).unwrap())).unwrap();
    assert_eq!(
        answered["cause"],
        format!("The JSONata expression '$map([1..800000], function($v){{ 123456789 }})' specified for the field 'Output' threw an error during evaluation: {MEMORY_LIMIT}")
    );
}

#[test]
fn a_warm_worker_answers_every_request() {
    let pool = shell(r#"while read line; do echo '{"ok": {"n": 1}}'; done"#, Duration::from_secs(5));
    let (input, context) = (json!({}), json!({}));
    for _ in 0..3 {
        assert_eq!(
            pool.fill(&json!("{% 1 %}"), &states_of(&input, &context), "Output").unwrap(),
            json!({"n": 1})
        );
    }
    let pid = pool.slots[0].lock().unwrap().as_ref().map(|w| w.child.id());
    pool.fill(&json!("{% 1 %}"), &states_of(&input, &context), "Output").unwrap();
    assert_eq!(pool.slots[0].lock().unwrap().as_ref().map(|w| w.child.id()), pid, "the same process");
}

#[test]
fn a_worker_that_dies_fails_the_state_and_is_replaced() {
    // The first worker aborts (as an allocation past RLIMIT_AS makes it); the next one answers.
    let marker = tempfile::tempdir().unwrap();
    let flag = marker.path().join("died");
    let script = format!(
        r#"read line; if [ ! -e {0} ]; then touch {0}; kill -ABRT $$; fi; echo '{{"ok": 7}}'; while read line; do echo '{{"ok": 7}}'; done"#,
        flag.display()
    );
    let pool = shell(&script, Duration::from_secs(5));
    let (input, context) = (json!({}), json!({}));
    let failure = pool.fill(&json!("{% $big() %}"), &states_of(&input, &context), "Output/v").unwrap_err();
    assert_eq!(failure.error, ERROR);
    assert_eq!(
        failure.cause,
        format!("The JSONata expression '$big()' specified for the field 'Output/v' threw an error during evaluation: {MEMORY_LIMIT}")
    );
    assert!(pool.slots[0].lock().unwrap().is_none(), "the dead worker is reaped");
    assert_eq!(pool.fill(&json!("{% 7 %}"), &states_of(&input, &context), "Output").unwrap(), json!(7));
    // A lone expression inside a template is named with its field; of several, none is.
    let killed = shell("read line; kill -SEGV $$", Duration::from_secs(5));
    let failure =
        killed.fill(&json!({"a": [1, "{% $deep() %}"]}), &states_of(&input, &context), "Output").unwrap_err();
    assert_eq!(
        failure.cause,
        format!("The JSONata expression '$deep()' specified for the field 'Output/a[1]' threw an error during evaluation: {STACK_LIMIT}")
    );
    let killed = shell("read line; kill -SEGV $$", Duration::from_secs(5));
    let failure = killed
        .fill(&json!({"a": "{% 1 %}", "b": "{% 2 %}"}), &states_of(&input, &context), "Output")
        .unwrap_err();
    assert_eq!(
        failure.cause,
        format!("A JSONata expression specified for the field 'Output' threw an error during evaluation: {STACK_LIMIT}")
    );
}

#[test]
fn a_worker_past_its_deadline_is_killed() {
    let pool = shell("read line; exec sleep 30", Duration::from_millis(200));
    let (input, context) = (json!({}), json!({}));
    let started = Instant::now();
    let failure = pool.fill(&json!("{% $loop() %}"), &states_of(&input, &context), "Output").unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        failure.cause.ends_with(&format!("threw an error during evaluation. {TIMEOUT}")),
        "{}",
        failure.cause
    );
    assert!(pool.slots[0].lock().unwrap().is_none());
}

#[test]
fn a_worker_that_exits_between_requests_is_started_again() {
    let pool = shell(r#"read line; echo '{"ok": 1}'"#, Duration::from_secs(5));
    let (input, context) = (json!({}), json!({}));
    for _ in 0..3 {
        assert_eq!(pool.fill(&json!("{% 1 %}"), &states_of(&input, &context), "Output").unwrap(), json!(1));
        // Let the script exit, so that the next request finds it gone.
        let mut slot = pool.slots[0].lock().unwrap();
        let _ = slot.as_mut().map(|w| w.child.wait());
    }
}

#[test]
fn no_worker_fails_the_state_and_names_why() {
    let pool = Pool::new("/nonexistent/nimbus".into(), vec![WORKER_ARG.into()], 1, Duration::from_secs(1));
    let (input, context) = (json!({}), json!({}));
    let failure = pool.fill(&json!("{% 1 %}"), &states_of(&input, &context), "Output").unwrap_err();
    assert_eq!(failure.error, ERROR);
    assert!(
        failure.cause.ends_with(&format!("threw an error during evaluation. {NO_WORKER}")),
        "{}",
        failure.cause
    );
}
