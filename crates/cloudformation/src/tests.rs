//! The engine against a fake provider: parallel creation in dependency order, updates in place
//! and by replacement, rollback to the previous state, deletes in reverse order.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nimbus_api::provider::{ProviderError, ProviderFuture, Provisioned, ResourceProvider, ResourceRequest};
use serde_json::{json, Map, Value};

use crate::api::dispatch;
use crate::engine::Engine;
use crate::store::Store;

#[derive(Default)]
struct Fake {
    log: Mutex<Vec<String>>,
    failing: Mutex<HashSet<String>>,
    running: AtomicUsize,
    most: AtomicUsize,
    made: AtomicUsize,
}

impl Fake {
    fn note(&self, what: String) {
        self.log.lock().unwrap().push(what);
    }

    async fn work(&self, request: &ResourceRequest) -> Result<(), ProviderError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        if self.failing.lock().unwrap().contains(&request.logical_id) {
            return Err(ProviderError::new(format!("{} refused", request.logical_id)));
        }
        Ok(())
    }

    fn provisioned(physical: String) -> Provisioned {
        let mut attributes = Map::new();
        attributes.insert("Arn".into(), Value::String(format!("arn:{physical}")));
        Provisioned { physical_id: physical, attributes }
    }
}

impl ResourceProvider for Fake {
    fn resource_types(&self) -> &'static [&'static str] {
        &["Test::Thing"]
    }

    fn replaces(&self, _: &str, property: &str) -> bool {
        property == "Name"
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            self.work(&request).await?;
            let physical = format!("{}-{}", request.logical_id, self.made.fetch_add(1, Ordering::SeqCst));
            self.note(format!("create {physical} {}", Value::Object(request.properties.clone())));
            Ok(Fake::provisioned(physical))
        })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical: String,
        _: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            self.work(&request).await?;
            self.note(format!("update {physical} {}", Value::Object(request.properties.clone())));
            Ok(Fake::provisioned(physical))
        })
    }

    fn delete(&self, _: ResourceRequest, physical: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            self.note(format!("delete {physical}"));
            Ok(())
        })
    }
}

fn engine(dir: &std::path::Path, fake: Arc<Fake>) -> Arc<Engine> {
    let database = nimbus_store::Database::sqlite(dir);
    let store = Store::open(&database).unwrap();
    Arc::new(Engine::new(store, "us-east-1", "123456789012", "http://127.0.0.1:4566", vec![fake]))
}

