//! Runtime names (`python3.12`, `nodejs20.x`, `provided.al2023`) mapped onto what the host has:
//! the real interpreter binary (never a version manager's shim, which costs ~100 ms a start) and
//! the small runtime clients nimbus ships inside its binary.
//!
//! A runtime runs on an interpreter of exactly its version wherever the host has one (`PATH`,
//! or a version manager's install tree: see [`installs`]), else on the host's default one with a
//! warning. Each runtime name is resolved once, when it is first used.

mod installs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use installs::Host;
use installs::{candidates, Wanted};

const PYTHON_CLIENT: &str = include_str!("../runtimes/python/bootstrap.py");
const NODE_CLIENT: &str = include_str!("../runtimes/node/bootstrap.js");

/// Asks the interpreter for its real path (a venv's or a shim's `sys.executable` is a link to
/// a binary elsewhere, which a sandbox would not show), its version, the directories its `site`
/// adds to `sys.path` (site-packages and their .pth entries, which the client appends itself),
/// and the site directory that holds boto3, if any.
const PYTHON_PROBE: &str = "import sys,sysconfig,os,importlib.util as u;\
print(os.path.realpath(sys.executable));print('%d.%d'%sys.version_info[:2]);\
std={sysconfig.get_paths()[k] for k in ('stdlib','platstdlib')};\
print(os.pathsep.join(p for p in sys.path if p and os.path.isdir(p) and p not in std and not p.endswith('lib-dynload')));\
b=u.find_spec('boto3');print(os.path.dirname(os.path.dirname(b.origin)) if b and b.origin else '')";
const NODE_PROBE: &str = "console.log(process.execPath);console.log(process.versions.node);console.log('')";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Python,
    Node,
    Provided,
}

impl Family {
    pub fn of(runtime: &str) -> Option<Family> {
        if runtime.starts_with("python3") {
            Some(Family::Python)
        } else if runtime.starts_with("nodejs") {
            Some(Family::Node)
        } else if runtime.starts_with("provided") {
            Some(Family::Provided)
        } else {
            None
        }
    }
}

/// A host interpreter that serves a runtime name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    pub executable: PathBuf,
    pub version: String,
    /// Python's site-packages directories, joined with `:` (boto3 lives there, as on AWS).
    pub site_dirs: String,
    /// Python: the site directory boto3 is imported from when the interpreter has none of its
    /// own (borrowed from the host's `python3`, since AWS's Python runtimes all include boto3;
    /// boto3 and its dependencies are pure Python, so they work on any 3.x it supports).
    pub boto3_from: Option<PathBuf>,
}

/// How to start one environment's runtime.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<std::ffi::OsString>,
    pub env: Vec<(String, String)>,
    /// Host directories the program needs to see at their own paths (the interpreter's
    /// installation and site directories).
    pub host_paths: Vec<PathBuf>,
}

/// Where the code and the runtime clients appear to the started process: the host paths for a
/// plain process, `/var/task` and `/var/runtime` in a sandbox.
pub struct Places<'a> {
    pub code_dir: &'a Path,
    pub task_root: &'a Path,
    pub runtime_root: &'a Path,
}

/// Resolves each runtime name once and remembers the answer.
pub struct Runtimes {
    host: Host,
    resolved: Mutex<HashMap<String, Result<Interpreter, String>>>,
}

