//! An image config's `User` (`name`, `uid`, `name:group`, `uid:gid`, any mix) as the numeric
//! uid and gid to run as, names looked up in the image's own `/etc/passwd` and `/etc/group`
//! as Docker does: a user without a group gets its passwd entry's group (0 for a number the
//! passwd file lacks); a name the image does not know is an error.

use std::path::Path;

/// The uid and gid `user` names in the image whose root is `rootfs`; `None` for an empty one.
pub fn resolve(rootfs: &Path, user: &str) -> Result<Option<(u32, u32)>, String> {
    let user = user.trim();
    if user.is_empty() {
        return Ok(None);
    }
    let (name, group) = match user.split_once(':') {
        Some((name, group)) => (name, Some(group)),
        None => (user, None),
    };
    let passwd = read(rootfs, "etc/passwd");
    let entry = passwd.lines().map(|line| line.split(':').collect::<Vec<_>>()).find(|fields| {
        fields.len() >= 4 && (fields[0] == name || (name.parse::<u32>().is_ok() && fields[2] == name))
    });
    let uid = match (name.parse::<u32>(), &entry) {
        (Ok(uid), _) => uid,
        (Err(_), Some(fields)) => {
            fields[2].parse().map_err(|_| format!("the image's passwd entry for {name} is invalid"))?
        }
        (Err(_), None) => {
            return Err(format!("unable to find user {name}: no matching entries in passwd file"))
        }
    };
    let gid = match group {
        Some(group) => match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let groups = read(rootfs, "etc/group");
                let found = groups
                    .lines()
                    .map(|line| line.split(':').collect::<Vec<_>>())
                    .find(|fields| fields.len() >= 3 && fields[0] == group);
                match found {
                    Some(fields) => fields[2]
                        .parse()
                        .map_err(|_| format!("the image's group entry for {group} is invalid"))?,
                    None => {
                        return Err(format!(
                            "unable to find group {group}: no matching entries in group file"
                        ))
                    }
                }
            }
        },
        None => entry.and_then(|fields| fields[3].parse().ok()).unwrap_or(0),
    };
    Ok(Some((uid, gid)))
}

/// A file of the image (never through a symbolic link, which could lead out of it).
fn read(rootfs: &Path, path: &str) -> String {
    let path = rootfs.join(path);
    match path.symlink_metadata() {
        Ok(meta) if meta.is_file() => std::fs::read_to_string(&path).unwrap_or_default(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn names_and_numbers_as_docker_reads_them() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let r = |user: &str| resolve(root.path(), user);
        assert_eq!(r(""), Ok(None));
        assert_eq!(r("app"), Ok(Some((1000, 1001))));
        assert_eq!(r("1000"), Ok(Some((1000, 1001))));
        assert_eq!(r("4242"), Ok(Some((4242, 0))));
        assert_eq!(r("app:staff"), Ok(Some((1000, 50))));
        assert_eq!(r("7:8"), Ok(Some((7, 8))));
        assert_eq!(
            r("nobody").unwrap_err(),
            "unable to find user nobody: no matching entries in passwd file"
        );
        assert!(r("app:wheel").unwrap_err().contains("unable to find group wheel"));
        std::fs::remove_file(root.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.path().join("etc/passwd")).unwrap();
        assert!(r("root").is_err(), "the host's passwd is not read through a link");
    }
}
