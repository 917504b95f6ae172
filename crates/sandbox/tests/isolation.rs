//! The sandbox for real: needs root (CI runs as root); elsewhere each test says why it skips.

use std::sync::Arc;

use nimbus_sandbox::{Filesystem, Isolation, Limits, Mount, Sandbox, Spec};
use tokio::io::AsyncReadExt;

fn sandbox(dir: &std::path::Path) -> Option<Arc<Sandbox>> {
    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the sandbox needs root for namespaces and cgroups");
        return None;
    }
    Some(Arc::new(Sandbox::new(dir, Some(Isolation::Namespaces)).expect("namespaces on a root host")))
}

/// Runs a shell script in the sandbox; returns (exit code, stdout + stderr).
async fn run(sandbox: &Arc<Sandbox>, script: &str, filesystem: Filesystem, limits: Limits) -> (i32, String) {
    let spec = Spec {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        cwd: "/".into(),
        filesystem,
        limits,
        id: uuid_like(),
        ..Spec::default()
    };
    let mut started = sandbox.spawn(spec).await.expect("spawn");
    let mut out = String::new();
    let mut err = String::new();
    let (a, b, status) = tokio::join!(
        started.stdout.read_to_string(&mut out),
        started.stderr.read_to_string(&mut err),
        started.child.wait()
    );
    a.unwrap();
    b.unwrap();
    started.child.release();
    (status.unwrap().code().unwrap_or(-1), out + &err)
}

fn uuid_like() -> String {
    format!("t{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

fn fs_with_task(task: &std::path::Path) -> Filesystem {
    Filesystem {
        mounts: vec![Mount { source: task.into(), target: "/var/task".into(), writable: false }],
        tmp_size_mb: 1,
        ..Filesystem::default()
    }
}

#[tokio::test]
async fn secrets_processes_and_code_are_out_of_reach() {
    let dir = tempfile::tempdir().unwrap();
    let Some(sandbox) = sandbox(dir.path()) else { return };
    assert_eq!(sandbox.label(), "namespaces+cgroups");
    let task = dir.path().join("task");
    std::fs::create_dir(&task).unwrap();
    std::fs::write(task.join("app.py"), "x").unwrap();
    let script = "cat /etc/shadow; echo shadow=$?; ls /proc | grep -c '^[0-9]'; id -u; \
                  touch /var/task/new; echo task=$?; touch /usr/new; echo usr=$?; \
                  echo hi > /tmp/ok && cat /tmp/ok; cat /var/task/app.py; echo; hostname";
    let (code, out) =
        run(&sandbox, script, fs_with_task(&task), Limits { memory_mb: 128, pids: 64, cpu_millis: 0 }).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Permission denied") && out.contains("shadow=1"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    // sh, ls, grep (and perhaps one more helper): only this environment's processes.
    let visible: usize = lines.iter().find_map(|l| l.parse().ok()).unwrap();
    assert!(visible <= 4, "{out}");
    assert!(lines.contains(&"993"), "{out}");
    assert!(out.contains("task=1") && out.contains("usr=1"), "{out}");
    assert!(lines.contains(&"hi") && lines.contains(&"x") && lines.contains(&"nimbus"), "{out}");
    sandbox.close(std::time::Duration::from_secs(2)).await;
}

#[tokio::test]
async fn tmp_is_sized_and_fresh_and_pids_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let Some(sandbox) = sandbox(dir.path()) else { return };
    let task = dir.path().join("task");
    std::fs::create_dir(&task).unwrap();
    let fill = "ls /tmp | wc -l; dd if=/dev/zero of=/tmp/big bs=1M count=4 2>&1; echo dd=$?";
    let (_, out) =
        run(&sandbox, fill, fs_with_task(&task), Limits { memory_mb: 128, pids: 64, cpu_millis: 0 }).await;
    assert!(out.contains("No space left on device"), "{out}");
    let (_, out) = run(
        &sandbox,
        "ls /tmp | wc -l",
        fs_with_task(&task),
        Limits { memory_mb: 128, pids: 64, cpu_millis: 0 },
    )
    .await;
    assert_eq!(out.trim(), "0", "the next environment's /tmp is empty: {out}");
    // The shell is PID 1 of its namespace: when it exits, the kernel kills the sleepers.
    let fork = "for i in $(seq 1 100); do sleep 5 & done";
    let (_, out) =
        run(&sandbox, fork, fs_with_task(&task), Limits { memory_mb: 128, pids: 16, cpu_millis: 0 }).await;
    assert!(out.contains("fork") || out.contains("Resource temporarily unavailable"), "{out}");
    sandbox.close(std::time::Duration::from_secs(2)).await;
    assert!(!std::fs::read_to_string("/proc/self/mountinfo").unwrap().contains(dir.path().to_str().unwrap()));
}

#[tokio::test]
async fn sh_is_bash_and_seccomp_denies_new_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let Some(sandbox) = sandbox(dir.path()) else { return };
    let task = dir.path().join("task");
    std::fs::create_dir(&task).unwrap();
    let script = "echo bash=${BASH_VERSION:-none}; grep '^Seccomp' /proc/self/status; \
                  unshare -U true; echo unshare=$?; sh -c 'echo forked=ok'";
    let (code, out) =
        run(&sandbox, script, fs_with_task(&task), Limits { memory_mb: 128, pids: 64, cpu_millis: 0 }).await;
    assert_eq!(code, 0, "{out}");
    let bash = std::path::Path::new("/bin/bash").exists();
    assert_eq!(!out.contains("bash=none"), bash, "{out}");
    assert!(out.contains("Seccomp:\t2") && out.contains("Seccomp_filters:\t2"), "{out}");
    assert!(out.contains("Operation not permitted") && out.contains("unshare=1"), "{out}");
    assert!(out.contains("forked=ok"), "{out}");
    sandbox.close(std::time::Duration::from_secs(2)).await;
}

