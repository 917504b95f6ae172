//! Bytes too big for the database (code packages, object bytes, log segments, snapshots) live
//! as files under one root: the data directory, or with several nodes a directory every node
//! mounts (`--shared-dir`). Each service works in an area of its own (`<root>/<service>`).
//!
//! A file appears whole or not at all: it is written under the area's staging directory, which
//! is this node's own (`.staging/<node>`, so nodes never sweep each other's half-written files),
//! fsynced, renamed into place, and the directory fsynced, before anyone is told its name.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Blobs {
    root: PathBuf,
    node: String,
    shared: bool,
}

impl Blobs {
    /// `root` is the data directory (one node) or the shared directory (several).
    pub fn new(root: &Path, node: &str, shared: bool) -> Blobs {
        Blobs { root: root.to_path_buf(), node: node.to_owned(), shared }
    }

    /// The same storage for another region's or account's instance of a service: under
    /// `<root>/<dir>/` (see `Database::scoped`).
    pub fn scoped(&self, dir: &str) -> Blobs {
        Blobs { root: self.root.join(dir), node: self.node.clone(), shared: self.shared }
    }

    /// Whether other nodes write here too: sweeps of unreferenced files must then spare what
    /// another node wrote a moment ago and has not committed yet.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Whether the area `name` was ever created (a service stored something here).
    pub fn has_area(&self, name: &str) -> bool {
        self.root.join(name).is_dir()
    }

    /// The area `name`, created if needed; this node's leftovers from a crash are cleared.
    pub fn area(&self, name: &str) -> io::Result<BlobArea> {
        let dir = self.root.join(name);
        let staging = dir.join(".staging").join(&self.node);
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging)?;
        Ok(BlobArea { dir, staging })
    }
}

#[derive(Debug, Clone)]
pub struct BlobArea {
    dir: PathBuf,
    staging: PathBuf,
}

impl BlobArea {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// This node's staging directory (same file system as the area, so renames are atomic).
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// Where `name` (a relative path such as `objects/ab12`) lives.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `name` durably and atomically with what `fill` writes, replacing any file there.
    pub fn write_with(&self, name: &str, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
        let target = self.path(name);
        let parent = target.parent().unwrap_or(&self.dir).to_path_buf();
        fs::create_dir_all(&parent)?;
        let staged = self.staging.join(uuid::Uuid::new_v4().simple().to_string());
        let result = (|| {
            let mut file = OpenOptions::new().write(true).create_new(true).open(&staged)?;
            fill(&mut file)?;
            file.sync_all()?;
            fs::rename(&staged, &target)?;
            sync_dir(&parent)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&staged);
        }
        result
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.write_with(name, |file| file.write_all(bytes))
    }

    pub fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        fs::read(self.path(name))
    }

    /// Removes `name`; a file already gone is not an error.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        match fs::remove_file(self.path(name)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }
}

/// Makes a rename or creation in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_whole_files_and_staging_is_per_node() {
        let root = tempfile::tempdir().unwrap();
        let a = Blobs::new(root.path(), "a", true).area("svc").unwrap();
        a.write("x/one", b"first").unwrap();
        a.write("x/one", b"second").unwrap();
        assert_eq!(a.read("x/one").unwrap(), b"second");
        // A half-written file of node b survives node a (re)opening the area.
        let b = Blobs::new(root.path(), "b", true).area("svc").unwrap();
        std::fs::write(b.staging.join("half"), b"half").unwrap();
        Blobs::new(root.path(), "a", true).area("svc").unwrap();
        assert!(b.staging.join("half").exists());
        a.remove("x/one").unwrap();
        a.remove("x/one").unwrap();
        assert!(!a.path("x/one").exists());
    }
}
