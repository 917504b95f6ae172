//! What an attempt starts: the host's root for `nimbus/host`, else the job's container image
//! from nimbus's image store, with its config's `Entrypoint`/`Cmd`/`Env`/`WorkingDir` under the
//! job definition's overrides, as ECS applies them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::model::Job;
use crate::run::HOST_IMAGE;
use crate::{Batch, JobImage};

/// The host's `PATH`, and an image's when its config sets none (Docker's default).
pub(crate) const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The process of an attempt, before Batch's own variables and mounts join it.
pub(crate) struct Launch {
    pub program: String,
    pub args: Vec<String>,
    /// The image's variables (Batch's and the job definition's go over them).
    pub env: Vec<(String, String)>,
    pub image_root: Option<PathBuf>,
    pub cwd: Option<String>,
    /// The image config's `User` (the job definition's `user` goes over it).
    pub user: Option<String>,
    /// The image's root stays in the store while this lives.
    pub hold: Option<Box<dyn std::any::Any + Send + Sync>>,
}

/// `program` looked up in `path`, inside `root` (the host's `/` for `nimbus/host`); the path the
/// process sees.
fn find_program(root: &Path, program: &str, path: &str) -> Option<String> {
    let inside = |candidate: &Path| root.join(candidate.strip_prefix("/").unwrap_or(candidate));
    if program.contains('/') {
        return inside(Path::new(program)).symlink_metadata().is_ok().then(|| program.to_owned());
    }
    path.split(':')
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| {
            let at = inside(candidate);
            // An image's links (busybox's) may point to paths that only resolve inside its root.
            if root == Path::new("/") {
                at.is_file()
            } else {
                at.symlink_metadata().is_ok()
            }
        })
        .map(|found| found.to_string_lossy().into_owned())
}

fn not_found(program: &str) -> String {
    format!(
        "CannotStartContainerError: Error response from daemon: failed to create task: exec: \"{program}\": executable file not found in $PATH"
    )
}

/// The argument vector ECS runs: the image's `Entrypoint`, then the job's `command` when it
/// gives one, else the image's `Cmd`.
pub(crate) fn argv(image: &JobImage, command: &[String]) -> Vec<String> {
    let tail = if command.is_empty() { &image.cmd } else { command };
    image.entrypoint.iter().chain(tail).cloned().collect()
}

/// `NAME=value` pairs of an image config (a name without `=` has an empty value).
pub(crate) fn variables(env: &[String]) -> Vec<(String, String)> {
    env.iter()
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => (pair.clone(), String::new()),
        })
        .collect()
}

impl Batch {
    /// The attempt's program in its image, or why it cannot start (`CannotPullContainerError`,
    /// `CannotStartContainerError`), as the attempt's reason.
    pub(crate) async fn launch_of(
        self: &Arc<Self>,
        job: &Job,
        command: Vec<String>,
    ) -> Result<Launch, String> {
        let image = job.container["image"].as_str().unwrap_or_default().to_owned();
        if image == HOST_IMAGE {
            let Some(first) = command.first() else {
                return Err(format!(
                    "CannotStartContainerError: the image {HOST_IMAGE} has no default command; give one"
                ));
            };
            let program = find_program(Path::new("/"), first, PATH).ok_or_else(|| not_found(first))?;
            return Ok(Launch {
                program,
                args: command[1..].to_vec(),
                env: Vec::new(),
                image_root: None,
                cwd: None,
                user: None,
                hold: None,
            });
        }
        let Some(images) = self.options.images.clone() else {
            return Err(format!(
                "CannotPullContainerError: Error response from daemon: pull access denied for {image}, repository does not exist or may require 'docker login'"
            ));
        };
        let arch = self.arch_of(job.n.instance.as_deref().unwrap_or_default());
        let resolved = tokio::task::spawn_blocking(move || images.resolve(&image, &arch))
            .await
            .map_err(|e| format!("CannotPullContainerError: {e}"))?;
        let resolved = resolved.map_err(|why| {
            if why.starts_with("CannotPullContainerError") {
                why
            } else {
                format!("CannotPullContainerError: {why}")
            }
        })?;
        let argv = argv(&resolved, &command);
        let Some(first) = argv.first() else {
            return Err("CannotStartContainerError: Error response from daemon: No command specified".into());
        };
        let env = variables(&resolved.env);
        let path = env.iter().find(|(name, _)| name == "PATH").map_or(PATH, |(_, value)| value.as_str());
        let program = find_program(&resolved.root, first, path).ok_or_else(|| not_found(first))?;
        Ok(Launch {
            program,
            args: argv[1..].to_vec(),
            env,
            image_root: Some(resolved.root.clone()),
            cwd: resolved.workdir.clone().filter(|w| !w.is_empty()),
            user: resolved.user.clone().filter(|u| !u.is_empty()),
            hold: Some(Box::new(resolved)),
        })
    }

    /// The architecture of an instance's type (`x86_64`, `arm64`).
    fn arch_of(&self, instance: &str) -> String {
        let kind = self
            .hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(instance)
            .map(|h| h.doc.instance_type.clone());
        kind.and_then(|kind| self.catalog().iter().find(|t| t.name == kind).map(|t| t.arch.clone()))
            .unwrap_or_else(|| "x86_64".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(entrypoint: &[&str], cmd: &[&str]) -> JobImage {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        JobImage {
            root: "/img".into(),
            entrypoint: strings(entrypoint),
            cmd: strings(cmd),
            env: vec!["PATH=/bin".into(), "EMPTY".into(), "EQ=a=b".into()],
            workdir: None,
            user: None,
            hold: Box::new(()),
        }
    }

    #[test]
    fn the_jobs_command_replaces_cmd_and_follows_the_entrypoint() {
        let both = image(&["/bin/sh", "-c"], &["echo from-image"]);
        assert_eq!(argv(&both, &[]), ["/bin/sh", "-c", "echo from-image"]);
        assert_eq!(argv(&both, &["echo mine".into()]), ["/bin/sh", "-c", "echo mine"]);
        let cmd_only = image(&[], &["sh"]);
        assert_eq!(argv(&cmd_only, &["ls".into(), "/".into()]), ["ls", "/"]);
        assert!(argv(&image(&[], &[]), &[]).is_empty());
    }

    #[test]
    fn image_variables_split_at_the_first_equals() {
        let env = variables(&image(&[], &[]).env);
        assert_eq!(
            env,
            [("PATH".into(), "/bin".into()), ("EMPTY".into(), String::new()), ("EQ".into(), "a=b".into())]
        );
    }

    #[test]
    fn programs_are_found_in_the_images_path_inside_its_root() {
        let dir = std::env::temp_dir().join(format!("nimbus-batch-img-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/busybox"), b"").unwrap();
        let _ = std::os::unix::fs::symlink("/bin/busybox", dir.join("bin/sh"));
        assert_eq!(find_program(&dir, "sh", "/usr/bin:/bin").as_deref(), Some("/bin/sh"));
        assert_eq!(find_program(&dir, "/bin/busybox", "").as_deref(), Some("/bin/busybox"));
        assert_eq!(find_program(&dir, "python3", "/usr/bin:/bin"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
