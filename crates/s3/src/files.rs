//! Object bytes on disk. Every file is written once under `tmp/`, fsynced, renamed into
//! `objects/` and the directory fsynced before its name is handed out; the metadata row that
//! makes it visible is committed afterwards. A crash in between leaves only an unreferenced file,
//! which the next start sweeps away: no half object is ever visible.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::range::ByteRange;

pub struct Files {
    objects: PathBuf,
    tmp: PathBuf,
    /// Prefix of every file name created by this process: the sweep never touches them.
    run: String,
}

impl Files {
    pub fn open(root: &Path) -> io::Result<Files> {
        let objects = root.join("objects");
        let tmp = root.join("tmp");
        fs::create_dir_all(&objects)?;
        let _ = fs::remove_dir_all(&tmp); // leftovers of a crash mid-write
        fs::create_dir_all(&tmp)?;
        let run = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        Ok(Files { objects, tmp, run })
    }

    fn new_name(&self) -> String {
        format!("{}-{}", self.run, uuid::Uuid::new_v4().simple())
    }

    /// Writes `data` durably and returns the new file's name.
    pub fn write(&self, data: &[u8]) -> io::Result<String> {
        self.write_with(|file| file.write_all(data))
    }

    /// Concatenates existing files (a multipart upload's parts) into a new durable file.
    pub fn concat(&self, names: &[String]) -> io::Result<String> {
        self.write_with(|out| {
            for name in names {
                io::copy(&mut File::open(self.objects.join(name))?, out)?;
            }
            Ok(())
        })
    }

    /// A durable copy of `name` under a new name: a hard link (files are never modified in
    /// place), or a byte copy where links are not supported.
    pub fn duplicate(&self, name: &str) -> io::Result<String> {
        let new = self.new_name();
        match fs::hard_link(self.objects.join(name), self.objects.join(&new)) {
            Ok(()) => {
                sync_dir(&self.objects)?;
                Ok(new)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Err(error),
            Err(_) => self.concat(&[name.to_owned()]),
        }
    }

    fn write_with(&self, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<String> {
        let name = self.new_name();
        let staged = self.tmp.join(&name);
        let result = (|| {
            let mut file = OpenOptions::new().write(true).create_new(true).open(&staged)?;
            fill(&mut file)?;
            file.sync_all()?;
            fs::rename(&staged, self.objects.join(&name))?;
            sync_dir(&self.objects)
        })();
        match result {
            Ok(()) => Ok(name),
            Err(error) => {
                let _ = fs::remove_file(&staged);
                Err(error)
            }
        }
    }

    /// The file's bytes, or just `range` of them.
    pub fn read(&self, name: &str, range: Option<ByteRange>) -> io::Result<Vec<u8>> {
        let mut file = File::open(self.objects.join(name))?;
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
        let _ = fs::remove_file(self.objects.join(name));
    }

    /// Deletes files of earlier runs that no row references: objects written before a crash
    /// whose metadata never committed, and files whose removal was cut short.
    pub fn sweep(&self, referenced: &HashSet<String>) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.objects)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if !name.starts_with(&self.run) && !referenced.contains(&name) {
                self.remove(&name);
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_read_back_whole_and_in_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::open(dir.path()).unwrap();
        let name = files.write(b"hello world").unwrap();
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
        let first = Files::open(dir.path()).unwrap();
        let kept = first.write(b"kept").unwrap();
        let orphan = first.write(b"written, never committed").unwrap();
        fs::write(dir.path().join("tmp").join("half"), b"half an upload").unwrap();
        drop(first);

        let second = Files::open(dir.path()).unwrap();
        assert!(!dir.path().join("tmp").join("half").exists());
        let fresh = second.write(b"this run").unwrap();
        let referenced = HashSet::from([kept.clone()]);
        assert_eq!(second.sweep(&referenced).unwrap(), 1);
        assert!(second.read(&orphan, None).is_err());
        assert_eq!(second.read(&kept, None).unwrap(), b"kept");
        assert_eq!(second.read(&fresh, None).unwrap(), b"this run");
    }
}
