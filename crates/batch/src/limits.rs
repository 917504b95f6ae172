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
/// `/etc/passwd` and `/etc/group` under `root`: (uid, gid). A numeric uid not in passwd gets gid
/// 0, as Docker gives it.
pub(crate) fn resolve_user(user: &str, root: &Path) -> Result<(u32, u32), String> {
    let read = |file: &str| std::fs::read_to_string(root.join("etc").join(file)).unwrap_or_default();
    let (name, group) = match user.split_once(':') {
        Some((name, group)) => (name, Some(group)),
        None => (user, None),
    };
    let passwd = read("passwd");
    // name:x:uid:gid:…
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && (f[0] == name || name.parse::<u32>().is_ok() && f[2] == name));
    let uid = match (name.parse::<u32>(), &entry) {
        (Ok(uid), _) => uid,
        (Err(_), Some(fields)) => fields[2].parse().map_err(|_| unknown_user(user))?,
        (Err(_), None) => return Err(unknown_user(user)),
    };
    let gid = match group {
        Some(group) => match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => read("group")
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() > 2 && f[0] == group)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    format!(
                        "CannotStartContainerError: Error response from daemon: unable to find group {group}: no matching entries in group file"
                    )
                })?,
        },
        None => entry.and_then(|f| f[3].parse().ok()).unwrap_or(0),
    };
    Ok((uid, gid))
}

fn unknown_user(user: &str) -> String {
    format!(
        "CannotStartContainerError: Error response from daemon: unable to find user {user}: no matching entries in passwd file"
    )
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
        assert_eq!(resolve_user("nobody", dir.path()), Ok((65534, 65533)));
        assert_eq!(resolve_user("65534", dir.path()), Ok((65534, 65533)));
        assert_eq!(resolve_user("1234", dir.path()), Ok((1234, 0)));
        assert_eq!(resolve_user("1234:55", dir.path()), Ok((1234, 55)));
        assert_eq!(resolve_user("nobody:users", dir.path()), Ok((65534, 100)));
        assert!(resolve_user("ghost", dir.path()).unwrap_err().contains("unable to find user ghost"));
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
