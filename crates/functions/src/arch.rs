//! Architectures: a `bootstrap` built for another CPU (an arm64 Graviton binary on an x86_64
//! host, say) runs through qemu-user when the host has it.

use std::io::Read;
use std::path::{Path, PathBuf};

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

/// The ELF machine of `path`, if it is an ELF file.
fn elf_machine(path: &Path) -> Option<u16> {
    let mut header = [0u8; 20];
    std::fs::File::open(path).ok()?.read_exact(&mut header).ok()?;
    if &header[..4] != b"\x7fELF" {
        return None;
    }
    // e_machine is at offset 18, in the file's byte order (byte 5: 1 = little endian).
    let bytes = [header[18], header[19]];
    Some(if header[5] == 2 { u16::from_be_bytes(bytes) } else { u16::from_le_bytes(bytes) })
}

fn host_machine() -> u16 {
    if cfg!(target_arch = "aarch64") {
        EM_AARCH64
    } else {
        EM_X86_64
    }
}

/// `None` when `bootstrap` runs natively (or is a script); the emulator when it is a foreign
/// ELF and qemu-user is installed; an error naming what is missing otherwise.
pub fn emulator_for(bootstrap: &Path) -> Result<Option<PathBuf>, String> {
    let Some(machine) = elf_machine(bootstrap) else { return Ok(None) };
    if machine == host_machine() {
        return Ok(None);
    }
    let (arch, qemu) = match machine {
        EM_AARCH64 => ("arm64 (aarch64)", ["qemu-aarch64-static", "qemu-aarch64"]),
        EM_X86_64 => ("x86_64", ["qemu-x86_64-static", "qemu-x86_64"]),
        other => {
            return Err(format!("fork/exec /var/task/bootstrap: exec format error (ELF machine {other})"))
        }
    };
    for name in qemu {
        for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
            let candidate = Path::new(dir).join(name);
            if candidate.is_file() {
                return Ok(Some(candidate));
            }
        }
    }
    Err(format!(
        "fork/exec /var/task/bootstrap: exec format error: the bootstrap is an {arch} binary and this host has no {} (install qemu-user-static)",
        qemu[0]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(machine: u16) -> Vec<u8> {
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(b"\x7fELF");
        header[5] = 1;
        header[18..20].copy_from_slice(&machine.to_le_bytes());
        header
    }

    #[test]
    fn native_binaries_and_scripts_run_directly() {
        let dir = tempfile::tempdir().unwrap();
        let native = dir.path().join("native");
        std::fs::write(&native, elf(host_machine())).unwrap();
        assert_eq!(emulator_for(&native), Ok(None));
        let script = dir.path().join("script");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert_eq!(emulator_for(&script), Ok(None));
    }

    #[test]
    fn foreign_binaries_need_qemu() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = dir.path().join("bootstrap");
        let other = if host_machine() == EM_X86_64 { EM_AARCH64 } else { EM_X86_64 };
        std::fs::write(&foreign, elf(other)).unwrap();
        match emulator_for(&foreign) {
            Ok(Some(qemu)) => assert!(qemu.to_string_lossy().contains("qemu")),
            Err(message) => {
                assert!(message.contains("exec format error") && message.contains("qemu"), "{message}")
            }
            Ok(None) => panic!("a foreign binary cannot run natively"),
        }
    }
}
