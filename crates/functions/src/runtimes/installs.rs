//! Where a host keeps its interpreters: `PATH`, and the install trees of the version managers
//! people use (pyenv, uv, asdf, mise and conda for Python; nvm, fnm, volta, asdf and mise for
//! Node). Only file-system lookups over a [`Host`] the caller gives, so tests run them on a fake
//! tree; probing a candidate (running it) is the caller's business.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The two facts about the host that the lookup reads, taken from the environment in one place.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// The user's home directory; without one only `PATH` and absolute install roots are searched.
    pub home: Option<PathBuf>,
    /// The `PATH` to search, as the environment spells it.
    pub path: OsString,
}

impl Host {
    pub fn current() -> Host {
        Host {
            home: std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from),
            path: std::env::var_os("PATH").unwrap_or_default(),
        }
    }

    /// The first executable called `name` on `PATH` (what a shell would run).
    pub fn which(&self, name: &str) -> Option<PathBuf> {
        std::env::split_paths(&self.path).map(|dir| dir.join(name)).find(|path| is_executable(path))
    }
}

/// An interpreter a runtime asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted<'a> {
    /// `3.12` for `python3.12`.
    Python(&'a str),
    /// `20` for `nodejs20.x`.
    Node(&'a str),
}

/// A version manager's install tree: `<root>/<prefix><version…>/<binary>`; `root` is under the
/// home directory unless absolute.
struct Tree {
    root: &'static str,
    prefix: &'static str,
    binary: &'static str,
}

const PYTHON_TREES: &[Tree] = &[
    Tree { root: ".pyenv/versions", prefix: "", binary: "bin/python{}" },
    Tree { root: ".local/share/uv/python", prefix: "cpython-", binary: "bin/python{}" },
    Tree { root: ".asdf/installs/python", prefix: "", binary: "bin/python{}" },
    Tree { root: ".local/share/mise/installs/python", prefix: "", binary: "bin/python{}" },
];

/// Conda installations: the base environment's `bin/` and every `envs/*/bin/`.
const CONDA_ROOTS: &[&str] = &["miniconda3", "anaconda3", "miniforge3", "mambaforge", "/opt/conda"];

const NODE_TREES: &[Tree] = &[
    Tree { root: ".nvm/versions/node", prefix: "v", binary: "bin/node" },
    Tree { root: ".local/share/fnm/node-versions", prefix: "v", binary: "installation/bin/node" },
    Tree { root: ".fnm/node-versions", prefix: "v", binary: "installation/bin/node" },
    Tree { root: ".volta/tools/image/node", prefix: "", binary: "bin/node" },
    Tree { root: ".asdf/installs/nodejs", prefix: "", binary: "bin/node" },
    Tree { root: ".local/share/mise/installs/node", prefix: "", binary: "bin/node" },
];

/// Executables that may serve `wanted`, best first: the versioned command on `PATH`
/// (`python3.12`), or for Node whatever `node` `PATH` has; then the version managers' installs
/// of that version, newest first; last the unversioned command (`python3`, `nodejs`), which
/// the caller keeps as the fallback when no candidate has the version.
pub fn candidates(wanted: Wanted, host: &Host) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let (first, trees, last, version) = match wanted {
        Wanted::Python(version) => (format!("python{version}"), PYTHON_TREES, "python3", version),
        Wanted::Node(major) => ("node".to_owned(), NODE_TREES, "nodejs", major),
    };
    found.extend(host.which(&first));
    let home_or_absolute = |root: &str| match (Path::new(root).is_absolute(), &host.home) {
        (true, _) => Some(PathBuf::from(root)),
        (false, Some(home)) => Some(home.join(root)),
        (false, None) => None,
    };
    for tree in trees {
        let Some(root) = home_or_absolute(tree.root) else { continue };
        let binary = tree.binary.replace("{}", version);
        found.extend(versions_in(&root, tree.prefix, version).into_iter().map(|dir| dir.join(&binary)));
    }
    if let Wanted::Python(version) = wanted {
        for root in CONDA_ROOTS.iter().filter_map(|root| home_or_absolute(root)) {
            let binary = format!("bin/python{version}");
            found.push(root.join(&binary));
            found.extend(sorted_dirs(&root.join("envs")).into_iter().map(|env| env.join(&binary)));
        }
    }
    found.retain(|path| is_executable(path));
    found.extend(host.which(last));
    let mut unique = Vec::new();
    for path in found {
        if !unique.contains(&path) {
            unique.push(path);
        }
    }
    unique
}

/// The directories under `root` named `<prefix><version>` or `<prefix><version>.<more>` (or
/// `-<more>`, as uv's `cpython-3.12.4-linux-x86_64-gnu`), newest first. Free-threaded builds
/// are left out: their interpreter is a different ABI.
fn versions_in(root: &Path, prefix: &str, version: &str) -> Vec<PathBuf> {
    let mut matching: Vec<(Vec<u64>, PathBuf)> = sorted_dirs(root)
        .into_iter()
        .filter_map(|dir| {
            let name = dir.file_name()?.to_str()?.to_owned();
            let rest = name.strip_prefix(prefix)?.strip_prefix(version)?;
            let fits = rest.is_empty() || rest.starts_with('.') || rest.starts_with('-');
            (fits && !name.contains("freethreaded")).then(|| (numbers(&name[prefix.len()..]), dir))
        })
        .collect();
    matching.sort_by(|a, b| b.0.cmp(&a.0));
    matching.into_iter().map(|(_, dir)| dir).collect()
}