impl Runtimes {
    /// Writes the embedded runtime clients under `client_dir` (nimbus's own runtime directory).
    pub fn install(client_dir: &Path) -> std::io::Result<Runtimes> {
        for (dir, file, text) in
            [("python", "bootstrap.py", PYTHON_CLIENT), ("node", "bootstrap.js", NODE_CLIENT)]
        {
            let dir = client_dir.join(dir);
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(file);
            // Rewrite only when changed, so a running environment never reads a half-written file.
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
                let temporary = dir.join(format!(".{file}.tmp"));
                std::fs::write(&temporary, text)?;
                std::fs::rename(&temporary, &path)?;
            }
        }
        Ok(Runtimes { host: Host::current(), resolved: Mutex::new(HashMap::new()) })
    }

    /// The host interpreter for `runtime`, or why there is none. Blocking (runs the interpreter
    /// once per runtime name); call it off the async workers.
    pub fn interpreter(&self, runtime: &str) -> Result<Interpreter, String> {
        if let Some(known) = self.resolved.lock().unwrap_or_else(|p| p.into_inner()).get(runtime) {
            return known.clone();
        }
        let answer = resolve(runtime, &self.host);
        match &answer {
            Ok(found) if !runtime_matches(runtime, &found.version) => eprintln!(
                "nimbus: {runtime} is not installed; running it on {} {} ({})",
                family_label(runtime),
                found.version,
                found.executable.display()
            ),
            Err(why) => eprintln!("nimbus: {runtime} is unavailable: {why}"),
            Ok(_) => {}
        }
        if let Ok(Interpreter { executable, boto3_from: Some(site), .. }) = &answer {
            eprintln!(
                "nimbus: {runtime} runs on {}, which has no boto3; its functions import the one in {}",
                executable.display(),
                site.display()
            );
        }
        self.resolved.lock().unwrap_or_else(|p| p.into_inner()).insert(runtime.to_owned(), answer.clone());
        answer
    }

    /// The command that starts `runtime` for the code at `places`.
    pub fn launch(&self, runtime: &str, places: &Places) -> Result<Launch, String> {
        match Family::of(runtime) {
            Some(Family::Python) => {
                let python = self.interpreter(runtime)?;
                let mut host_paths: Vec<PathBuf> = python.site_dirs.split(':').map(PathBuf::from).collect();
                host_paths.extend(nimbus_sandbox::install_prefix(&python.executable));
                Ok(Launch {
                    program: python.executable,
                    // -S: skip `site` and its .pth files (~20 ms); the client appends the
                    // directories they would have added.
                    args: vec!["-S".into(), places.runtime_root.join("python/bootstrap.py").into()],
                    env: vec![("NIMBUS_PYTHON_PATH".into(), python.site_dirs)],
                    host_paths,
                })
            }
            Some(Family::Node) => {
                let node = self.interpreter(runtime)?;
                Ok(Launch {
                    host_paths: nimbus_sandbox::install_prefix(&node.executable).into_iter().collect(),
                    program: node.executable,
                    args: vec![places.runtime_root.join("node/bootstrap.js").into()],
                    env: vec![],
                })
            }
            Some(Family::Provided) => {
                let bootstrap = places.code_dir.join("bootstrap");
                if !bootstrap.is_file() {
                    return Err(format!(
                        "Couldn't find valid bootstrap(s): [{}]",
                        places.task_root.join("bootstrap").display()
                    ));
                }
                let inside = places.task_root.join("bootstrap");
                match crate::arch::emulator_for(&bootstrap)? {
                    Some(emulator) => Ok(Launch {
                        program: emulator,
                        args: vec![inside.into()],
                        env: vec![],
                        host_paths: vec![],
                    }),
                    None => Ok(Launch { program: inside, args: vec![], env: vec![], host_paths: vec![] }),
                }
            }
            None => Err(format!("nimbus has no way to run {runtime} on this host")),
        }
    }
}

fn family_label(runtime: &str) -> &'static str {
    match Family::of(runtime) {
        Some(Family::Python) => "python",
        Some(Family::Node) => "node",
        _ => "",
    }
}

/// `python3.12` matches 3.12; `nodejs20.x` matches 20.*.
fn runtime_matches(runtime: &str, version: &str) -> bool {
    match Family::of(runtime) {
        Some(Family::Python) => runtime.strip_prefix("python") == Some(version),
        Some(Family::Node) => {
            let wanted = runtime.trim_start_matches("nodejs").trim_end_matches(".x");
            version.split('.').next() == Some(wanted)
        }
        _ => true,
    }
}

fn resolve(runtime: &str, host: &Host) -> Result<Interpreter, String> {
    let (wanted, probe) = match Family::of(runtime) {
        Some(Family::Python) => (Wanted::Python(runtime.trim_start_matches("python")), PYTHON_PROBE),
        Some(Family::Node) => {
            (Wanted::Node(runtime.trim_start_matches("nodejs").trim_end_matches(".x")), NODE_PROBE)
        }
        Some(Family::Provided) => {
            return Ok(Interpreter {
                executable: PathBuf::new(),
                version: String::new(),
                site_dirs: String::new(),
                boto3_from: None,
            })
        }
        None => {
            return Err(format!(
                "nimbus runs functions on the host's interpreters and has none for {runtime}"
            ))
        }
    };
    let candidates = candidates(wanted, host);
    let mut probed = Vec::new();
    let mut chosen = None;
    for candidate in &candidates {
        let Some(found) = probe_interpreter(candidate, probe) else { continue };
        if runtime_matches(runtime, &found.0.version) {
            chosen = Some(found);
            break;
        }
        probed.push(found);
    }
    let (mut interpreter, boto3) = match chosen {
        Some(found) => found,
        None if probed.is_empty() => {
            return Err(format!("no {} interpreter found on PATH", family_label(runtime)));
        }
        None => probed.remove(0),
    };
    if matches!(wanted, Wanted::Python(_)) && boto3.is_none() {
        // The host's default python3 is where people install boto3; probe it if it was not.
        let default = host.which("python3").filter(|p| !probed.iter().any(|(i, _)| i.executable == *p));
        let donor = probed
            .into_iter()
            .chain(default.and_then(|p| probe_interpreter(&p, probe)))
            .find_map(|(_, boto3)| boto3);
        if let Some(site) = donor {
            interpreter.site_dirs = [interpreter.site_dirs.as_str(), &site.to_string_lossy()]
                .into_iter()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join(":");
            interpreter.boto3_from = Some(site);
        }
    }
    Ok(interpreter)
}

