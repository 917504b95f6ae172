//! Who a job's process is and what it may use: the job definition's `user` (over the image
//! config's `User`, as ECS does), resolved in the image's `/etc/passwd` and `/etc/group` (the
//! host's for `nimbus/host`), and its `ulimits`.

use std::path::Path;

use serde_json::Value;

use crate::Ulimit;

/// The ulimits Docker (and so ECS) knows.
const NAMES: [&str; 15] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// The container's `ulimits`, or why they cannot be applied (a container reason).
pub(crate) fn ulimits_of(container: &Value) -> Result<Vec<Ulimit>, String> {
    let mut limits = Vec::new();
    for limit in container["ulimits"].as_array().into_iter().flatten() {
        let name = limit["name"].as_str().unwrap_or_default();
        if !NAMES.contains(&name) {
            return Err(format!(
                "CannotCreateContainerError: Error response from daemon: invalid ulimit type: {name}"
            ));
        }
        let value = |key: &str| limit[key].as_i64().filter(|v| *v >= -1);
        let (Some(soft), Some(hard)) = (value("softLimit"), value("hardLimit")) else {
            return Err(format!("CannotCreateContainerError: ulimit {name} needs softLimit and hardLimit"));
        };
        // -1: unlimited (RLIM_INFINITY).
        let raw = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
        if raw(soft) > raw(hard) {
            return Err(format!(
                "CannotCreateContainerError: Error response from daemon: ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            ));
        }
        limits.push(Ulimit { name: name.to_owned(), soft: raw(soft), hard: raw(hard) });
    }
    Ok(limits)
}

/// `user` as Docker takes it (`name`, `uid`, `name:group`, `uid:gid`) resolved against the
/// `/etc/passwd` and `/etc/group` under `root` (never through a link) by the resolver Lambda
/// images use too: (uid, gid), `None` for a blank user (the default one), or the attempt's
/// reason as Docker words it.
pub(crate) fn resolve_user(user: &str, root: &Path) -> Result<Option<(u32, u32)>, String> {
    nimbus_images::user::resolve(root, user)
        .map_err(|why| format!("CannotStartContainerError: Error response from daemon: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn users_resolve_by_name_or_number_in_the_roots_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65533::/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nusers:x:100:\n").unwrap();
        assert_eq!(resolve_user("nobody", dir.path()), Ok(Some((65534, 65533))));
        assert_eq!(resolve_user("65534", dir.path()), Ok(Some((65534, 65533))));
        assert_eq!(resolve_user("1234", dir.path()), Ok(Some((1234, 0))));
        assert_eq!(resolve_user("1234:55", dir.path()), Ok(Some((1234, 55))));
        assert_eq!(resolve_user("nobody:users", dir.path()), Ok(Some((65534, 100))));
        assert_eq!(
            resolve_user("ghost", dir.path()).unwrap_err(),
            "CannotStartContainerError: Error response from daemon: unable to find user ghost: \
             no matching entries in passwd file"
        );
        assert_eq!(resolve_user(" ", dir.path()), Ok(None));
        assert!(resolve_user("nobody:ghosts", dir.path())
            .unwrap_err()
            .contains("unable to find group ghosts"));
    }

    #[test]
    fn ulimits_are_checked_and_minus_one_is_unlimited() {
        let container = json!({"ulimits": [
            {"name": "nofile", "softLimit": 1024, "hardLimit": 2048},
            {"name": "core", "softLimit": -1, "hardLimit": -1}]});
        assert_eq!(
            ulimits_of(&container).unwrap(),
            [
                Ulimit { name: "nofile".into(), soft: 1024, hard: 2048 },
                Ulimit { name: "core".into(), soft: u64::MAX, hard: u64::MAX }
            ]
        );
        let bad = json!({"ulimits": [{"name": "files", "softLimit": 1, "hardLimit": 1}]});
        assert!(ulimits_of(&bad).unwrap_err().contains("invalid ulimit type: files"));
        let inverted = json!({"ulimits": [{"name": "nofile", "softLimit": 10, "hardLimit": 5}]});
        assert!(ulimits_of(&inverted).unwrap_err().contains("soft limit must be less than or equal"));
    }
}
