//! Object bytes, in blob area `s3` (`<root>/s3/objects/`, where they always were). A file is
//! written whole through the area (staged, fsynced, renamed, directory fsynced) before its name
//! is handed out; the metadata row that makes it visible is committed afterwards. A crash in
//! between leaves only an unreferenced file, which a later start sweeps away: no half object is
//! ever visible.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nimbus_store::blobs::sync_dir;
use nimbus_store::{BlobArea, Blobs};

use crate::range::ByteRange;

const OBJECTS: &str = "objects";

/// With several nodes, an unreferenced file younger than this may be another node's upload whose
/// row is about to commit: the sweep spares it.
const SHARED_SWEEP_AGE: Duration = Duration::from_secs(3600);

pub struct Files {
    area: BlobArea,
    /// Prefix of every file name created by this process: the sweep never touches them.
    run: String,
    /// Other nodes write here too.
    shared: bool,
}

impl Files {
    pub fn open(blobs: &Blobs) -> io::Result<Files> {
        let area = blobs.area("s3")?;
        fs::create_dir_all(area.path(OBJECTS))?;
        // Where writes were staged before the storage layer (now `.staging/<node>`): leftovers
        // of a crash mid-write, which no nimbus of today writes to.
        let _ = fs::remove_dir_all(area.path("tmp"));
        let run = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        Ok(Files { area, run, shared: blobs.is_shared() })
    }

    fn new_name(&self) -> String {
        format!("{}-{}", self.run, uuid::Uuid::new_v4().simple())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.area.path(&format!("{OBJECTS}/{name}"))
    }

    /// Writes `data` durably and returns the new file's name.
    pub fn write(&self, data: &[u8]) -> io::Result<String> {
        self.write_with(|file| file.write_all(data))
    }

    /// Concatenates existing files (a multipart upload's parts) into a new durable file.
    pub fn concat(&self, names: &[String]) -> io::Result<String> {
        self.write_with(|out| {
            for name in names {
                io::copy(&mut File::open(self.path(name))?, out)?;
            }
            Ok(())
        })
    }

    /// A durable copy of `name` under a new name: a hard link (files are never modified in
    /// place), or a byte copy where links are not supported. A link changes the file's ctime,
    /// so the shared sweep sees the new name as young.
    pub fn duplicate(&self, name: &str) -> io::Result<String> {
        let new = self.new_name();
        match fs::hard_link(self.path(name), self.path(&new)) {
            Ok(()) => {
                sync_dir(&self.area.path(OBJECTS))?;
                Ok(new)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Err(error),
            Err(_) => self.concat(&[name.to_owned()]),
        }
    }

    fn write_with(&self, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<String> {
        let name = self.new_name();
        self.area.write_with(&format!("{OBJECTS}/{name}"), fill)?;
        Ok(name)
    }

    /// The file's bytes, or just `range` of them.
    pub fn read(&self, name: &str, range: Option<ByteRange>) -> io::Result<Vec<u8>> {
        let mut file = File::open(self.path(name))?;
        match range {
            None => {
                let mut data = Vec::with_capacity(file.metadata()?.len() as usize);
                file.read_to_end(&mut data)?;
                Ok(data)
            }
            Some(range) => {
                file.seek(SeekFrom::Start(range.start))?;
                let mut data = vec![0; range.len() as usize];
                file.read_exact(&mut data)?;
                Ok(data)
            }
        }
    }

    /// Removes a file no row references any more (best effort: the sweep retries).
    pub fn remove(&self, name: &str) {
        let _ = self.area.remove(&format!("{OBJECTS}/{name}"));
    }

    /// Deletes files that no row references and no writer may still commit: objects written
    /// before a crash whose metadata never committed, and files whose removal was cut short.
    /// Alone, that is every file of an earlier run; with other nodes, only files untouched for
    /// an hour (one of them may have just written a file and not yet committed its row).
    pub fn sweep(&self, referenced: &HashSet<String>) -> io::Result<usize> {
        self.sweep_older_than(referenced, self.shared.then_some(SHARED_SWEEP_AGE))
    }

    fn sweep_older_than(&self, referenced: &HashSet<String>, min_age: Option<Duration>) -> io::Result<usize> {
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in fs::read_dir(self.area.path(OBJECTS))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&self.run) || referenced.contains(&name) {
                continue;
            }
            if let Some(min_age) = min_age {
                let Ok(metadata) = entry.metadata() else { continue };
                if now.duration_since(last_touched(&metadata)).unwrap_or_default() < min_age {
                    continue;
                }
            }
            self.remove(&name);
            removed += 1;
        }
        Ok(removed)
    }
}

