//! EC2 in-process: instances as plain processes (forced `Process` isolation, so no root is
//! needed), a virtual clock for the spot notice, and the Rust API Batch launches through.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nimbus_api::clock::{Clock, VirtualClock};
use nimbus_api::Identity;
use nimbus_sandbox::{Isolation, Sandbox};
use nimbus_store::Database;
use serde_json::{json, Value};

use crate::instances::Launch;
use crate::{Capacity, Config, Ec2, Ec2Events, Exec, Lifecycle, State};

#[derive(Default)]
struct Recorded(Mutex<Vec<(String, Value)>>);

impl Ec2Events for Recorded {
    fn put(&self, _source: &str, detail_type: &str, _resources: Vec<String>, detail: Value) {
        self.0.lock().unwrap().push((detail_type.to_owned(), detail));
    }
}

pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    database: Database,
    clock: Arc<VirtualClock>,
    events: Arc<Recorded>,
    sandbox: Arc<Sandbox>,
    config: Config,
    /// Stopped when the fixture is dropped, before its directory goes: an instance still booting
    /// would otherwise leave its processes and its directory behind.
    opened: Mutex<Vec<Arc<Ec2>>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let opened = std::mem::take(&mut *self.opened.lock().unwrap());
        let stop = async {
            for ec2 in opened {
                ec2.shutdown().await;
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => tokio::task::block_in_place(|| runtime.block_on(stop)),
            Err(_) => tokio::runtime::Runtime::new().unwrap().block_on(stop),
        }
    }
}

impl Fixture {
    pub(crate) fn new(vcpus: u32) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = Arc::new(Sandbox::new(dir.path(), Some(Isolation::Process)).unwrap());
        let config = Config {
            vcpus,
            memory_mib: 16 * 1024,
            scale: 1.0,
            spot_notice_seconds: 120,
            spot_interruption_rate: 0.0,
            endpoint_url: "http://127.0.0.1:4566".into(),
            data_dir: dir.path().join("ec2"),
            node: "local".into(),
            market: false,
        };
        Fixture {
            database: Database::sqlite(dir.path()),
            _dir: dir,
            clock: Arc::new(VirtualClock::default()),
            events: Arc::default(),
            sandbox,
            config,
            opened: Mutex::default(),
        }
    }

    pub(crate) fn open(&self) -> Arc<Ec2> {
        let ec2 = Ec2::open(
            &self.database,
            Identity::default(),
            self.config.clone(),
            self.clock.clone(),
            self.sandbox.clone(),
            Arc::default(),
            self.events.clone(),
        )
        .unwrap();
        self.opened.lock().unwrap().push(ec2.clone());
        ec2
    }
}

fn run(ec2: &Ec2, input: Value) -> Result<crate::Instance, nimbus_api::AwsError> {
    let mut input = input;
    input["MinCount"] = json!("1");
    input["MaxCount"] = json!("1");
    input["ImageId"] = json!(crate::catalog::IMAGES[0].id);
    let (_, mut instances) = ec2.run_instances(Launch { region: "us-east-1", input })?;
    Ok(instances.remove(0))
}

