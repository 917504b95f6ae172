//! Layers applied onto a root directory as the OCI image spec says ("Applying Changesets"):
//! entries in archive order, `.wh.<name>` deleting `<name>` of the layers below, `.wh..wh..opq`
//! emptying its directory of what the layers below put there. Nothing in a layer can write
//! outside the root: paths are resolved one component at a time with symlinks followed inside
//! the root (as the kernel would after `pivot_root`), and hostile entries are refused with the
//! reason — absolute paths, `..`, device nodes, symlinks and hard links leaving the root, and
//! archives that unpack to more than the limits (decompression bombs).

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
/// Symlinks followed while resolving one path (Linux's own limit).
const MAX_LINKS: u32 = 40;

/// How much an image may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// All files of all layers of one image together (Lambda's image limit is 10 GB).
    pub max_total_bytes: u64,
    pub max_file_bytes: u64,
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_total_bytes: 10 << 30, max_file_bytes: 5 << 30, max_entries: 1_000_000 }
    }
}

/// What the layers of one image have used of the limits so far.
#[derive(Debug, Default)]
pub struct Budget {
    pub bytes: u64,
    pub entries: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The layer is refused; the text says why.
    #[error("{0}")]
    Hostile(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

fn hostile(message: impl Into<String>) -> UnpackError {
    UnpackError::Hostile(message.into())
}

/// Applies one layer (a tar: plain, gzip- or zstd-compressed) onto `root`.
pub fn apply(root: &Path, layer: impl Read, limits: &Limits, budget: &mut Budget) -> Result<(), UnpackError> {
    let mut reader = BufReader::new(layer);
    let head = reader.fill_buf()?;
    let decoded: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(crate::zstd::Frames::new(reader))
    } else {
        Box::new(reader)
    };
    let mut archive = tar::Archive::new(decoded);
    let mut this_layer: HashSet<PathBuf> = HashSet::new();
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    let entries = archive.entries().map_err(|e| hostile(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| hostile(format!("not a tar archive: {e}")))?;
        budget.entries += 1;
        if budget.entries > limits.max_entries {
            return Err(hostile(format!("the image has more than {} entries", limits.max_entries)));
        }
        let raw =
            entry.path().map_err(|e| hostile(format!("an entry's path is unreadable: {e}")))?.into_owned();
        let Some(logical) = clean(&raw)? else { continue };
        let name = logical.file_name().map(OsString::from).unwrap_or_default();
        let parent_logical = logical.parent().unwrap_or(Path::new("")).to_path_buf();
        let parent = resolve(root, &parent_logical)?;
        let name_str = name.to_string_lossy();
        if name_str == OPAQUE {
            empty_below(&parent, &parent_logical, &this_layer)?;
            this_layer.insert(logical);
            continue;
        }
        if let Some(hidden) = name_str.strip_prefix(WHITEOUT) {
            if !this_layer.contains(&parent_logical.join(hidden)) {
                remove_any(&parent.join(hidden))?;
            }
            continue;
        }
        fs::create_dir_all(&parent).map_err(|e| hostile(format!("{}: {e}", parent_logical.display())))?;
        let path = parent.join(&name);
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
        use tar::EntryType as T;
        match kind {
            T::Directory => {
                match fs::symlink_metadata(&path) {
                    Ok(meta) if meta.is_dir() => {}
                    Ok(_) => {
                        remove_any(&path)?;
                        fs::create_dir(&path)?;
                    }
                    Err(_) => fs::create_dir(&path)?,
                }
                dir_modes.push((path, mode));
            }
            T::Regular | T::Continuous => {
                remove_any(&path)?;
                let mut file = fs::File::create(&path)?;
                copy_limited(&mut entry, &mut file, &logical, limits, budget)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
            }
            T::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| hostile(format!("{}: unreadable link: {e}", logical.display())))?
                    .ok_or_else(|| hostile(format!("{}: a symlink without a target", logical.display())))?
                    .into_owned();
                if target.is_relative() && climbs_out(&parent_logical, &target) {
                    return Err(hostile(format!(
                        "{} is a symlink to {} which leaves the image's root",
                        logical.display(),
                        target.display()
                    )));
                }
                remove_any(&path)?;
                std::os::unix::fs::symlink(&target, &path)?;
            }
            T::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| hostile(format!("{}: unreadable link: {e}", logical.display())))?
                    .ok_or_else(|| hostile(format!("{}: a hard link without a target", logical.display())))?
                    .into_owned();
                let escapes = || {
                    hostile(format!(
                        "{} is a hard link to {} which leaves the image's root",
                        logical.display(),
                        target.display()
                    ))
                };
                let inside = clean(&target).map_err(|_| escapes())?.ok_or_else(escapes)?;
                let source = resolve(root, &inside)?;
                match fs::symlink_metadata(&source) {
                    Ok(meta) if !meta.is_dir() => {}
                    _ => {
                        return Err(hostile(format!(
                            "{} is a hard link to {}, which is no file of the image",
                            logical.display(),
                            target.display()
                        )))
                    }
                }
                if source != path {
                    remove_any(&path)?;
                    fs::hard_link(&source, &path)?;
                }
            }
            T::Fifo => {
                remove_any(&path)?;
                entry.unpack(&path)?;
            }
            T::Char | T::Block => {
                return Err(hostile(format!(
                    "{} is a device node: images may not carry devices",
                    logical.display()
                )))
            }
            other => {
                return Err(hostile(format!("{}: unsupported tar entry type {other:?}", logical.display())))
            }
        }
        this_layer.insert(logical);
    }
    // Directory modes last: a read-only directory must still take what the layer puts in it.
    for (path, mode) in dir_modes.into_iter().rev() {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o700))?;
    }
    Ok(())
}