async fn settled(engine: &Arc<Engine>, name: &str) -> Value {
    for _ in 0..200 {
        let stack = dispatch(engine, "DescribeStacks", &json!({"StackName": name})).unwrap();
        let status = stack["Stacks"][0]["StackStatus"].as_str().unwrap().to_owned();
        if !status.ends_with("_IN_PROGRESS") {
            return stack["Stacks"][0].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{name} did not settle");
}

fn template(b_size: u32, a_name: &str, extra: bool) -> String {
    let mut resources = json!({
        "A": {"Type": "Test::Thing", "Properties": {"Name": a_name}},
        "B": {"Type": "Test::Thing", "Properties": {"Size": b_size}},
        "C": {"Type": "Test::Thing", "Properties": {"Size": 1}},
        "D": {"Type": "Test::Thing", "Properties": {"From": [{"Ref": "A"}, {"Fn::GetAtt": ["B", "Arn"]}, {"Ref": "C"}]}},
    });
    if extra {
        resources["E"] = json!({"Type": "Test::Thing", "DependsOn": "D"});
    }
    json!({"Resources": resources, "Outputs": {"D": {"Value": {"Fn::GetAtt": ["D", "Arn"]}}}}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_in_parallel_updates_replaces_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(Fake::default());
    let engine = engine(dir.path(), fake.clone());
    dispatch(&engine, "CreateStack", &json!({"StackName": "s", "TemplateBody": template(1, "a", false)}))
        .unwrap();
    let stack = settled(&engine, "s").await;
    assert_eq!(stack["StackStatus"], "CREATE_COMPLETE");
    assert!(fake.most.load(Ordering::SeqCst) >= 2, "independent resources are created side by side");
    let log = fake.log.lock().unwrap().clone();
    assert!(log[3].starts_with("create D-3 {\"From\":[\"A-"), "{log:?}");
    assert_eq!(stack["Outputs"][0]["OutputValue"], "arn:D-3");

    // B in place, A replaced (D follows A's new name in place), the old A deleted in cleanup.
    fake.log.lock().unwrap().clear();
    dispatch(&engine, "UpdateStack", &json!({"StackName": "s", "TemplateBody": template(2, "a2", false)}))
        .unwrap();
    assert_eq!(settled(&engine, "s").await["StackStatus"], "UPDATE_COMPLETE");
    let log = fake.log.lock().unwrap().clone();
    assert!(log.iter().any(|l| l.starts_with("update B-")), "{log:?}");
    assert!(log.iter().any(|l| l.starts_with("create A-4")), "{log:?}");
    assert!(log.iter().any(|l| l.starts_with("update D-3 {\"From\":[\"A-4\"")), "{log:?}");
    assert!(log.last().unwrap().starts_with("delete A-"), "{log:?}");

    // E fails after B changed: B returns to its size, nothing of the update stays.
    fake.log.lock().unwrap().clear();
    fake.failing.lock().unwrap().insert("E".into());
    dispatch(&engine, "UpdateStack", &json!({"StackName": "s", "TemplateBody": template(3, "a2", true)}))
        .unwrap();
    let stack = settled(&engine, "s").await;
    assert_eq!(stack["StackStatus"], "UPDATE_ROLLBACK_COMPLETE");
    let log = fake.log.lock().unwrap().clone();
    assert_eq!(
        log.last().unwrap(),
        &format!("update {} {{\"Size\":2}}", log[0].split(' ').nth(1).unwrap()),
        "{log:?}"
    );
    let template = dispatch(&engine, "GetTemplate", &json!({"StackName": "s"})).unwrap();
    assert_eq!(template["TemplateBody"].as_str().unwrap(), self::template(2, "a2", false));

    // Deletes go in reverse order: D before what it names.
    fake.log.lock().unwrap().clear();
    dispatch(&engine, "DeleteStack", &json!({"StackName": "s"})).unwrap();
    let log = loop {
        let log = fake.log.lock().unwrap().clone();
        if log.len() == 4 {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(log[0].starts_with("delete D-"), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_turning_false_removes_its_resource() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(Fake::default());
    let engine = engine(dir.path(), fake.clone());
    let body = json!({
        "Parameters": {"Want": {"Type": "String", "AllowedValues": ["yes", "no"]}},
        "Conditions": {"Wanted": {"Fn::Equals": [{"Ref": "Want"}, "yes"]}},
        "Resources": {
            "Always": {"Type": "Test::Thing", "Properties": {"Extra": {"Fn::If": ["Wanted", "on", {"Ref": "AWS::NoValue"}]}}},
            "Maybe": {"Type": "Test::Thing", "Condition": "Wanted"},
        },
    })
    .to_string();
    let with = |want: &str| json!({"StackName": "c", "TemplateBody": body, "Parameters": [{"ParameterKey": "Want", "ParameterValue": want}]});
    dispatch(&engine, "CreateStack", &with("yes")).unwrap();
    assert_eq!(settled(&engine, "c").await["StackStatus"], "CREATE_COMPLETE");
    let listed = dispatch(&engine, "ListStackResources", &json!({"StackName": "c"})).unwrap();
    assert_eq!(listed["StackResourceSummaries"].as_array().unwrap().len(), 2);
    dispatch(&engine, "UpdateStack", &with("no")).unwrap();
    assert_eq!(settled(&engine, "c").await["StackStatus"], "UPDATE_COMPLETE");
    let listed = dispatch(&engine, "ListStackResources", &json!({"StackName": "c"})).unwrap();
    let ids: Vec<&str> = listed["StackResourceSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["LogicalResourceId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["Always"]);
    let log = fake.log.lock().unwrap().clone();
    assert!(log.iter().any(|l| l.starts_with("update Always-") && l.ends_with("{}")), "{log:?}");
    assert!(log.last().unwrap().starts_with("delete Maybe-"), "{log:?}");
}
