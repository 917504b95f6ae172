use serde_json::json;

use crate::placement::{candidates, choose_type, Blocked};
use crate::retry::{glob, should_retry, substitute};
use crate::HostType;

fn kind(name: &str, vcpus: u32, memory_mib: u64, price: f64) -> HostType {
    HostType {
        name: name.into(),
        family: name.split('.').next().unwrap_or_default().into(),
        vcpus,
        memory_mib,
        arch: "x86_64".into(),
        price,
        spot_price: Some(price * 0.3),
        bare_metal: false,
    }
}

fn catalog() -> Vec<HostType> {
    vec![
        kind("m6i.large", 2, 8192, 0.096),
        kind("m6i.xlarge", 4, 16384, 0.192),
        kind("m6i.2xlarge", 8, 32768, 0.384),
        kind("c6i.large", 2, 4096, 0.085),
        kind("c6i.xlarge", 4, 8192, 0.17),
        kind("r6i.large", 2, 16384, 0.126),
    ]
}

#[test]
fn patterns_are_literal_or_prefix_and_absent_fields_match_only_star() {
    assert!(glob("137", Some("137")));
    assert!(!glob("13", Some("137")));
    assert!(glob("1*", Some("137")));
    assert!(glob("Host EC2*", Some("Host EC2 (instance i-1) terminated.")));
    assert!(glob("*", None));
    assert!(!glob("1*", None));
}

#[test]
fn first_matching_rule_wins_and_no_match_retries() {
    let strategy = json!({ "attempts": 3, "evaluateOnExit": [
        { "onExitCode": "3", "action": "retry" },
        { "onReason": "*", "action": "EXIT" },
    ]});
    assert!(should_retry(Some(&strategy), Some(3), None, "Essential container in task exited", 1));
    assert!(!should_retry(Some(&strategy), Some(4), None, "Essential container in task exited", 1));
    // Attempts used up.
    assert!(!should_retry(Some(&strategy), Some(3), None, "Essential container in task exited", 3));
    let host = json!({ "attempts": 2, "evaluateOnExit": [{ "onStatusReason": "Host EC2*", "action": "RETRY" }, { "onExitCode": "1", "action": "EXIT" }]});
    assert!(should_retry(Some(&host), None, None, "Host EC2 (instance i-0) terminated.", 1));
    assert!(!should_retry(Some(&host), Some(1), None, "Essential container in task exited", 1));
    assert!(should_retry(Some(&host), Some(2), None, "Essential container in task exited", 1));
    assert!(!should_retry(None, Some(1), None, "x", 1));
}

#[test]
fn references_in_commands_take_parameters() {
    let parameters = json!({ "name": "world" }).as_object().cloned().unwrap();
    let command = vec!["echo".to_owned(), "Ref::name".to_owned(), "Ref::missing".to_owned()];
    assert_eq!(substitute(&command, &parameters), vec!["echo", "world", "Ref::missing"]);
}

#[test]
fn best_fit_takes_the_cheapest_type_that_fits_within_max() {
    let catalog = catalog();
    let resources = json!({ "type": "EC2", "instanceTypes": ["optimal"], "allocationStrategy": "BEST_FIT" });
    let pool = candidates(&catalog, &resources);
    assert_eq!(pool.len(), 6);
    let chosen = choose_type(&pool, &resources, 1.0, 2048, 1.0, 16.0).unwrap();
    assert_eq!(chosen.name, "c6i.large");
    let chosen = choose_type(&pool, &resources, 2.0, 6000, 2.0, 16.0).unwrap();
    assert_eq!(chosen.name, "m6i.large");
    assert_eq!(choose_type(&pool, &resources, 16.0, 1024, 16.0, 64.0).unwrap_err(), Blocked::Requirement);
    assert_eq!(choose_type(&pool, &resources, 4.0, 1024, 4.0, 2.0).unwrap_err(), Blocked::Max);
}

#[test]
fn progressive_strategies_size_to_demand_at_the_lowest_price_per_vcpu() {
    let catalog = catalog();
    let resources = json!({ "type": "SPOT", "instanceTypes": ["m6i", "c6i"], "allocationStrategy": "SPOT_PRICE_CAPACITY_OPTIMIZED", "bidPercentage": 100 });
    let pool = candidates(&catalog, &resources);
    assert!(pool.iter().all(|t| t.family != "r6i"));
    let chosen = choose_type(&pool, &resources, 1.0, 1024, 8.0, 64.0).unwrap();
    // c6i is cheapest per vCPU; of equal prices per vCPU the larger type.
    assert_eq!(chosen.name, "c6i.xlarge");
    // A bid below the spot price leaves nothing.
    let low = json!({ "type": "SPOT", "instanceTypes": ["m6i"], "bidPercentage": 10 });
    assert!(candidates(&catalog, &low).is_empty());
}
