//! Unit tests of the Slurm binding: the script, the binding rule, the final states.

use super::*;
use serde_json::json;

#[test]
fn the_script_exports_the_variables_and_execs_the_command_quoted() {
    let exec = JobExec {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), "echo 'it''s' $X".into()],
        env: vec![("X".into(), "a b'c".into()), ("bad-name".into(), "x".into())],
        ..Default::default()
    };
    let script = script_of(&exec);
    assert!(script.starts_with("#!/bin/sh\nexport X='a b'\\''c'\n"), "{script}");
    assert!(!script.contains("bad-name"));
    assert!(script.contains("export PATH='/usr/local/sbin"));
    assert!(script.ends_with("exec '/bin/sh' '-c' 'echo '\\''it'\\'''\\''s'\\'' $X'\n"), "{script}");
    let out = std::process::Command::new("sh").arg("-c").arg(script.replace("exec ", "")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "its a b'c\n");
}

#[test]
fn unmanaged_environments_bind_by_tag_or_by_the_default() {
    let settings = SlurmSettings { partition: Some("batch".into()), ..Default::default() };
    let tagged = json!({"type": "UNMANAGED", "tags": {TAG: "gpu"}});
    assert_eq!(partition_of(&tagged, &settings).as_deref(), Some("gpu"));
    assert_eq!(partition_of(&tagged, &SlurmSettings::default()).as_deref(), Some("gpu"));
    let plain = json!({"type": "UNMANAGED", "tags": {}});
    assert_eq!(partition_of(&plain, &settings).as_deref(), Some("batch"));
    assert_eq!(partition_of(&plain, &SlurmSettings::default()), None);
    let managed = json!({"type": "MANAGED", "tags": {TAG: "gpu"}});
    assert_eq!(partition_of(&managed, &settings), None);
}

#[test]
fn final_states_end_the_attempt() {
    for state in ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "GONE"] {
        assert!(is_final(state), "{state}");
    }
    for state in ["PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED"] {
        assert!(!is_final(state), "{state}");
    }
}
