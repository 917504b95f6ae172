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

/// Runs `spec` through `spare` (see [`Sandbox::spawn_in`]); (exit code, output, OOM-killed).
async fn run_in(
    sandbox: &Arc<Sandbox>,
    spare: &Arc<nimbus_sandbox::Spare>,
    spec: Spec,
) -> (i32, String, bool) {
    let mut started = sandbox.spawn_in(spare, spec).await.expect("spawn");
    let mut out = String::new();
    let (a, status) = tokio::join!(started.stdout.read_to_string(&mut out), started.child.wait());
    a.unwrap();
    let status = status.unwrap();
    let oom = started.child.oom_killed();
    started.child.release();
    (
        status.code().unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)),
        out,
        oom,
    )
}

async fn until_ready(spare: &nimbus_sandbox::Spare) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !spare.is_ready() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(spare.is_ready(), "a spare sandbox is made behind each start");
}

#[tokio::test]
async fn a_spare_sandbox_serves_one_process_with_its_own_mounts_user_limits_and_fresh_tmp() {
    let dir = tempfile::tempdir().unwrap();
    let Some(sandbox) = sandbox(dir.path()) else { return };
    let spare = Arc::new(nimbus_sandbox::Spare::default());
    let parent = dir.path().join("instance-disk");
    let data = |name: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("file"), format!("{name}\n")).unwrap();
        // Writable by the job's user, as a Batch job's checkpoint directory is.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        path
    };
    let job = |script: &str, source: &std::path::Path, memory_mb: u64| Spec {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), format!("exec 2>&1; {script}").into()],
        env: vec![("PATH".into(), "/usr/bin:/bin".into()), ("MARK".into(), source.display().to_string())],
        cwd: "/mnt/data".into(),
        filesystem: Filesystem {
            tmp_under: Some(parent.clone()),
            mounts: vec![Mount { source: source.into(), target: "/mnt/data".into(), writable: true }],
            ..Filesystem::default()
        },
        limits: Limits { memory_mb, pids: 64, cpu_millis: 0 },
        id: uuid_like(),
        user: Some((1234, 1234)),
        rlimits: vec![(libc::RLIMIT_NOFILE as i32, 77, 77)],
        ..Spec::default()
    };
    // The first start finds no spare (it makes one behind it).
    let (code, out, _) = run_in(&sandbox, &spare, job("true", &data("first"), 128)).await;
    assert_eq!((code, out.as_str()), (0, ""));
    until_ready(&spare).await;
    let a = data("a");
    let script =
        "echo secret > /tmp/left-by-a; echo $MARK; id -u; ulimit -n; pwd; cat file; echo new > made-by-a";
    let (code, out, _) = run_in(&sandbox, &spare, job(script, &a, 128)).await;
    assert_eq!(code, 0, "{out}");
    let expected = format!("{}\n1234\n77\n/mnt/data\na\n", a.display());
    assert_eq!(out, expected, "the job's own environment, user, rlimits, cwd and mount");
    assert_eq!(std::fs::read_to_string(a.join("made-by-a")).unwrap(), "new\n", "its mount is writable");
    until_ready(&spare).await;
    let (code, out, _) =
        run_in(&sandbox, &spare, job("ls -A /tmp | wc -l; ls /mnt/data", &data("b"), 128)).await;
    assert_eq!((code, out.as_str()), (0, "0\nfile\n"), "the next one sees nothing the previous left: {out}");
    // The memory limit is the job's, not the one the spare was made with.
    until_ready(&spare).await;
    let (code, out, oom) =
        run_in(&sandbox, &spare, job("head -c 200m /dev/zero | tail", &data("c"), 32)).await;
    assert!(oom && code == 137, "{code} {oom} {out}");
    // A program that cannot start is the spawn's error, as without a spare.
    until_ready(&spare).await;
    let failing = Spec { program: "/no/such/program".into(), ..job("", &data("d"), 128) };
    let error = sandbox.spawn_in(&spare, failing).await.err().expect("a missing program fails").to_string();
    assert!(error.contains("sandbox setup failed while exec"), "{error}");
    // An unused spare is ended with its owner, and its /tmp directory removed.
    until_ready(&spare).await;
    drop(spare);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_dir(&parent).unwrap().count() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(std::fs::read_dir(&parent).unwrap().count(), 0, "every /tmp directory is gone");
    sandbox.close(std::time::Duration::from_secs(2)).await;
}
