//! Multi-node parallel jobs over the fake capacity of [`crate::flow_tests`]: definitions checked
//! as AWS checks them, the nodes' order and variables, the job following its main node.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::flow_tests::{call, open, settled, setup, Fake};
use crate::multinode::{container_of, node_range};

fn container(script: &str) -> Value {
    json!({"image": "nimbus/host", "command": ["sh", "-c", script], "vcpus": 1, "memory": 128})
}

fn definition(num_nodes: u32, main: u32, ranges: Value) -> Value {
    json!({"jobDefinitionName": "mnp", "type": "multinode",
        "nodeProperties": {"numNodes": num_nodes, "mainNode": main, "nodeRangeProperties": ranges}})
}

fn refused(batch: &crate::Batch, op: &str, input: Value) -> String {
    match tokio::task::block_in_place(|| batch.dispatch(op, "us-east-1", &input)) {
        Ok(answer) => panic!("{op} was accepted: {answer}"),
        Err(error) => {
            assert_eq!(error.code, "ClientException");
            error.message
        }
    }
}

#[test]
fn ranges_name_inclusive_spans_and_the_narrowest_wins() {
    assert_eq!(node_range("0:", 4), Some((0, 3)));
    assert_eq!(node_range(":", 4), Some((0, 3)));
    assert_eq!(node_range(":1", 4), Some((0, 1)));
    assert_eq!(node_range("1:3", 4), Some((1, 3)));
    assert_eq!(node_range("2", 4), Some((2, 2)));
    assert_eq!(node_range("1:4", 4), None);
    assert_eq!(node_range("3:1", 4), None);
    assert_eq!(node_range("x:", 4), None);
    let properties = json!({"numNodes": 11, "mainNode": 0, "nodeRangeProperties": [
        {"targetNodes": "4:5", "container": {"image": "narrow"}},
        {"targetNodes": "0:10", "container": {"image": "wide"}},
    ]});
    assert_eq!(container_of(&properties, 4)["image"], "narrow");
    assert_eq!(container_of(&properties, 6)["image"], "wide");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_and_overrides_are_checked_as_aws_checks_them() {
    let dir = tempfile::tempdir().unwrap();
    let batch = open(dir.path(), Arc::new(Fake::default()));
    setup(&batch).await;
    let uncovered = definition(3, 0, json!([{"targetNodes": "0:1", "container": container("exit 0")}]));
    assert!(refused(&batch, "registerjobdefinition", uncovered).contains("node 2 is in no range"));
    let main_outside = definition(2, 2, json!([{"targetNodes": "0:", "container": container("exit 0")}]));
    assert!(refused(&batch, "registerjobdefinition", main_outside)
        .contains("mainNode must be less than numNodes"));
    let range_outside = definition(2, 0, json!([{"targetNodes": "0:5", "container": container("exit 0")}]));
    assert!(refused(&batch, "registerjobdefinition", range_outside).contains("Invalid targetNodes 0:5"));
    let mut both = definition(2, 0, json!([{"targetNodes": "0:", "container": container("exit 0")}]));
    both["containerProperties"] = container("exit 0");
    refused(&batch, "registerjobdefinition", both);
    let no_image = definition(2, 0, json!([{"targetNodes": "0:", "container": {"vcpus": 1, "memory": 128}}]));
    assert!(refused(&batch, "registerjobdefinition", no_image).contains("must contain an image"));

    let good = definition(2, 0, json!([{"targetNodes": "0:", "container": container("exit 0")}]));
    call(&batch, "registerjobdefinition", good);
    let described = call(&batch, "describejobdefinitions", json!({"jobDefinitionName": "mnp"}));
    let described = &described["jobDefinitions"][0];
    assert_eq!(described["type"], "multinode");
    assert_eq!(described["nodeProperties"]["numNodes"], 2);
    assert!(described.get("containerProperties").is_none());

    let submit = |overrides: Value| json!({"jobName": "m", "jobQueue": "q", "jobDefinition": "mnp", "nodeOverrides": overrides});
    let message =
        refused(&batch, "submitjob", submit(json!({"nodePropertyOverrides": [{"targetNodes": "0:0"}]})));
    assert_eq!(message, "NodeOverride targets should match job definition. Non matching targets - 0:0");
    refused(&batch, "submitjob", submit(json!({"numNodes": 0})));
    let mut with_container = submit(json!({}));
    with_container["containerOverrides"] = json!({"command": ["true"]});
    refused(&batch, "submitjob", with_container);
    let mut single = submit(json!({"numNodes": 3}));
    single["jobDefinition"] = json!("d");
    refused(&batch, "submitjob", single);
    // Accepted: numNodes raised through the open range, a range's command replaced.
    let accepted = call(
        &batch,
        "submitjob",
        submit(
            json!({"numNodes": 3, "nodePropertyOverrides": [{"targetNodes": "0:", "containerOverrides": {"command": ["sh", "-c", "exit 0"], "environment": [{"name": "X", "value": "1"}]}}]}),
        ),
    );
    let id = accepted["jobId"].as_str().unwrap();
    let job = &call(&batch, "describejobs", json!({"jobs": [id]}))["jobs"][0];
    assert_eq!(job["nodeProperties"]["numNodes"], 3);
    assert_eq!(job["nodeProperties"]["nodeRangeProperties"][0]["container"]["environment"][0]["name"], "X");
    call(&batch, "terminatejob", json!({"jobId": id, "reason": "done"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_main_node_starts_first_and_the_job_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(Fake::default());
    let batch = open(dir.path(), fake.clone());
    setup(&batch).await;
    let ranges = json!([
        {"targetNodes": "0:", "container": container("exit 0")},
        {"targetNodes": "1", "container": container("hang")},
    ]);
    call(&batch, "registerjobdefinition", definition(3, 1, ranges));
    let id = call(&batch, "submitjob", json!({"jobName": "m", "jobQueue": "q", "jobDefinition": "mnp"}))
        ["jobId"]
        .as_str()
        .unwrap()
        .to_owned();
    // The main node (1) hangs: the job runs as it does, and the others ran after it started.
    let running = settled(&batch, &id, &["RUNNING"]).await;
    assert!(running["startedAt"].is_i64());
    settled(&batch, &format!("{id}#0"), &["SUCCEEDED"]).await;
    settled(&batch, &format!("{id}#2"), &["SUCCEEDED"]).await;
    let main = settled(&batch, &format!("{id}#1"), &["RUNNING"]).await;
    assert_eq!(main["nodeDetails"], json!({"nodeIndex": 1, "isMainNode": true}));
    let started = fake.started.lock().unwrap().clone();
    assert_eq!(started.len(), 3);
    let var =
        |env: &Vec<(String, String)>, name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(var(&started[0], "AWS_BATCH_JOB_NODE_INDEX").as_deref(), Some("1"), "the main node first");
    assert_eq!(var(&started[0], "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"), None);
    for env in &started[1..] {
        assert_eq!(var(env, "AWS_BATCH_JOB_NUM_NODES").as_deref(), Some("3"));
        assert_eq!(var(env, "AWS_BATCH_JOB_MAIN_NODE_INDEX").as_deref(), Some("1"));
        assert_eq!(var(env, "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS").as_deref(), Some("10.0.0.1"));
    }
    let nodes = call(&batch, "listjobs", json!({"multiNodeJobId": id}))["jobSummaryList"].clone();
    let indexes: Vec<Value> =
        nodes.as_array().unwrap().iter().map(|n| n["nodeProperties"]["nodeIndex"].clone()).collect();
    assert_eq!(indexes, vec![json!(0), json!(1), json!(2)]);
    // CancelJob leaves a started job alone; TerminateJob stops its main node, and the job ends
    // FAILED with the reason.
    call(&batch, "canceljob", json!({"jobId": id, "reason": "too late"}));
    assert_eq!(call(&batch, "describejobs", json!({"jobs": [id]}))["jobs"][0]["status"], "RUNNING");
    call(&batch, "terminatejob", json!({"jobId": id, "reason": "enough"}));
    let done = settled(&batch, &id, &["FAILED", "SUCCEEDED"]).await;
    assert_eq!(done["status"], "FAILED");
    assert_eq!(done["statusReason"], "enough");
    assert_eq!(done["attempts"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_main_node_stops_the_others_and_the_job_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(Fake::default());
    let batch = open(dir.path(), fake.clone());
    setup(&batch).await;
    let ranges = json!([
        {"targetNodes": "0", "container": container("exit 3")},
        {"targetNodes": "1:", "container": container("hang")},
    ]);
    let mut input = definition(2, 0, ranges);
    input["retryStrategy"] = json!({"attempts": 2});
    call(&batch, "registerjobdefinition", input);
    let id = call(&batch, "submitjob", json!({"jobName": "m", "jobQueue": "q", "jobDefinition": "mnp"}))
        ["jobId"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = settled(&batch, &id, &["FAILED", "SUCCEEDED"]).await;
    assert_eq!(done["status"], "FAILED");
    assert_eq!(done["statusReason"], "Essential container in task exited");
    assert_eq!(done["container"]["exitCode"], 3);
    assert_eq!(done["attempts"].as_array().unwrap().len(), 2, "{done}");
    let main = settled(&batch, &format!("{id}#0"), &["FAILED"]).await;
    assert_eq!(main["attempts"].as_array().unwrap().len(), 2);
    // Each node of each attempt saw the job's attempt number.
    let attempts: Vec<String> = fake
        .started
        .lock()
        .unwrap()
        .iter()
        .filter_map(|env| env.iter().find(|(k, _)| k == "AWS_BATCH_JOB_ATTEMPT").map(|(_, v)| v.clone()))
        .collect();
    assert_eq!(attempts.first().map(String::as_str), Some("1"));
    assert_eq!(attempts.last().map(String::as_str), Some("2"));
    // No node is left running.
    let live = call(&batch, "listjobs", json!({"multiNodeJobId": id, "jobStatus": "RUNNING"}));
    assert_eq!(live["jobSummaryList"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_range_names_its_instance_type_and_the_job_shows_why_it_waits() {
    let dir = tempfile::tempdir().unwrap();
    let batch = open(dir.path(), Arc::new(Fake::default()));
    setup(&batch).await;
    let mut wanted = container("exit 0");
    wanted["instanceType"] = json!("m7i.large");
    call(
        &batch,
        "registerjobdefinition",
        definition(2, 0, json!([{"targetNodes": "0:", "container": wanted}])),
    );
    let id = call(&batch, "submitjob", json!({"jobName": "m", "jobQueue": "q", "jobDefinition": "mnp"}))
        ["jobId"]
        .as_str()
        .unwrap()
        .to_owned();
    // The fake sells only c6i.large: the main node waits, and the job says why.
    for _ in 0..400 {
        let job = call(&batch, "describejobs", json!({"jobs": [id]}))["jobs"][0].clone();
        if let Some(reason) = job["statusReason"].as_str() {
            assert_eq!(job["status"], "RUNNABLE");
            assert!(reason.starts_with("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"), "{reason}");
            call(&batch, "canceljob", json!({"jobId": id, "reason": "no such type"}));
            let done = settled(&batch, &id, &["FAILED"]).await;
            assert_eq!(done["isCancelled"], true);
            settled(&batch, &format!("{id}#0"), &["FAILED"]).await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the job never said why it waits");
}
