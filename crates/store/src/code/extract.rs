//! Extraction of a planned zip into a fresh scratch directory.
//!
//! Regular files and directories are written first, while the tree holds no symlink at all, and
//! symlinks are created last. Every directory on the way to an entry is one this extraction made
//! with `create_dir`, which never follows a symlink, so no write can leave the scratch directory
//! even if an earlier link points somewhere unexpected.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use zip::ZipArchive;

use super::entry::{check_link_target, Entry, Kind, MAX_LINK_TARGET};
use super::{invalid_zip, CodeError};

/// Extracts `entries` of `archive` into the existing, empty directory `dest`, stopping with
/// [`CodeError::TooLarge`] as soon as the decompressed bytes exceed `limit`. On error `dest` is
/// left partly filled: the caller owns it and deletes it.
pub(super) fn extract<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    entries: &[Entry],
    dest: &Path,
    limit: u64,
) -> Result<(), CodeError> {
    let mut out = Extractor { dest, dirs: BTreeMap::new(), used: 0, limit, buf: vec![0; 64 * 1024] };
    for entry in entries {
        match entry.kind {
            Kind::Dir => {
                out.ensure_dir(&entry.path)?;
                out.dirs.insert(entry.path.clone(), entry.mode);
            }
            Kind::File => out.write_file(archive, entry)?,
            Kind::Symlink => {}
        }
    }
    for entry in entries.iter().filter(|e| e.kind == Kind::Symlink) {
        out.write_symlink(archive, entry)?;
    }
    // Set explicitly rather than at creation so the process umask cannot change them.
    for (dir, mode) in &out.dirs {
        fs::set_permissions(dest.join(dir), Permissions::from_mode(*mode))?;
    }
    fs::set_permissions(dest, Permissions::from_mode(0o755))?;
    Ok(())
}

struct Extractor<'a> {
    dest: &'a Path,
    /// Every directory this extraction created (all real directories), with the mode to give it.
    dirs: BTreeMap<PathBuf, u32>,
    /// Decompressed bytes so far, counted as they stream (declared sizes can lie).
    used: u64,
    limit: u64,
    buf: Vec<u8>,
}

impl Extractor<'_> {
    /// Creates `rel` and its missing ancestors as real directories.
    fn ensure_dir(&mut self, rel: &Path) -> Result<(), CodeError> {
        // Shallowest first, iteratively: a hostile name can be thousands of levels deep.
        let mut missing: Vec<&Path> = rel
            .ancestors()
            .take_while(|p| !p.as_os_str().is_empty() && !self.dirs.contains_key(*p))
            .collect();
        while let Some(dir) = missing.pop() {
            match fs::create_dir(self.dest.join(dir)) {
                Ok(()) => {}
                // Only files and symlinks can be there (our directories are all in `dirs`):
                // descending through either would be wrong, through a symlink dangerous.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(CodeError::UnsafePath(format!(
                        "entry path {dir:?} is both a directory and a file or symlink"
                    )));
                }
                Err(e) => return Err(e.into()),
            }
            self.dirs.insert(dir.to_path_buf(), 0o755);
        }
        Ok(())
    }

    fn write_file<R: Read + Seek>(
        &mut self,
        archive: &mut ZipArchive<R>,
        entry: &Entry,
    ) -> Result<(), CodeError> {
        self.ensure_parent(entry)?;
        // `create_new` never follows or replaces anything already at the path.
        let file = match OpenOptions::new().write(true).create_new(true).open(self.dest.join(&entry.path)) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(duplicate(entry)),
            file => file?,
        };
        let mut writer = BufWriter::with_capacity(64 * 1024, file);
        let mut reader = archive.by_index(entry.index).map_err(invalid_zip)?;
        self.copy(&mut reader, &mut writer, entry)?;
        let file: File = writer.into_inner().map_err(|e| e.into_error())?;
        file.set_permissions(Permissions::from_mode(entry.mode))?;
        Ok(())
    }

    fn write_symlink<R: Read + Seek>(
        &mut self,
        archive: &mut ZipArchive<R>,
        entry: &Entry,
    ) -> Result<(), CodeError> {
        let mut target = Vec::new();
        let reader = archive.by_index(entry.index).map_err(invalid_zip)?;
        // Bounded read: the plan capped the declared size, `take` caps a lying one.
        self.copy(&mut reader.take(MAX_LINK_TARGET + 1), &mut target, entry)?;
        check_link_target(&entry.path, &target)?;
        // The link's directory must be real for the `..` count in the check above to hold.
        self.ensure_parent(entry)?;
        match std::os::unix::fs::symlink(OsStr::from_bytes(&target), self.dest.join(&entry.path)) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(duplicate(entry)),
            result => Ok(result?),
        }
    }

    fn ensure_parent(&mut self, entry: &Entry) -> Result<(), CodeError> {
        if self.dirs.contains_key(&entry.path) {
            return Err(duplicate(entry));
        }
        match entry.path.parent() {
            Some(parent) => self.ensure_dir(parent),
            None => Ok(()),
        }
    }

    /// Streams one entry into `out`, counting every decompressed byte against the limit.
    fn copy(&mut self, reader: &mut impl Read, out: &mut impl Write, entry: &Entry) -> Result<(), CodeError> {
        let mut written = 0u64;
        loop {
            let n = match reader.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Corrupt deflate data and CRC mismatches surface here.
                Err(e) => return Err(CodeError::InvalidZip(format!("{:?}: {e}", entry.path))),
            };
            written += n as u64;
            self.used += n as u64;
            if self.used > self.limit {
                return Err(CodeError::TooLarge);
            }
            out.write_all(&self.buf[..n])?;
        }
        // The declared sizes were checked against the limit and become the package's
        // unzipped size, so they must be the truth.
        if written != entry.declared {
            let declared = entry.declared;
            return Err(CodeError::InvalidZip(format!(
                "{:?}: declared {declared} bytes, holds {written}",
                entry.path
            )));
        }
        Ok(())
    }
}

fn duplicate(entry: &Entry) -> CodeError {
    CodeError::InvalidZip(format!("{:?} appears more than once", entry.path))
}
