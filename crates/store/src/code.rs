//! Content-addressed store for Lambda code packages (zip files).
//!
//! Layout under the root:
//! - `zips/<sha256 hex>.zip`: the uploaded bytes, written durably; the source of truth.
//! - `extracted/<sha256 hex>/`: the unpacked package, rebuilt from the zip whenever it is missing.
//! - `.tmp-*`: scratch files and directories of in-flight operations, swept by [`CodeStore::open`].
//!
//! Packages are hostile input: see `entry` for the name checks and `extract` for how extraction
//! stays inside its directory and within the size budget.

mod entry;
mod extract;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use zip::ZipArchive;

/// AWS's limit on a function's unzipped code (including its layers): 250 MB.
pub const MAX_UNZIPPED_BYTES: u64 = 262_144_000;

const TEMP_PREFIX: &str = ".tmp-";

/// A stored code package, as Lambda reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodePackage {
    /// Lowercase hex of the zip bytes' SHA-256: the package's key in the store.
    pub sha256_hex: String,
    /// Standard padded base64 of the same digest: Lambda's `CodeSha256`.
    pub sha256_base64: String,
    /// Zip size in bytes: Lambda's `CodeSize`.
    pub size: u64,
    /// Sum of the entries' uncompressed sizes (files and symlink targets).
    pub unzipped_size: u64,
}

/// Why a package was refused or could not be stored; the messages are user-facing.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// Not a zip, corrupt, encrypted or using an unsupported compression; the detail is for logs.
    #[error("Could not unzip uploaded file. Please check your file, then try to upload again.")]
    InvalidZip(String),
    /// An entry or symlink that would land outside the package; the detail names it.
    #[error("Could not unzip uploaded file: {0}")]
    UnsafePath(String),
    #[error("Unzipped size must be smaller than 262144000 bytes")]
    TooLarge,
    /// No stored zip has this digest.
    #[error("code package {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

fn invalid_zip(e: zip::result::ZipError) -> CodeError {
    CodeError::InvalidZip(e.to_string())
}

/// The store under one root directory. Methods take `&self` and are safe to call from many
/// threads at once, including for the same package.
pub struct CodeStore {
    root: PathBuf,
    /// Where packages are staged before their rename: this node's own staging directory in a
    /// blob area (other nodes sharing the directory keep theirs), or the root itself.
    scratch: PathBuf,
    /// The stores whose functions run from these packages (each region's Lambda): a package
    /// one region no longer uses may still be another's.
    users: std::sync::Mutex<Vec<std::sync::Weak<dyn crate::Store>>>,
}

impl CodeStore {
    /// Opens (creating if needed) the store at `root` and deletes scratch left by a crash.
    /// Open each root once per process: the sweep would also delete a live store's scratch.
    pub fn open(root: &Path) -> io::Result<CodeStore> {
        fs::create_dir_all(root.join("zips"))?;
        fs::create_dir_all(root.join("extracted"))?;
        for item in fs::read_dir(root)? {
            let item = item?;
            if item.file_name().as_encoded_bytes().starts_with(TEMP_PREFIX.as_bytes()) {
                // Best effort: a leftover we cannot delete only wastes space.
                let _ = remove_any(&item.path());
            }
        }
        Ok(CodeStore { root: root.to_path_buf(), scratch: root.to_path_buf(), users: Default::default() })
    }

    /// The store in a blob area (`code`), which may be shared by several nodes: scratch goes to
    /// the area's per-node staging directory, which the area cleared when it opened.
    pub fn in_area(area: &crate::BlobArea) -> io::Result<CodeStore> {
        let root = area.dir();
        fs::create_dir_all(root.join("zips"))?;
        fs::create_dir_all(root.join("extracted"))?;
        Ok(CodeStore {
            root: root.to_path_buf(),
            scratch: area.staging().to_path_buf(),
            users: Default::default(),
        })
    }