/// `3.12.10-linux` → [3, 12, 10]: the leading dotted numbers, for ordering versions.
fn numbers(text: &str) -> Vec<u64> {
    let dotted = text.split(|c: char| !(c.is_ascii_digit() || c == '.')).next().unwrap_or("");
    dotted.split('.').map_while(|part| part.parse().ok()).collect()
}

fn sorted_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    dirs
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Makes `relative` under `root` an executable file (and its directories).
    pub(crate) fn executable(root: &Path, relative: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn relative(root: &Path, paths: Vec<PathBuf>) -> Vec<String> {
        paths.iter().map(|p| p.strip_prefix(root).unwrap().display().to_string()).collect()
    }

    #[test]
    fn python_from_path_then_every_manager_newest_first_then_python3() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        for file in [
            "bin/python3.12",
            "bin/python3",
            "home/.pyenv/versions/3.12.1/bin/python3.12",
            "home/.pyenv/versions/3.12.10/bin/python3.12",
            "home/.pyenv/versions/3.1.5/bin/python3.1",
            "home/.pyenv/versions/3.11.7/bin/python3.11",
            "home/.local/share/uv/python/cpython-3.12.4-linux-x86_64-gnu/bin/python3.12",
            "home/.local/share/uv/python/cpython-3.12.4+freethreaded-linux-x86_64-gnu/bin/python3.12",
            "home/.asdf/installs/python/3.12.2/bin/python3.12",
            "home/.local/share/mise/installs/python/3.12.3/bin/python3.12",
            "home/miniconda3/bin/python3.12",
            "home/miniconda3/envs/etl/bin/python3.12",
            "home/anaconda3/envs/old/bin/python3.9",
        ] {
            executable(root, file);
        }
        // Not executable, so not a candidate.
        std::fs::create_dir_all(root.join("home/.pyenv/versions/3.12.0/bin")).unwrap();
        std::fs::write(root.join("home/.pyenv/versions/3.12.0/bin/python3.12"), "").unwrap();

        let host = Host { home: Some(root.join("home")), path: root.join("bin").into_os_string() };
        assert_eq!(
            relative(root, candidates(Wanted::Python("3.12"), &host)),
            [
                "bin/python3.12",
                "home/.pyenv/versions/3.12.10/bin/python3.12",
                "home/.pyenv/versions/3.12.1/bin/python3.12",
                "home/.local/share/uv/python/cpython-3.12.4-linux-x86_64-gnu/bin/python3.12",
                "home/.asdf/installs/python/3.12.2/bin/python3.12",
                "home/.local/share/mise/installs/python/3.12.3/bin/python3.12",
                "home/miniconda3/bin/python3.12",
                "home/miniconda3/envs/etl/bin/python3.12",
                "bin/python3",
            ]
        );
        assert_eq!(
            relative(root, candidates(Wanted::Python("3.1"), &host)),
            ["home/.pyenv/versions/3.1.5/bin/python3.1", "bin/python3"],
            "3.1 is not a prefix of 3.12"
        );
    }

    #[test]
    fn node_from_path_then_managers_then_nodejs() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        for file in [
            "usr/bin/node",
            "usr/bin/nodejs",
            "home/.nvm/versions/node/v20.11.0/bin/node",
            "home/.nvm/versions/node/v20.9.0/bin/node",
            "home/.nvm/versions/node/v22.1.0/bin/node",
            "home/.local/share/fnm/node-versions/v20.5.0/installation/bin/node",
            "home/.volta/tools/image/node/20.1.0/bin/node",
            "home/.asdf/installs/nodejs/20.2.0/bin/node",
            "home/.local/share/mise/installs/node/20.3.0/bin/node",
        ] {
            executable(root, file);
        }
        let host = Host { home: Some(root.join("home")), path: root.join("usr/bin").into_os_string() };
        assert_eq!(
            relative(root, candidates(Wanted::Node("20"), &host)),
            [
                "usr/bin/node",
                "home/.nvm/versions/node/v20.11.0/bin/node",
                "home/.nvm/versions/node/v20.9.0/bin/node",
                "home/.local/share/fnm/node-versions/v20.5.0/installation/bin/node",
                "home/.volta/tools/image/node/20.1.0/bin/node",
                "home/.asdf/installs/nodejs/20.2.0/bin/node",
                "home/.local/share/mise/installs/node/20.3.0/bin/node",
                "usr/bin/nodejs",
            ]
        );
    }

    #[test]
    fn without_a_home_only_path_is_searched() {
        let root = tempfile::tempdir().unwrap();
        executable(root.path(), "bin/python3");
        let host = Host { home: None, path: root.path().join("bin").into_os_string() };
        assert_eq!(candidates(Wanted::Python("3.12"), &host), [root.path().join("bin/python3")]);
        assert_eq!(numbers("3.12.10-linux"), [3, 12, 10]);
    }
}