async fn until_state(ec2: &Ec2, id: &str, state: State) -> crate::Instance {
    for _ in 0..200 {
        let instance = ec2.instance(id).unwrap().unwrap();
        if instance.state == state {
            return instance;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{id} never reached {state:?}");
}

fn user_data(script: &str) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, script)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_runs_its_user_data_and_is_metered() {
    let fixture = Fixture::new(8);
    let ec2 = fixture.open();
    let launched = run(&ec2, json!({ "InstanceType": "t3.micro", "UserData": user_data("#!/bin/sh\necho up $NIMBUS_INSTANCE_ID\n") }))
        .unwrap();
    assert_eq!(launched.state, State::Pending);
    until_state(&ec2, &launched.id, State::Running).await;
    // The last line the instance prints once its user data has run.
    let mut console = String::new();
    for _ in 0..400 {
        console = String::from_utf8_lossy(&ec2.runner.console(&launched.id)).into_owned();
        if console.contains("user data exited with status") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(console.contains(&format!("up {}", launched.id)), "{console}");
    assert!(console.contains("user data exited with status 0"), "{console}");
    ec2.terminate(&launched.id).unwrap();
    let ended = until_state(&ec2, &launched.id, State::Terminated).await;
    assert_eq!(ended.state_reason.unwrap().0, "Client.UserInitiatedShutdown");
    let meter = ec2.meter(None).unwrap();
    assert_eq!(meter["lines"][0]["market"], "on-demand");
    assert_eq!(meter["lines"][0]["billed_seconds"], 60.0);
    let names: Vec<String> = fixture.events.0.lock().unwrap().iter().map(|(t, _)| t.clone()).collect();
    assert!(names.iter().all(|n| n == "EC2 Instance State-change Notification"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn capacity_is_refused_past_what_the_host_lends() {
    let fixture = Fixture::new(4);
    let ec2 = fixture.open();
    let error = run(&ec2, json!({ "InstanceType": "c5.2xlarge" })).unwrap_err();
    assert_eq!(error.code, "InsufficientInstanceCapacity");
    run(&ec2, json!({ "InstanceType": "c5.xlarge" })).unwrap();
    assert_eq!(
        run(&ec2, json!({ "InstanceType": "t3.nano" })).unwrap_err().code,
        "InsufficientInstanceCapacity"
    );
    ec2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spot_interruption_waits_for_the_clock_then_terminates() {
    let fixture = Fixture::new(8);
    let ec2 = fixture.open();
    let launched =
        ec2.launch(Capacity { vcpus: 2, memory_mib: 1024, spot: true, ..Capacity::default() }).unwrap();
    let mut lifecycle = launched.lifecycle.clone();
    until_state(&ec2, &launched.instance_id, State::Running).await;
    ec2.interrupt(&launched.instance_id).unwrap();
    lifecycle.wait_for(|l| matches!(l, Lifecycle::Interrupting { .. })).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ec2.instance(&launched.instance_id).unwrap().unwrap().state, State::Running);
    fixture.clock.advance_ms(121_000);
    let ended = lifecycle
        .wait_for(|l| matches!(l, Lifecycle::Ended { state: State::Terminated, .. }))
        .await
        .unwrap()
        .clone();
    assert_eq!(
        ended,
        Lifecycle::Ended { state: State::Terminated, reason: "Server.SpotInstanceTermination".into() }
    );
    let kinds: Vec<String> = fixture.events.0.lock().unwrap().iter().map(|(t, _)| t.clone()).collect();
    assert!(kinds.contains(&"EC2 Spot Instance Interruption Warning".to_owned()));
    // EC2 interrupted it within its first hour: no charge.
    assert_eq!(ec2.meter(None).unwrap()["total_usd"], 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_launches_the_cheapest_fitting_type_and_runs_a_process_in_it() {
    let fixture = Fixture::new(16);
    let ec2 = fixture.open();
    let launched = ec2
        .launch(Capacity { vcpus: 2, memory_mib: 4096, arch: Some("arm64".into()), ..Capacity::default() })
        .unwrap();
    let kind = crate::Catalog::get().instance_type(&launched.instance_type).unwrap();
    assert_eq!(kind.arch(), "arm64");
    assert!(kind.vcpus >= 2 && kind.memory_mib >= 4096);
    until_state(&ec2, &launched.instance_id, State::Running).await;
    let exec = Exec {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), "exit 3".into()],
        env: Vec::new(),
        ..Exec::default()
    };
    let process = ec2.exec(&launched.instance_id, exec).await.unwrap();
    let status = process.child.wait().await.unwrap();
    process.child.release();
    assert_eq!(status.code(), Some(3));
    let sleeper =
        Exec { program: "/bin/sleep".into(), args: vec!["30".into()], env: Vec::new(), ..Exec::default() };
    let process = ec2.exec(&launched.instance_id, sleeper).await.unwrap();
    ec2.terminate(&launched.instance_id).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(5), process.child.wait()).await.unwrap().unwrap();
    process.child.release();
    assert!(status.code().is_none(), "terminating the instance kills its processes");
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_running_at_a_restart_come_back_stopped() {
    let fixture = Fixture::new(8);
    let ec2 = fixture.open();
    let launched = run(&ec2, json!({ "InstanceType": "t3.micro" })).unwrap();
    until_state(&ec2, &launched.id, State::Running).await;
    ec2.shutdown().await;
    drop(ec2);
    assert!(Ec2::has_instances(&fixture.database));
    let ec2 = fixture.open();
    let instance = ec2.instance(&launched.id).unwrap().unwrap();
    assert_eq!(instance.state, State::Stopped);
    assert_eq!(instance.state_reason.unwrap().0, "Server.InternalError");
    assert!(!Ec2::has_instances(&fixture.database));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_spot_market_interrupts_above_the_max_price_and_at_its_rate() {
    let fixture = Fixture::new(8);
    let ec2 = fixture.open();
    let kind = crate::Catalog::get().instance_type("c5.large").unwrap();
    let now = fixture.clock.now_ms();
    let price = crate::catalog::spot_price(kind, "us-east-1a", now).unwrap();
    let options = json!({ "MarketType": "spot", "SpotOptions": { "MaxPrice": format!("{price:.6}") } });
    let launched =
        run(&ec2, json!({ "InstanceType": "c5.large", "InstanceMarketOptions": options })).unwrap();
    until_state(&ec2, &launched.id, State::Running).await;
    ec2.market_minute();
    assert!(
        ec2.instance(&launched.id).unwrap().unwrap().interruption.is_none(),
        "the price is not above the max"
    );
    let period = crate::catalog::SPOT_PERIOD_MS;
    let higher = (1..200)
        .map(|n| now - now.rem_euclid(period) + n * period)
        .find(|at| crate::catalog::spot_price(kind, "us-east-1a", *at).unwrap() > price)
        .expect("the price rises within 200 periods");
    fixture.clock.advance_ms(higher - now);
    ec2.market_minute();
    let interruption =
        ec2.instance(&launched.id).unwrap().unwrap().interruption.expect("interrupted by price");
    assert_eq!(interruption.cause, "price");
    fixture.clock.advance_ms(121_000);
    until_state(&ec2, &launched.id, State::Terminated).await;
    let request: crate::spot::SpotRequest =
        ec2.store.get("spot-request", launched.spot_request_id.as_deref().unwrap()).unwrap().unwrap();
    assert_eq!(request.status_code, "instance-terminated-by-price");

    let mut fixture = Fixture::new(8);
    fixture.config.spot_interruption_rate = 1.0;
    let ec2 = fixture.open();
    let launched =
        run(&ec2, json!({ "InstanceType": "t3.nano", "InstanceMarketOptions": { "MarketType": "spot" } }))
            .unwrap();
    until_state(&ec2, &launched.id, State::Running).await;
    ec2.market_minute();
    assert_eq!(ec2.instance(&launched.id).unwrap().unwrap().interruption.unwrap().cause, "capacity");
    ec2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_spot_requests_come_back_after_an_interruption() {
    let fixture = Fixture::new(8);
    let ec2 = fixture.open();
    let persistent = |behavior: &str| {
        json!({ "InstanceType": "t3.nano", "InstanceMarketOptions": { "MarketType": "spot", "SpotOptions": {
            "SpotInstanceType": "persistent", "InstanceInterruptionBehavior": behavior } } })
    };
    let request_of = |ec2: &Ec2, id: &str| -> crate::spot::SpotRequest {
        ec2.store.get("spot-request", id).unwrap().unwrap()
    };

    let first = run(&ec2, persistent("terminate")).unwrap();
    let stopping = run(&ec2, persistent("stop")).unwrap();
    until_state(&ec2, &first.id, State::Running).await;
    until_state(&ec2, &stopping.id, State::Running).await;
    ec2.interrupt(&first.id).unwrap();
    ec2.interrupt(&stopping.id).unwrap();
    fixture.clock.advance_ms(121_000);
    until_state(&ec2, &first.id, State::Terminated).await;
    let stopped = until_state(&ec2, &stopping.id, State::Stopped).await;
    assert_eq!(stopped.state_reason.unwrap().0, "Server.SpotInstanceShutdown");
    let request_id = first.spot_request_id.clone().unwrap();
    assert_eq!(request_of(&ec2, &request_id).state, "open");
    assert_eq!(
        request_of(&ec2, stopping.spot_request_id.as_deref().unwrap()).status_code,
        "instance-stopped-no-capacity"
    );

    fixture.clock.advance_ms(60_000);
    ec2.market_minute();
    let relaunched = request_of(&ec2, &request_id);
    assert_eq!((relaunched.state.as_str(), relaunched.status_code.as_str()), ("active", "fulfilled"));
    let next = relaunched.instance_id.unwrap();
    assert_ne!(next, first.id);
    assert_eq!(
        until_state(&ec2, &next, State::Running).await.spot_request_id.as_deref(),
        Some(request_id.as_str())
    );
    until_state(&ec2, &stopping.id, State::Running).await;
    assert_eq!(request_of(&ec2, stopping.spot_request_id.as_deref().unwrap()).state, "active");
    ec2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scale_factor_lets_types_larger_than_the_host_run() {
    let mut fixture = Fixture::new(8);
    let ec2 = fixture.open();
    assert_eq!(
        run(&ec2, json!({ "InstanceType": "c5.9xlarge" })).unwrap_err().code,
        "InsufficientInstanceCapacity"
    );
    fixture.config.scale = 8.0;
    let ec2 = fixture.open();
    // 36 vCPUs and 72 GiB held as 4.5 vCPUs and 9 GiB: one fits in 8 vCPUs and 16 GiB, not two.
    let big = run(&ec2, json!({ "InstanceType": "c5.9xlarge" })).unwrap();
    until_state(&ec2, &big.id, State::Running).await;
    assert_eq!(
        run(&ec2, json!({ "InstanceType": "c5.9xlarge" })).unwrap_err().code,
        "InsufficientInstanceCapacity"
    );
    ec2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unfulfilled_spot_request_is_fulfilled_when_capacity_returns() {
    let fixture = Fixture::new(2);
    let ec2 = fixture.open();
    let request = json!({ "InstanceCount": "1", "LaunchSpecification": {
        "ImageId": crate::catalog::IMAGES[0].id, "InstanceType": "t3.micro" } });
    let first = ec2.request_spot_instances("us-east-1", &request).unwrap();
    let first_instance = first["spotInstanceRequestSet"][0]["instanceId"].as_str().unwrap().to_owned();
    let second = ec2.request_spot_instances("us-east-1", &request).unwrap();
    let waiting = second["spotInstanceRequestSet"][0].clone();
    assert_eq!(
        (waiting["state"].as_str(), waiting["status"]["code"].as_str()),
        (Some("open"), Some("capacity-not-available"))
    );
    let id = waiting["spotInstanceRequestId"].as_str().unwrap().to_owned();
    ec2.terminate(&first_instance).unwrap();
    until_state(&ec2, &first_instance, State::Terminated).await;
    ec2.market_minute();
    let fulfilled: crate::spot::SpotRequest = ec2.store.get("spot-request", &id).unwrap().unwrap();
    assert_eq!((fulfilled.state.as_str(), fulfilled.status_code.as_str()), ("active", "fulfilled"));
    until_state(&ec2, fulfilled.instance_id.as_deref().unwrap(), State::Running).await;
    ec2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn terminated_instances_are_forgotten_after_an_hour() {
    let fixture = Fixture::new(8);
    let ec2 = fixture.open();
    let launched = run(&ec2, json!({ "InstanceType": "t3.nano" })).unwrap();
    until_state(&ec2, &launched.id, State::Running).await;
    ec2.terminate(&launched.id).unwrap();
    until_state(&ec2, &launched.id, State::Terminated).await;
    ec2.market_minute();
    assert!(ec2.instance(&launched.id).unwrap().is_some());
    fixture.clock.advance_ms(3_700_000);
    ec2.market_minute();
    assert!(ec2.instance(&launched.id).unwrap().is_none());
    assert_eq!(ec2.meter(None).unwrap()["lines"][0]["instances"], 1, "the meter keeps its usage");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_shows_its_cpu_and_memory_and_its_events_outlive_a_restart() {
    let fixture = Fixture::new(8);
    let ec2 = fixture.open();
    let busy = user_data("#!/bin/sh\nwhile :; do :; done\n");
    let launched = run(&ec2, json!({ "InstanceType": "m5.large", "UserData": busy })).unwrap();
    until_state(&ec2, &launched.id, State::Running).await;
    let first = ec2.runner.usage(&launched.id).unwrap();
    let mut busy_cpus = 0.0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        busy_cpus = ec2.runner.usage(&launched.id).unwrap().cpus;
        if busy_cpus > 0.05 {
            break;
        }
    }
    assert!(busy_cpus > 0.05, "the user data's loop keeps a CPU busy: {busy_cpus}");
    let now = ec2.runner.usage(&launched.id).unwrap();
    assert!(now.cpu_seconds > first.cpu_seconds && now.memory_mib > 0, "{first:?} → {now:?}");
    ec2.terminate(&launched.id).unwrap();
    until_state(&ec2, &launched.id, State::Terminated).await;
    assert_eq!(ec2.runner.usage(&launched.id), None);
    ec2.shutdown().await;
    drop(ec2);

    let ec2 = fixture.open();
    let states: Vec<Value> =
        ec2.store.recent_events(100).unwrap().iter().map(|e| e["detail"]["state"].clone()).collect();
    assert_eq!(states, [json!("running"), json!("shutting-down"), json!("terminated")]);
    ec2.store.prune_events(1).unwrap();
    let kept = ec2.store.recent_events(100).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["detail"]["state"], "terminated");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_what_if_prices_instance_seconds_on_each_option() {
    struct Functions;
    impl crate::FunctionUsage for Functions {
        fn usage(&self, _since: i64, _until: i64) -> Result<Vec<crate::FunctionUse>, String> {
            Ok(vec![crate::FunctionUse {
                architecture: "x86_64".into(),
                requests: 1_000_000,
                gb_seconds: 3600.0,
            }])
        }
    }
    let fixture = Fixture::new(8);
    let ec2 = fixture.open();
    let unknown = ec2.what_if(None).unwrap();
    assert!(unknown["workload"]["functions"]["unknown"].is_string());
    ec2.set_function_usage(Arc::new(Functions));
    let launched = run(&ec2, json!({ "InstanceType": "m5.large" })).unwrap();
    until_state(&ec2, &launched.id, State::Running).await;
    fixture.clock.advance_ms(3_600_000);
    let answer = ec2.what_if(None).unwrap();
    let option = |service: &str, arch: &str, market: &str| {
        answer["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["service"] == service && o["architecture"] == arch && o["market"] == market)
            .cloned()
            .unwrap()
    };
    // One hour of m5.large on demand is its hourly price; as Graviton, m7g.large's.
    let m5 = crate::Catalog::get().instance_type("m5.large").unwrap().price.unwrap();
    let m7g = crate::Catalog::get().instance_type("m7g.large").unwrap().price.unwrap();
    let on_demand = option("Batch", "x86_64", "on-demand")["instances_usd"].as_f64().unwrap();
    assert!((on_demand - m5).abs() < 0.001, "{on_demand} vs {m5}");
    let graviton = option("Batch", "arm64", "on-demand")["instances_usd"].as_f64().unwrap();
    assert!((graviton - m7g).abs() < 0.001, "{graviton} vs {m7g}");
    assert!(
        (option("Batch", "x86_64", "reserved")["instances_usd"].as_f64().unwrap() - m5 * 0.64).abs() < 0.001
    );
    // A million requests and an hour of 1 GB as Lambda on x86: $0.20 + 3600 × $0.0000166667.
    let lambda = option("Lambda", "x86_64", "on-demand")["functions_usd"].as_f64().unwrap();
    assert!((lambda - (0.20 + 0.06)).abs() < 0.0001, "{lambda}");
    // The instance's hour as Lambda: 8 GiB × 3600 s, four 15-minute requests.
    let as_lambda = option("Lambda", "x86_64", "on-demand")["instances_usd"].as_f64().unwrap();
    assert!((as_lambda - (8.0 * 3600.0 * 0.0000166667 + 4.0 * 0.2e-6)).abs() < 0.001, "{as_lambda}");
    assert_eq!(answer["sources"].as_array().unwrap().len(), 4);
    ec2.terminate(&launched.id).unwrap();
    ec2.shutdown().await;
}