/// Runs `executable` with `probe`: the interpreter, and (Python) the site directory holding boto3.
fn probe_interpreter(executable: &Path, probe: &str) -> Option<(Interpreter, Option<PathBuf>)> {
    let is_node = executable.file_name().is_some_and(|name| name.to_string_lossy().starts_with("node"));
    let flag = if is_node { "-e" } else { "-c" };
    let output = std::process::Command::new(executable).args([flag, probe]).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let mut lines = text.lines();
    let executable = PathBuf::from(lines.next()?.trim());
    let version = lines.next()?.trim().to_owned();
    let site_dirs = lines.next().unwrap_or("").trim().to_owned();
    let boto3 = lines.next().map(str::trim).filter(|dir| !dir.is_empty()).map(PathBuf::from);
    executable
        .is_absolute()
        .then_some((Interpreter { executable, version, site_dirs, boto3_from: None }, boto3))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An "interpreter" at `relative` under `root` that answers any probe with `lines`.
    fn fake(root: &Path, relative: &str, lines: &[&str]) -> PathBuf {
        let path = installs::tests::executable(root, relative);
        let quoted: Vec<String> = lines.iter().map(|line| format!("'{line}'")).collect();
        std::fs::write(&path, format!("#!/bin/sh\nprintf '%s\\n' {}\n", quoted.join(" "))).unwrap();
        path
    }

    #[test]
    fn an_exact_version_from_a_version_manager_wins_and_borrows_boto3() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        // PATH has a python3 (3.11, with boto3) and a broken python3.12 shim.
        fake(root, "bin/python3", &["/usr/bin/python3.11", "3.11", "/site311", "/site311"]);
        std::fs::write(installs::tests::executable(root, "bin/python3.12"), "#!/bin/sh\nexit 127\n").unwrap();
        fake(
            root,
            "home/.pyenv/versions/3.12.1/bin/python3.12",
            &["/py/3.12.1/bin/python3.12", "3.12", "/s312", ""],
        );
        let host = Host { home: Some(root.join("home")), path: root.join("bin").into_os_string() };

        let python = resolve("python3.12", &host).unwrap();
        assert_eq!(python.executable, Path::new("/py/3.12.1/bin/python3.12"));
        assert_eq!((python.version.as_str(), python.site_dirs.as_str()), ("3.12", "/s312:/site311"));
        assert_eq!(python.boto3_from.as_deref(), Some(Path::new("/site311")));

        // A version nobody has falls back to python3, whose own boto3 needs no borrowing.
        let python = resolve("python3.13", &host).unwrap();
        assert_eq!((python.version.as_str(), python.site_dirs.as_str()), ("3.11", "/site311"));
        assert_eq!(python.boto3_from, None);
    }

    #[test]
    fn node_on_path_of_another_major_loses_to_nvm() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        fake(root, "bin/node", &["/usr/bin/node", "18.19.0", ""]);
        fake(root, "home/.nvm/versions/node/v20.11.1/bin/node", &["/nvm/v20.11.1/bin/node", "20.11.1", ""]);
        let host = Host { home: Some(root.join("home")), path: root.join("bin").into_os_string() };
        assert_eq!(resolve("nodejs20.x", &host).unwrap().executable, Path::new("/nvm/v20.11.1/bin/node"));
        assert_eq!(resolve("nodejs18.x", &host).unwrap().executable, Path::new("/usr/bin/node"));
        assert_eq!(resolve("nodejs22.x", &host).unwrap().version, "18.19.0", "falls back to PATH's node");
        let nothing = Host { home: None, path: root.join("none").into_os_string() };
        assert_eq!(resolve("nodejs20.x", &nothing).unwrap_err(), "no node interpreter found on PATH");
    }

    #[test]
    fn runtime_names_match_versions() {
        assert!(runtime_matches("python3.11", "3.11"));
        assert!(!runtime_matches("python3.14", "3.11"));
        assert!(runtime_matches("nodejs20.x", "20.19.1"));
        assert!(!runtime_matches("nodejs22.x", "20.19.1"));
    }

    #[test]
    fn a_missing_python_version_falls_back_to_the_hosts_real_python() {
        let dir = tempfile::tempdir().unwrap();
        let runtimes = Runtimes::install(dir.path()).unwrap();
        let Ok(python) = runtimes.interpreter("python3.99") else {
            eprintln!("skipped: no python3 on this host");
            return;
        };
        assert!(python.executable.is_absolute());
        // The real binary, not a shell-script shim.
        let head = std::fs::read(&python.executable).unwrap();
        assert_eq!(&head[..4], b"\x7fELF");
    }

    #[test]
    fn unknown_families_are_refused_and_provided_needs_a_bootstrap() {
        let dir = tempfile::tempdir().unwrap();
        let runtimes = Runtimes::install(dir.path()).unwrap();
        assert!(runtimes.interpreter("ruby3.3").is_err());
        let places =
            Places { code_dir: dir.path(), task_root: Path::new("/var/task"), runtime_root: dir.path() };
        let error = runtimes.launch("provided.al2023", &places).unwrap_err();
        assert_eq!(error, "Couldn't find valid bootstrap(s): [/var/task/bootstrap]");
    }
}