    /// Counts `store`'s functions among the packages' users (see [`CodeStore::in_use`]).
    pub fn add_user(&self, store: &std::sync::Arc<dyn crate::Store>) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.retain(|user| user.strong_count() > 0);
        users.push(std::sync::Arc::downgrade(store));
    }

    /// Whether a function of any user store runs from package `sha256_hex`.
    pub fn in_use(&self, sha256_hex: &str) -> Result<bool, crate::StoreError> {
        let users: Vec<_> = self.users.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for store in users.iter().filter_map(std::sync::Weak::upgrade) {
            if store.code_in_use(sha256_hex)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Validates and stores a zip with the standard 250 MB unzipped limit.
    pub fn put_zip(&self, zip: &[u8]) -> Result<CodePackage, CodeError> {
        self.put_zip_with_limit(zip, MAX_UNZIPPED_BYTES)
    }

    /// Validates and stores a zip: the zip durably under `zips/`, its contents under
    /// `extracted/`, each appearing atomically. Idempotent, and cheap when the package is
    /// already stored. On error nothing new is left on disk.
    pub fn put_zip_with_limit(&self, zip: &[u8], max_unzipped: u64) -> Result<CodePackage, CodeError> {
        let digest = Sha256::digest(zip);
        let sha256_hex = to_hex(&digest);
        let mut archive = ZipArchive::new(Cursor::new(zip)).map_err(invalid_zip)?;
        let entries = entry::plan(&mut archive)?;
        // Declared sizes first, a cheap early reject; extraction counts the real bytes.
        let unzipped_size = entries
            .iter()
            .try_fold(0u64, |sum, e| sum.checked_add(e.declared))
            .filter(|&total| total <= max_unzipped)
            .ok_or(CodeError::TooLarge)?;
        let package = CodePackage {
            sha256_base64: base64::engine::general_purpose::STANDARD.encode(digest),
            sha256_hex,
            size: zip.len() as u64,
            unzipped_size,
        };

        let zip_path = self.zip_path(&package.sha256_hex);
        let dir = self.extracted_path(&package.sha256_hex);
        if zip_path.is_file() && dir.is_dir() {
            return Ok(package);
        }
        // Extract before storing the zip: extraction is what proves the package acceptable.
        let scratch = self.extract_to_scratch(&mut archive, &entries, max_unzipped)?;
        if !zip_path.is_file() {
            self.write_durably(&zip_path, zip)?;
        }
        // If this fails, the durable zip stays: it is complete, and `extracted_dir` rebuilds
        // the directory from it, exactly as after a crash between the two steps.
        publish(scratch, &dir)?;
        Ok(package)
    }

    /// Where the zip with this digest is (or would be) stored. `sha256_hex` must come from a
    /// [`CodePackage`]: it is joined to the root unchecked.
    pub fn zip_path(&self, sha256_hex: &str) -> PathBuf {
        self.root.join("zips").join(format!("{sha256_hex}.zip"))
    }

    /// The extracted directory, re-extracted from the stored zip if it is missing (e.g. after a
    /// crash between storing the zip and publishing the directory).
    pub fn extracted_dir(&self, sha256_hex: &str) -> Result<PathBuf, CodeError> {
        let zip_path = self.zip_path(sha256_hex);
        if !is_digest_hex(sha256_hex) || !zip_path.is_file() {
            return Err(CodeError::NotFound(sha256_hex.to_string()));
        }
        let dir = self.extracted_path(sha256_hex);
        if dir.is_dir() {
            return Ok(dir);
        }
        let zip = fs::read(&zip_path)?;
        if to_hex(&Sha256::digest(&zip)) != sha256_hex {
            return Err(CodeError::InvalidZip(format!("{zip_path:?} does not match its digest")));
        }
        let mut archive = ZipArchive::new(Cursor::new(&zip[..])).map_err(invalid_zip)?;
        let entries = entry::plan(&mut archive)?;
        // These bytes passed the caller's limit when they were put (the digest proves they are
        // the same bytes), and that limit is not known here.
        let scratch = self.extract_to_scratch(&mut archive, &entries, u64::MAX)?;
        publish(scratch, &dir)?;
        Ok(dir)
    }

    /// Removes a package's zip and extracted directory; missing parts are fine. The caller
    /// decides when nothing references the package any more.
    pub fn remove(&self, sha256_hex: &str) -> io::Result<()> {
        if !is_digest_hex(sha256_hex) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a SHA-256 hex digest"));
        }
        // Move the tree out of sight first so nobody sees a half-deleted package; if deleting
        // it fails midway, the next `open` sweeps the rest.
        let doomed = self.temp_path("rm");
        match fs::rename(self.extracted_path(sha256_hex), &doomed) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        match fs::remove_file(self.zip_path(sha256_hex)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        match fs::remove_dir_all(&doomed) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn extracted_path(&self, sha256_hex: &str) -> PathBuf {
        self.root.join("extracted").join(sha256_hex)
    }

    /// A fresh name for scratch under the root: same filesystem as the targets, so renames
    /// are atomic, and unique across threads.
    fn temp_path(&self, kind: &str) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.scratch.join(format!("{TEMP_PREFIX}{}-{n}-{kind}", std::process::id()))
    }

    fn extract_to_scratch(
        &self,
        archive: &mut ZipArchive<Cursor<&[u8]>>,
        entries: &[entry::Entry],
        limit: u64,
    ) -> Result<Scratch, CodeError> {
        let path = self.temp_path("extract");
        fs::create_dir(&path)?;
        let scratch = Scratch(Some(path));
        extract::extract(archive, entries, scratch.path(), limit)?;
        Ok(scratch)
    }

    /// Temp file, fsync, rename, fsync of the directory: after a crash the zip is either
    /// absent or complete.
    fn write_durably(&self, dest: &Path, bytes: &[u8]) -> io::Result<()> {
        let scratch = Scratch(Some(self.temp_path("zip")));
        let mut file = OpenOptions::new().write(true).create_new(true).open(scratch.path())?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        // A concurrent put of the same bytes may have stored them already; replacing identical
        // content is harmless.
        fs::rename(scratch.path(), dest)?;
        scratch.keep();
        File::open(dest.parent().unwrap_or(&self.root))?.sync_all()
    }
}

/// Renames a finished scratch directory to `dest`.
fn publish(scratch: Scratch, dest: &Path) -> io::Result<()> {
    match fs::rename(scratch.path(), dest) {
        Ok(()) => {
            scratch.keep();
            Ok(())
        }
        // A concurrent put of the same bytes got there first with an identical tree: keep it
        // (our scratch is deleted on drop).
        Err(_) if dest.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// A scratch file or directory that is deleted on drop unless kept, so every error path (and a
/// panic) cleans up after itself.
struct Scratch(Option<PathBuf>);

impl Scratch {
    fn path(&self) -> &Path {
        self.0.as_deref().expect("scratch path is set until kept")
    }

    /// The scratch was renamed into place: nothing to delete any more.
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = remove_any(path);
        }
    }
}

fn remove_any(path: &Path) -> io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        s.push_str(&format!("{b:02x}"));
        s
    })
}

