use std::sync::Arc;

use nimbus_api::clock::ManualClock;
use nimbus_api::provider::{ResourceProvider, ResourceRequest};
use serde_json::json;

use crate::{CodeDeploy, TargetFuture, Targets};

struct NoTargets;

impl Targets for NoTargets {
    fn route<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a str,
        _: Option<(&'a str, f64)>,
    ) -> TargetFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
    fn invoke<'a>(&'a self, _: &'a str, _: Vec<u8>) -> TargetFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
    fn alarms_in_alarm<'a>(&'a self, _: &'a [String]) -> TargetFuture<'a, Vec<String>> {
        Box::pin(async { Vec::new() })
    }
}

fn open(dir: &tempfile::TempDir) -> CodeDeploy {
    let database = nimbus_store::Database::sqlite(dir.path());
    CodeDeploy::open(&database, Arc::new(ManualClock::new(0)), Arc::new(NoTargets)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn all_at_once_deployment_succeeds_and_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let cd = open(&dir);
    let app = ResourceRequest::example(
        "s",
        "App",
        "AWS::CodeDeploy::Application",
        json!({"ComputePlatform": "Lambda"}),
    );
    let app = cd.create(app).await.unwrap().physical_id;
    let group = ResourceRequest::example(
        "s",
        "Group",
        "AWS::CodeDeploy::DeploymentGroup",
        json!({"ApplicationName": app, "DeploymentConfigName": "CodeDeployDefault.LambdaAllAtOnce"}),
    );
    let group = cd.create(group).await.unwrap().physical_id;
    let shift = crate::AliasShift {
        application: app.clone(),
        group: group.clone(),
        function: "f".into(),
        alias: "live".into(),
        from: "1".into(),
        to: "2".into(),
        before_hook: None,
        after_hook: None,
    };
    let id = cd.shift_alias(shift).await.unwrap();
    let got = cd.dispatch("GetDeployment", &json!({"deploymentId": id})).unwrap();
    assert_eq!(got["deploymentInfo"]["status"], "Succeeded");
    let listed = cd
        .dispatch("ListDeployments", &json!({"applicationName": app, "deploymentGroupName": group}))
        .unwrap();
    assert_eq!(listed["deployments"], json!([id]));
    let stop = cd.dispatch("StopDeployment", &json!({"deploymentId": id})).unwrap_err();
    assert_eq!(stop.code, "DeploymentAlreadyCompletedException");
    let unknown = cd.dispatch("CreateDeployment", &json!({})).unwrap_err();
    assert_eq!(unknown.code, "UnknownOperationException");
    let missing = cd.dispatch("GetDeployment", &json!({"deploymentId": "d-AAAAAAAAA"})).unwrap_err();
    assert_eq!(missing.code, "DeploymentDoesNotExistException");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_left_in_progress_is_stopped_when_a_lone_node_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let cd = open(&dir);
    let info = json!({"deploymentId": "d-AAAAAAAAA", "status": "InProgress",
        "applicationName": "a", "deploymentGroupName": "g"});
    cd.store.insert_deployment("d-AAAAAAAAA", &info, 0).unwrap();
    drop(cd);
    let cd = open(&dir);
    let got = cd.dispatch("GetDeployment", &json!({"deploymentId": "d-AAAAAAAAA"})).unwrap();
    assert_eq!(got["deploymentInfo"]["status"], "Stopped");
    assert_eq!(got["deploymentInfo"]["errorInformation"]["code"], "MANUAL_STOP");
}
