//! The provider on SQLite: rules with targets, buses, schedules and groups.

use std::sync::Arc;

use nimbus_api::clock::SystemClock;
use nimbus_api::provider::{ResourceProvider, ResourceRequest};
use nimbus_api::Identity;
use nimbus_store::Database;
use serde_json::{json, Value};

use crate::{DeliveryOptions, EventBridge, Targets};

struct Nowhere;
impl Targets for Nowhere {
    fn deliver(&self, _: &str, _: &str, _: &DeliveryOptions) -> Result<(), String> {
        Ok(())
    }
}

fn request(ty: &str, props: Value) -> ResourceRequest {
    ResourceRequest::example("stack", "Thing", ty, props)
}

fn open(dir: &std::path::Path) -> Arc<EventBridge> {
    EventBridge::open(
        &Database::sqlite(dir),
        Identity::default(),
        Arc::new(SystemClock),
        Arc::new(Nowhere),
        "n1",
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_keep_their_targets_in_step_and_go_away_whole() {
    let dir = tempfile::tempdir().unwrap();
    let events = open(dir.path());
    let target = |id: &str| json!({"Id": id, "Arn": "arn:aws:sqs:us-east-1:000000000000:q"});
    let rule = events
        .create(request(
            "AWS::Events::Rule",
            json!({"EventPattern": {"source": ["app"]}, "Targets": [target("a"), target("b")]}),
        ))
        .await
        .unwrap();
    assert!(rule.physical_id.starts_with("stack-Thing-"), "{}", rule.physical_id);
    assert!(rule.attributes["Arn"].as_str().unwrap().ends_with(&format!("rule/{}", rule.physical_id)));
    assert_eq!(events.rule_target_ids("default", &rule.physical_id).unwrap(), vec!["a", "b"]);

    events
        .update(
            request(
                "AWS::Events::Rule",
                json!({"ScheduleExpression": "rate(5 minutes)", "Targets": [target("b")]}),
            ),
            rule.physical_id.clone(),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(events.rule_target_ids("default", &rule.physical_id).unwrap(), vec!["b"]);

    let bus = events.create(request("AWS::Events::EventBus", json!({"Name": "orders"}))).await.unwrap();
    assert_eq!(bus.physical_id, "orders");
    let on_bus = events
        .create(request(
            "AWS::Events::Rule",
            json!({"Name": "r", "EventBusName": "orders", "EventPattern": {"source": ["x"]}}),
        ))
        .await
        .unwrap();
    assert_eq!(on_bus.physical_id, "orders|r");

    for (ty, id) in [
        ("AWS::Events::Rule", &rule.physical_id),
        ("AWS::Events::Rule", &on_bus.physical_id),
        ("AWS::Events::EventBus", &bus.physical_id),
    ] {
        events.delete(request(ty, json!({})), id.clone()).await.unwrap();
        events.delete(request(ty, json!({})), id.clone()).await.unwrap();
    }
    assert!(events.rule_target_ids("default", &rule.physical_id).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn schedules_and_groups_go_through_the_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let events = open(dir.path());
    let group = events.create(request("AWS::Scheduler::ScheduleGroup", json!({"Name": "g"}))).await.unwrap();
    assert_eq!(group.physical_id, "g");
    let props = json!({
        "GroupName": "g", "ScheduleExpression": "rate(1 hour)", "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {"Arn": "arn:aws:lambda:us-east-1:000000000000:function:f", "RoleArn": "arn:aws:iam::000000000000:role/r"}
    });
    let schedule = events.create(request("AWS::Scheduler::Schedule", props.clone())).await.unwrap();
    assert!(schedule.attributes["Arn"].as_str().unwrap().contains("schedule/g/"));
    let mut changed = props.clone();
    changed["ScheduleExpression"] = json!("rate(2 hours)");
    events
        .update(
            request("AWS::Scheduler::Schedule", changed),
            schedule.physical_id.clone(),
            Default::default(),
        )
        .await
        .unwrap();
    let stored = crate::schedules::get(&events, &schedule.physical_id, Some("g")).unwrap();
    assert_eq!(stored["ScheduleExpression"], "rate(2 hours)");
    events
        .delete(request("AWS::Scheduler::Schedule", props.clone()), schedule.physical_id.clone())
        .await
        .unwrap();
    events.delete(request("AWS::Scheduler::Schedule", props), schedule.physical_id).await.unwrap();
    events.delete(request("AWS::Scheduler::ScheduleGroup", json!({})), group.physical_id).await.unwrap();

    let err = events
        .create(request("AWS::Scheduler::Schedule", json!({"ScheduleExpression": "every now and then", "FlexibleTimeWindow": {"Mode": "OFF"}, "Target": {"Arn": "a", "RoleArn": "r"}})))
        .await
        .unwrap_err();
    assert!(err.message.contains("ValidationException"), "{}", err.message);
}