/// The later of the file's modification and status change: a hard link made a moment ago to
/// an old file (CopyObject) is as young as a file written a moment ago.
fn last_touched(metadata: &fs::Metadata) -> SystemTime {
    let changed = UNIX_EPOCH + Duration::new(metadata.ctime().max(0) as u64, metadata.ctime_nsec() as u32);
    metadata.modified().map_or(changed, |modified| modified.max(changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(root: &std::path::Path, node: &str, shared: bool) -> Blobs {
        Blobs::new(root, node, shared)
    }

    #[test]
    fn written_files_read_back_whole_and_in_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::open(&blobs(dir.path(), "local", false)).unwrap();
        let name = files.write(b"hello world").unwrap();
        assert!(dir.path().join("s3").join("objects").join(&name).exists(), "the layout of old data dirs");
        assert_eq!(files.read(&name, None).unwrap(), b"hello world");
        assert_eq!(files.read(&name, Some(ByteRange { start: 6, end: 10 })).unwrap(), b"world");
        let joined = files.concat(&[name.clone(), name.clone()]).unwrap();
        assert_eq!(files.read(&joined, None).unwrap().len(), 22);
        let copy = files.duplicate(&name).unwrap();
        files.remove(&name);
        assert_eq!(files.read(&copy, None).unwrap(), b"hello world");
    }

    #[test]
    fn a_restart_sweeps_unreferenced_files_and_staging_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let first = Files::open(&blobs(dir.path(), "local", false)).unwrap();
        let kept = first.write(b"kept").unwrap();
        let orphan = first.write(b"written, never committed").unwrap();
        let legacy_tmp = dir.path().join("s3").join("tmp");
        fs::create_dir_all(&legacy_tmp).unwrap();
        fs::write(legacy_tmp.join("half"), b"half an upload, before the storage layer").unwrap();
        drop(first);

        let second = Files::open(&blobs(dir.path(), "local", false)).unwrap();
        assert!(!legacy_tmp.exists());
        let fresh = second.write(b"this run").unwrap();
        let referenced = HashSet::from([kept.clone()]);
        assert_eq!(second.sweep(&referenced).unwrap(), 1);
        assert!(second.read(&orphan, None).is_err());
        assert_eq!(second.read(&kept, None).unwrap(), b"kept");
        assert_eq!(second.read(&fresh, None).unwrap(), b"this run");
    }

    #[test]
    fn a_shared_sweep_spares_young_files_of_other_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let other = Files::open(&blobs(dir.path(), "b", true)).unwrap();
        let uncommitted = other.write(b"node b's upload, row not yet committed").unwrap();
        let old = other.write(b"source of a copy").unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        let copy = other.duplicate(&old).unwrap();

        let this = Files::open(&blobs(dir.path(), "a", true)).unwrap();
        let referenced = HashSet::from([old.clone()]);
        assert_eq!(this.sweep(&referenced).unwrap(), 0, "an hour has not passed");
        // The copy was linked a moment ago to a file written more than a second ago: young.
        assert_eq!(this.sweep_older_than(&referenced, Some(Duration::from_secs(1))).unwrap(), 1);
        assert!(this.read(&uncommitted, None).is_err());
        assert_eq!(this.read(&copy, None).unwrap(), b"source of a copy");
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(this.sweep_older_than(&referenced, Some(Duration::from_secs(1))).unwrap(), 1);
        assert!(this.read(&copy, None).is_err());
        assert_eq!(this.read(&old, None).unwrap(), b"source of a copy");
    }
}