#[tokio::test]
async fn tmp_under_is_a_fresh_directory_gone_at_release_and_setup_failures_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let Some(sandbox) = sandbox(dir.path()) else { return };
    let task = dir.path().join("task");
    std::fs::create_dir(&task).unwrap();
    let parent = dir.path().join("instance-disk");
    let on_disk = || Filesystem { tmp_under: Some(parent.clone()), ..fs_with_task(&task) };
    let limits = Limits { memory_mb: 128, pids: 64, cpu_millis: 0 };
    // Not the 1 MB tmpfs of `fs_with_task`: 4 MB fit on the instance's disk.
    let fill = "ls /tmp | wc -l; dd if=/dev/zero of=/tmp/big bs=1M count=4 2>/dev/null; echo dd=$?";
    // Several started side by side (their set-ups overlap), one of which cannot start.
    let failing = Spec {
        program: "/no/such/program".into(),
        cwd: "/".into(),
        filesystem: on_disk(),
        limits,
        id: uuid_like(),
        ..Spec::default()
    };
    let (a, b, failed) = tokio::join!(
        run(&sandbox, fill, on_disk(), limits),
        run(&sandbox, fill, on_disk(), limits),
        sandbox.spawn(failing)
    );
    for (code, out) in [a, b] {
        assert_eq!(code, 0, "{out}");
        assert_eq!(
            out.split_whitespace().collect::<Vec<_>>(),
            ["0", "dd=0"],
            "each /tmp starts empty: {out}"
        );
    }
    let error = failed.err().expect("a missing program fails the spawn").to_string();
    assert!(error.contains("sandbox setup failed while exec"), "{error}");
    // Released children's directories are deleted (in the background).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_dir(&parent).unwrap().count() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(std::fs::read_dir(&parent).unwrap().count(), 0, "every /tmp directory is gone");
    sandbox.close(std::time::Duration::from_secs(2)).await;
}
