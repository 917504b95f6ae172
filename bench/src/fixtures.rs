//! Code packages for the echo functions, and the interpreters they run on.

use anyhow::{bail, Context, Result};
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Builds a zip archive in memory from `(name, unix mode, bytes)`.
pub fn zip(files: &[(&str, u32, &[u8])]) -> Result<Vec<u8>> {
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, mode, bytes) in files {
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(*mode);
        w.start_file(*name, opts)?;
        w.write_all(bytes)?;
    }
    Ok(w.finish()?.into_inner())
}

pub fn python_echo_zip() -> Result<Vec<u8>> {
    zip(&[("lambda_function.py", 0o644, b"def handler(e, c):\n    return e\n")])
}

pub fn node_echo_zip() -> Result<Vec<u8>> {
    zip(&[("index.js", 0o644, b"exports.handler = async (e) => e;\n")])
}

pub fn provided_echo_zip(bootstrap: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(bootstrap).with_context(|| format!("read {}", bootstrap.display()))?;
    zip(&[("bootstrap", 0o755, &bytes)])
}

/// Where the Rust `lambda_runtime` echo fixture lives: the e2e tests' copy if present,
/// else the bench's own.
pub fn rust_echo_manifest(root: &Path) -> Option<PathBuf> {
    [root.join("tests/fixtures/rust-echo/Cargo.toml"), root.join("bench/fixtures/rust-echo/Cargo.toml")]
        .into_iter()
        .find(|p| p.exists())
}

/// Builds the fixture (`CARGO_TARGET_DIR=target/fixtures`, release) and returns its binary.
pub fn build_rust_echo(root: &Path, manifest: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "nimbus-bench: building {} (release) …",
        manifest.strip_prefix(root).unwrap_or(manifest).display()
    );
    let out = Command::new(cargo)
        .args(["build", "--release", "--message-format=json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(manifest)
        .env("CARGO_TARGET_DIR", root.join("target/fixtures"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("run cargo build for the rust echo fixture")?;
    if !out.status.success() {
        bail!("building {} failed", manifest.display());
    }
    let mut exe = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact" {
            if let Some(p) = v["executable"].as_str() {
                exe = Some(PathBuf::from(p));
            }
        }
    }
    exe.context("cargo built no executable for the rust echo fixture")
}

/// The real interpreter binary behind a command (resolving pyenv-style shims), as the
/// interpreter itself reports it.
pub fn real_python() -> Result<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import sys;print(sys.executable)"])
        .output()
        .context("run python3")?;
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || p.is_empty() {
        bail!("python3 did not report sys.executable");
    }
    Ok(PathBuf::from(p))
}

pub fn real_node() -> Result<PathBuf> {
    let out =
        Command::new("node").args(["-e", "console.log(process.execPath)"]).output().context("run node")?;
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || p.is_empty() {
        bail!("node did not report process.execPath");
    }
    Ok(PathBuf::from(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn zips_carry_names_and_modes() {
        let z = zip(&[("bootstrap", 0o755, b"#!/bin/sh\n"), ("a.py", 0o644, b"x")]).unwrap();
        let mut a = zip::ZipArchive::new(Cursor::new(z)).unwrap();
        assert_eq!(a.len(), 2);
        let mut f = a.by_name("bootstrap").unwrap();
        assert_eq!(f.unix_mode().unwrap() & 0o777, 0o755);
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "#!/bin/sh\n");
    }

    #[test]
    fn echo_zips_build() {
        assert!(!python_echo_zip().unwrap().is_empty());
        assert!(!node_echo_zip().unwrap().is_empty());
    }
}