/// The entry's path relative to the root (`./a/b` → `a/b`); `None` for the root itself.
fn clean(raw: &Path) -> Result<Option<PathBuf>, UnpackError> {
    let mut out = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(hostile(format!(
                    "{} is an absolute path: layers hold relative paths",
                    raw.display()
                )))
            }
            Component::ParentDir => {
                return Err(hostile(format!(
                    "{} contains `..`: layers may not climb out of the root",
                    raw.display()
                )))
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Whether a relative symlink target, read from directory `from`, climbs above the root.
fn climbs_out(from: &Path, target: &Path) -> bool {
    let mut depth = from.components().count() as i64;
    for component in target.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

/// `logical` (relative, clean) as a real path under `root`, following the symlinks met on the
/// way as the kernel would with `root` as `/`: nothing resolves outside the root.
pub fn resolve(root: &Path, logical: &Path) -> Result<PathBuf, UnpackError> {
    let mut stack: Vec<OsString> = Vec::new();
    let mut pending: VecDeque<OsString> = logical.components().filter_map(|c| normal(c)).collect();
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            stack.pop();
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&stack);
        candidate.push(&part);
        match fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(hostile(format!("{}: too many levels of symbolic links", logical.display())));
                }
                let target = fs::read_link(&candidate)?;
                if target.is_absolute() {
                    stack.clear();
                }
                for (i, c) in target.components().filter_map(|c| normal(c)).enumerate() {
                    pending.insert(i, c);
                }
            }
            _ => stack.push(part),
        }
    }
    let mut path = root.to_path_buf();
    path.extend(&stack);
    Ok(path)
}

fn normal(component: Component<'_>) -> Option<OsString> {
    match component {
        Component::Normal(part) => Some(part.to_os_string()),
        Component::ParentDir => Some("..".into()),
        _ => None,
    }
}

/// An opaque directory: what the layers below left in it goes; what this layer put stays.
fn empty_below(dir: &Path, logical: &Path, this_layer: &HashSet<PathBuf>) -> Result<(), UnpackError> {
    let Ok(children) = fs::read_dir(dir) else { return Ok(()) };
    for child in children {
        let child = child?;
        if !this_layer.contains(&logical.join(child.file_name())) {
            remove_any(&child.path())?;
        }
    }
    Ok(())
}

/// Removes whatever is at `path` (a directory with its contents); nothing there is fine.
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
        Ok(meta) if meta.is_dir() => {
            make_writable(path);
            fs::remove_dir_all(path)
        }
        Ok(_) => fs::remove_file(path),
    }
}

/// Directories a layer made read-only must become writable again to be emptied (when nimbus
/// does not run as root).
pub fn make_writable(dir: &Path) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
    if let Ok(children) = fs::read_dir(dir) {
        for child in children.flatten() {
            if child.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&child.path());
            }
        }
    }
}

/// Copies one file's bytes, counting them against the per-file and whole-image limits.
fn copy_limited(
    from: &mut impl Read,
    to: &mut impl Write,
    logical: &Path,
    limits: &Limits,
    budget: &mut Budget,
) -> Result<u64, UnpackError> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut copied = 0u64;
    loop {
        let n = from.read(&mut buffer)?;
        if n == 0 {
            return Ok(copied);
        }
        copied += n as u64;
        budget.bytes += n as u64;
        if copied > limits.max_file_bytes {
            return Err(hostile(format!(
                "{} unpacks to more than {} bytes, the limit for one file",
                logical.display(),
                limits.max_file_bytes
            )));
        }
        if budget.bytes > limits.max_total_bytes {
            return Err(hostile(format!(
                "the image unpacks to more than {} bytes, the limit for one image",
                limits.max_total_bytes
            )));
        }
        to.write_all(&buffer[..n])?;
    }
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;
