//! Turning a zip's central directory into a checked extraction plan.
//!
//! Every entry name is validated here, before anything touches the disk, so a package with a
//! hostile name is refused without writing a byte. Symlink targets live in the entry data, so
//! they are checked during extraction with [`check_link_target`].

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use zip::{CompressionMethod, ZipArchive};

use super::CodeError;

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

/// Longest symlink target accepted (Linux `PATH_MAX`); also bounds the memory a link entry uses.
pub(super) const MAX_LINK_TARGET: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    Dir,
    Symlink,
}

/// One entry to extract.
#[derive(Debug)]
pub(super) struct Entry {
    /// Index in the archive.
    pub index: usize,
    /// Relative path made only of normal components (no `.`, `..`, root or empty parts).
    pub path: PathBuf,
    pub kind: Kind,
    /// Permission bits to apply (files and directories; symlinks have none on Linux).
    pub mode: u32,
    /// Declared uncompressed size; 0 for directories, whose data (if any) is never read.
    pub declared: u64,
}

/// Checks every entry of `archive` and returns what to extract, in archive order.
pub(super) fn plan<R: Read + Seek>(archive: &mut ZipArchive<R>) -> Result<Vec<Entry>, CodeError> {
    let mut entries = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        // Raw access reads only the headers: nothing is decompressed while planning.
        let file = archive.by_index_raw(index).map_err(super::invalid_zip)?;
        let name = file.name();
        let unsafe_name = |why: &str| CodeError::UnsafePath(format!("entry {name:?} {why}"));
        // A NUL would truncate the name at the OS boundary, and a backslash is a separator to
        // Windows tools: both let a name mean something other than what we checked.
        if [file.name_raw(), name.as_bytes()].iter().any(|n| n.contains(&0) || n.contains(&b'\\')) {
            return Err(unsafe_name("contains a NUL byte or a backslash"));
        }
        // The zip crate's own check, then ours, which also yields the normalized path.
        if file.enclosed_name().is_none() {
            return Err(unsafe_name("is absolute or escapes the package"));
        }
        let path = normalize(name).ok_or_else(|| unsafe_name("is absolute or escapes the package"))?;
        if file.encrypted() {
            return Err(CodeError::InvalidZip(format!("entry {name:?} is encrypted")));
        }
        if !matches!(file.compression(), CompressionMethod::Stored | CompressionMethod::Deflated) {
            let method = file.compression();
            return Err(CodeError::InvalidZip(format!("entry {name:?} uses {method:?}")));
        }

        let unix_mode = file.unix_mode();
        let kind = match unix_mode.map(|m| m & S_IFMT) {
            _ if name.ends_with('/') => Kind::Dir,
            Some(S_IFDIR) => Kind::Dir,
            Some(S_IFLNK) => Kind::Symlink,
            // Devices, fifos and sockets become plain files holding their (normally empty) data.
            _ => Kind::File,
        };
        if path.as_os_str().is_empty() {
            // `./` names the package root itself, which always exists.
            if kind == Kind::Dir {
                continue;
            }
            return Err(unsafe_name("names the package root"));
        }
        // Only permission bits survive: never setuid, setgid or sticky. Directories keep owner
        // rwx so the store can always fill, re-extract and delete them.
        let mode = match (kind, unix_mode) {
            (Kind::Dir, Some(m)) => (m & 0o777) | 0o700,
            (Kind::Dir, None) => 0o755,
            (_, Some(m)) => m & 0o777,
            (_, None) => 0o644,
        };
        let declared = if kind == Kind::Dir { 0 } else { file.size() };
        if kind == Kind::Symlink && declared > MAX_LINK_TARGET {
            return Err(unsafe_name("is a symlink with an overlong target"));
        }
        entries.push(Entry { index, path, kind, mode, declared });
    }
    Ok(entries)
}

/// Lexically normalizes a zip entry name; `None` if it is absolute or climbs above the root.
fn normalize(name: &str) -> Option<PathBuf> {
    if name.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.iter().collect())
}

/// Refuses a symlink at `link` (a normalized path) whose `target` could resolve outside the
/// package.
///
/// The target may only climb (`..`) first, and at most as many levels as the link is deep; then
/// it may only descend. A `..` after a normal component is refused: that component may itself be
/// a symlink, and following `x/..` through a link does not return to where `x` started, so a
/// lexical check could be fooled (`x/l -> ..` then `m -> x/l/..` escapes). Extraction makes
/// sure every directory holding a link is a real directory, so leading `..`s climb exactly
/// the levels counted here.
pub(super) fn check_link_target(link: &Path, target: &[u8]) -> Result<(), CodeError> {
    let refuse = |why: &str| {
        let target = String::from_utf8_lossy(target);
        CodeError::UnsafePath(format!("symlink {link:?} -> {target:?} {why}"))
    };
    if target.is_empty() || target.contains(&0) || target.contains(&b'\\') {
        return Err(refuse("has an empty target, a NUL byte or a backslash"));
    }
    if target.starts_with(b"/") {
        return Err(refuse("is absolute"));
    }
    let mut depth = link.components().count().saturating_sub(1);
    let mut descended = false;
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." if descended => return Err(refuse("climbs back out of a path it entered")),
            b".." => depth = depth.checked_sub(1).ok_or_else(|| refuse("escapes the package"))?,
            _ => descended = true,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_keeps_names_inside() {
        assert_eq!(normalize("a/./b//c"), Some(PathBuf::from("a/b/c")));
        assert_eq!(normalize("a/../b"), Some(PathBuf::from("b")));
        assert_eq!(normalize("./"), Some(PathBuf::new()));
        assert_eq!(normalize("../evil"), None);
        assert_eq!(normalize("a/../../evil"), None);
        assert_eq!(normalize("/etc/passwd"), None);
    }

    #[test]
    fn link_targets() {
        let ok = |link: &str, target: &str| check_link_target(Path::new(link), target.as_bytes());
        assert!(ok("lib/current", "libfoo.so.1").is_ok());
        assert!(ok("lib/current", "../data/x").is_ok());
        assert!(ok("node_modules/.bin/tool", "../tool/cli.js").is_ok());
        assert!(ok("root", ".").is_ok());
        assert!(ok("link", "../outside").is_err());
        assert!(ok("a/link", "../../outside").is_err());
        assert!(ok("link", "/etc/passwd").is_err());
        assert!(ok("m", "x/l/..").is_err());
        assert!(ok("link", "a\\..\\..").is_err());
        assert!(ok("link", "").is_err());
    }
}