fn is_digest_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use zip::write::SimpleFileOptions;
    use zip::{CompressionMethod, ZipWriter};

    use super::*;

    #[derive(Clone, Copy)]
    enum Item<'a> {
        File(&'a str, &'a [u8], u32),
        Dir(&'a str),
        Link(&'a str, &'a str),
    }

    fn build(items: &[Item]) -> Vec<u8> {
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
        let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        for item in items {
            match item {
                Item::File(name, data, mode) => {
                    zip.start_file(*name, options.unix_permissions(*mode)).unwrap();
                    zip.write_all(data).unwrap();
                }
                Item::Dir(name) => zip.add_directory(*name, options).unwrap(),
                Item::Link(name, target) => zip.add_symlink(*name, *target, options).unwrap(),
            }
        }
        zip.finish().unwrap().into_inner()
    }

    /// Rewrites each central directory header (signature PK\1\2; test data never contains it),
    /// passing its entry number.
    fn patch_central(zip: &mut [u8], mut patch: impl FnMut(usize, &mut [u8])) {
        let starts: Vec<usize> =
            (0..zip.len().saturating_sub(46)).filter(|&i| zip[i..].starts_with(b"PK\x01\x02")).collect();
        for (n, start) in starts.into_iter().enumerate() {
            patch(n, &mut zip[start..start + 46]);
        }
    }

    fn fresh_store() -> (tempfile::TempDir, CodeStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = CodeStore::open(dir.path()).unwrap();
        (dir, store)
    }

    fn listing(dir: &Path) -> BTreeSet<String> {
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
    }

    /// The root holds only the empty `zips` and `extracted` directories.
    fn assert_pristine(root: &Path) {
        assert_eq!(listing(root), BTreeSet::from(["extracted".to_string(), "zips".to_string()]));
        assert!(listing(&root.join("zips")).is_empty());
        assert!(listing(&root.join("extracted")).is_empty());
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn bootstrap_zip() -> Vec<u8> {
        build(&[
            Item::File("bootstrap", b"#!/bin/sh\necho hi\n", 0o755),
            Item::Dir("lib/"),
            Item::File("lib/data.txt", b"hello", 0o644),
        ])
    }

    #[test]
    fn round_trip() {
        let (root, store) = fresh_store();
        let zip = bootstrap_zip();
        let package = store.put_zip(&zip).unwrap();

        assert_eq!(package.size, zip.len() as u64);
        assert_eq!(package.unzipped_size, 18 + 5);
        assert_eq!(
            to_hex(&Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(package.sha256_hex, to_hex(&Sha256::digest(&zip)));
        let raw = base64::engine::general_purpose::STANDARD.decode(&package.sha256_base64).unwrap();
        assert_eq!(to_hex(&raw), package.sha256_hex);
        assert_eq!(fs::read(store.zip_path(&package.sha256_hex)).unwrap(), zip);

        let dir = store.extracted_dir(&package.sha256_hex).unwrap();
        assert_eq!(fs::read(dir.join("bootstrap")).unwrap(), b"#!/bin/sh\necho hi\n");
        assert_eq!(fs::read(dir.join("lib/data.txt")).unwrap(), b"hello");
        assert_eq!(mode(&dir.join("bootstrap")), 0o755);
        assert_eq!(mode(&dir.join("lib/data.txt")), 0o644);
        assert_eq!(mode(&dir.join("lib")), 0o755);
        assert_eq!(mode(&dir), 0o755);
        assert_eq!(listing(root.path()), BTreeSet::from(["extracted".to_string(), "zips".to_string()]));
    }

    #[test]
    fn modes_are_masked_and_defaulted() {
        let (_root, store) = fresh_store();
        let mut zip = build(&[Item::File("suid", b"x", 0o755), Item::File("plain", b"y", 0o600)]);
        // External attributes (offset 38): setuid on the first entry, none at all on the second.
        patch_central(&mut zip, |n, header| {
            let attrs: u32 = if n == 0 { (0o100_000 | 0o4755) << 16 } else { 0 };
            header[38..42].copy_from_slice(&attrs.to_le_bytes());
        });
        let package = store.put_zip(&zip).unwrap();
        let dir = store.extracted_dir(&package.sha256_hex).unwrap();
        assert_eq!(mode(&dir.join("suid")), 0o755);
        assert_eq!(mode(&dir.join("plain")), 0o644);
    }

    #[test]
    fn idempotent_and_cheap() {
        let (root, store) = fresh_store();
        let zip = bootstrap_zip();
        let first = store.put_zip(&zip).unwrap();
        let dir = store.extracted_dir(&first.sha256_hex).unwrap();
        fs::write(dir.join("marker"), b"").unwrap();
        assert_eq!(store.put_zip(&zip).unwrap(), first);
        assert!(dir.join("marker").exists(), "an existing package is not re-extracted");
        assert_eq!(listing(&root.path().join("zips")).len(), 1);
        assert_eq!(listing(&root.path().join("extracted")).len(), 1);
        // The limit still applies to a stored package.
        assert!(matches!(store.put_zip_with_limit(&zip, 10), Err(CodeError::TooLarge)));
    }

    #[test]
    fn traversal_refused() {
        for name in ["../evil", "a/../../evil", "/etc/evil", "..\\evil", "a\0b"] {
            let (root, store) = fresh_store();
            let zip = build(&[Item::File("ok", b"fine", 0o644), Item::File(name, b"evil", 0o644)]);
            let err = store.put_zip(&zip).unwrap_err();
            assert!(matches!(err, CodeError::UnsafePath(_)), "{name:?}: {err:?}");
            assert_pristine(root.path());
        }
    }

    #[test]
    fn escaping_symlinks_refused() {
        let cases: &[&[Item]] = &[
            &[Item::Link("link", "../outside")],
            &[Item::Link("a/b/link", "../../../outside")],
            &[Item::Link("link", "/etc/passwd")],
            // Each link alone resolves inside lexically; together `m` reaches the parent.
            &[Item::Dir("x/"), Item::Link("x/l", ".."), Item::Link("m", "x/l/..")],
        ];
        for items in cases {
            let (root, store) = fresh_store();
            let mut all = vec![Item::File("bootstrap", b"#!/bin/sh\n", 0o755)];
            all.extend_from_slice(items);
            let err = store.put_zip(&build(&all)).unwrap_err();
            assert!(matches!(err, CodeError::UnsafePath(_)), "{err:?}");
            assert_pristine(root.path());
        }
    }

    #[test]
    fn conflicting_entries_refused() {
        let cases: &[&[Item]] = &[
            // `d` becomes a real directory for `d/file`, so the link cannot take its place.
            &[Item::Link("d", "sub"), Item::File("d/file", b"x", 0o644)],
            &[Item::File("f", b"x", 0o644), Item::File("f/g", b"y", 0o644)],
            &[Item::File("a", b"x", 0o644), Item::File("./a", b"y", 0o644)],
        ];
        for items in cases {
            let (root, store) = fresh_store();
            assert!(store.put_zip(&build(items)).is_err());
            assert_pristine(root.path());
        }
    }

    #[test]
    fn inner_symlink_allowed() {
        let (_root, store) = fresh_store();
        let zip = build(&[
            Item::File("data/file.txt", b"target", 0o644),
            Item::Link("lib/current", "../data/file.txt"),
            Item::Link("here", "."),
        ]);
        let package = store.put_zip(&zip).unwrap();
        let dir = store.extracted_dir(&package.sha256_hex).unwrap();
        let link = dir.join("lib/current");
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("../data/file.txt"));
        assert_eq!(fs::read(&link).unwrap(), b"target");
        assert_eq!(fs::read(dir.join("here/data/file.txt")).unwrap(), b"target");
    }

    #[test]
    fn zip_bomb_refused() {
        let zeros = vec![0u8; 4 << 20];
        let zip = build(&[Item::File("small", b"ok", 0o644), Item::File("zeros", &zeros, 0o644)]);
        assert!(zip.len() < 64 << 10, "zeros compress well");

        // Honest sizes: rejected up front.
        let (root, store) = fresh_store();
        assert!(matches!(store.put_zip_with_limit(&zip, 1 << 20), Err(CodeError::TooLarge)));
        assert_pristine(root.path());

        // A lying size (offset 24: "zeros" claims 1 byte): caught while streaming.
        let mut liar = zip.clone();
        patch_central(&mut liar, |n, header| {
            if n == 1 {
                header[24..28].copy_from_slice(&1u32.to_le_bytes());
            }
        });
        let (root, store) = fresh_store();
        let err = store.put_zip_with_limit(&liar, 1 << 20).unwrap_err();
        assert!(matches!(err, CodeError::TooLarge), "{err:?}");
        assert_pristine(root.path());
    }

    #[test]
    fn corrupt_bytes_refused() {
        let (root, store) = fresh_store();
        for bytes in [&b"definitely not a zip"[..], &[]] {
            assert!(matches!(store.put_zip(bytes), Err(CodeError::InvalidZip(_))));
        }
        let zip = bootstrap_zip();
        assert!(matches!(store.put_zip(&zip[..zip.len() / 2]), Err(CodeError::InvalidZip(_))));
        // Flip a byte of stored (uncompressed) data: the CRC check fails during extraction.
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        writer.start_file("a", stored).unwrap();
        writer.write_all(b"some data").unwrap();
        let mut zip = writer.finish().unwrap().into_inner();
        let at = zip.windows(9).position(|w| w == b"some data").unwrap();
        zip[at] ^= 0xff;
        assert!(matches!(store.put_zip(&zip), Err(CodeError::InvalidZip(_))));
        assert_pristine(root.path());
    }

    #[test]
    fn extracted_dir_rebuilds_and_remove_deletes() {
        let (root, store) = fresh_store();
        let package = store.put_zip(&bootstrap_zip()).unwrap();
        let dir = store.extracted_dir(&package.sha256_hex).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(store.put_zip(&bootstrap_zip()).unwrap(), package);
        assert!(dir.join("bootstrap").is_file(), "put_zip restores a missing directory");
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(store.extracted_dir(&package.sha256_hex).unwrap(), dir);
        assert_eq!(fs::read(dir.join("lib/data.txt")).unwrap(), b"hello");
        assert_eq!(mode(&dir.join("bootstrap")), 0o755);

        store.remove(&package.sha256_hex).unwrap();
        store.remove(&package.sha256_hex).unwrap();
        assert_pristine(root.path());
        assert!(matches!(store.extracted_dir(&package.sha256_hex), Err(CodeError::NotFound(_))));
        assert!(matches!(store.extracted_dir("../../etc"), Err(CodeError::NotFound(_))));
        assert!(store.remove("../zips").is_err());
    }

    #[test]
    fn concurrent_puts_of_the_same_zip() {
        let (root, store) = fresh_store();
        let zip = bootstrap_zip();
        let packages: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| store.put_zip(&zip).unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(packages.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(listing(root.path()), BTreeSet::from(["extracted".to_string(), "zips".to_string()]));
        let dir = store.extracted_dir(&packages[0].sha256_hex).unwrap();
        assert_eq!(fs::read(dir.join("lib/data.txt")).unwrap(), b"hello");
    }

    #[test]
    fn open_sweeps_scratch() {
        let (root, store) = fresh_store();
        fs::create_dir_all(root.path().join(".tmp-1-2-extract/a")).unwrap();
        fs::write(root.path().join(".tmp-1-3-zip"), b"partial").unwrap();
        drop(store);
        CodeStore::open(root.path()).unwrap();
        assert_pristine(root.path());
    }
}
