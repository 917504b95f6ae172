use std::io::Write;

use super::*;

/// One tar entry, written byte by byte so that hostile names pass (tar's builder refuses them).
pub(crate) enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Char(&'a str),
}

pub(crate) fn layer(entries: &[E<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        let (name, kind, data, link): (&str, tar::EntryType, &[u8], &str) = match entry {
            E::Dir(n) => (n, tar::EntryType::Directory, b"", ""),
            E::File(n, d) => (n, tar::EntryType::Regular, d, ""),
            E::Sym(n, l) => (n, tar::EntryType::Symlink, b"", l),
            E::Hard(n, l) => (n, tar::EntryType::Link, b"", l),
            E::Char(n) => (n, tar::EntryType::Char, b"", ""),
        };
        {
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(if matches!(entry, E::Dir(_)) { 0o755 } else { 0o644 });
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn apply_all(root: &Path, layers: &[Vec<u8>]) -> Result<(), UnpackError> {
    let mut budget = Budget::default();
    for layer in layers {
        apply(root, &layer[..], &Limits::default(), &mut budget)?;
    }
    Ok(())
}

fn refused(entries: &[E<'_>]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    match apply_all(&root, &[layer(entries)]) {
        Err(UnpackError::Hostile(why)) => why,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn whiteouts_and_opaque_directories_hide_lower_layers_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let lower = layer(&[
        E::Dir("etc"),
        E::File("etc/keep", b"k"),
        E::File("etc/gone", b"g"),
        E::Dir("data"),
        E::File("data/old", b"o"),
        E::Dir("data/sub"),
        E::File("data/sub/deep", b"d"),
        E::File("./bin", b"x"),
    ]);
    let upper = gzip(&layer(&[
        E::File("etc/.wh.gone", b""),
        E::Dir("data"),
        E::File("data/new", b"n"),
        E::File("data/.wh..wh..opq", b""),
        E::Dir("bin"),
        E::File("bin/tool", b"t"),
    ]));
    apply_all(root, &[lower, upper]).unwrap();
    assert_eq!(fs::read(root.join("etc/keep")).unwrap(), b"k");
    assert!(!root.join("etc/gone").exists());
    assert!(!root.join("etc/.wh.gone").exists());
    assert!(!root.join("data/old").exists(), "opaque: lower entries go");
    assert!(!root.join("data/sub").exists());
    assert_eq!(fs::read(root.join("data/new")).unwrap(), b"n", "opaque: the same layer's entries stay");
    assert!(!root.join("data/.wh..wh..opq").exists());
    assert_eq!(fs::read(root.join("bin/tool")).unwrap(), b"t", "a directory replaces a file");
}

#[test]
fn links_inside_the_root_work() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    apply_all(
        root,
        &[layer(&[
            E::Dir("bin"),
            E::File("bin/busybox", b"bb"),
            E::Hard("bin/sh", "bin/busybox"),
            E::Sym("bin/ls", "busybox"),
            E::Sym("usr", "/"),
            E::Sym("lib", "../../../lib"),
        ])],
    )
    .map(|_| ())
    .unwrap_err();
    // The escaping relative link refused the layer; without it the rest applies.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    apply_all(
        root,
        &[
            layer(&[
                E::Dir("bin"),
                E::File("bin/busybox", b"bb"),
                E::Hard("bin/sh", "bin/busybox"),
                E::Sym("bin/ls", "busybox"),
                E::Sym("up", "/"),
            ]),
            // Through an absolute symlink: lands inside the root, never in the host's /.
            layer(&[E::File("up/written-through-link", b"w")]),
        ],
    )
    .unwrap();
    assert_eq!(fs::read(root.join("bin/sh")).unwrap(), b"bb");
    assert_eq!(fs::read_link(root.join("bin/ls")).unwrap(), Path::new("busybox"));
    assert!(root.join("written-through-link").exists());
    assert!(!Path::new("/written-through-link").exists());
}

#[test]
fn hostile_entries_are_refused_with_the_reason() {
    assert!(refused(&[E::File("/etc/passwd", b"x")]).contains("absolute path"));
    assert!(refused(&[E::File("a/../../escape", b"x")]).contains("`..`"));
    assert!(refused(&[E::Char("dev/sda")]).contains("device node"));
    assert!(refused(&[E::Dir("a"), E::Sym("a/out", "../../etc")]).contains("leaves the image's root"));
    assert!(refused(&[E::Hard("x", "/etc/passwd")]).contains("leaves the image's root"));
    assert!(refused(&[E::Hard("x", "../etc/passwd")]).contains("leaves the image's root"));
    assert!(refused(&[E::Hard("x", "missing")]).contains("no file of the image"));
}

#[test]
fn decompression_bombs_stop_at_the_limits() {
    let zeros = vec![0u8; 4 << 20];
    let bomb = gzip(&layer(&[E::File("a", &zeros), E::File("b", &zeros)]));
    assert!(bomb.len() < 64 * 1024, "compresses well: {}", bomb.len());
    let dir = tempfile::tempdir().unwrap();
    let per_file = Limits { max_file_bytes: 1 << 20, ..Limits::default() };
    let why = apply(dir.path(), &bomb[..], &per_file, &mut Budget::default()).unwrap_err();
    assert!(why.to_string().contains("limit for one file"), "{why}");
    let total = Limits { max_total_bytes: 6 << 20, ..Limits::default() };
    let why = apply(dir.path(), &bomb[..], &total, &mut Budget::default()).unwrap_err();
    assert!(why.to_string().contains("limit for one image"), "{why}");
    let entries = Limits { max_entries: 1, ..Limits::default() };
    let why = apply(dir.path(), &bomb[..], &entries, &mut Budget::default()).unwrap_err();
    assert!(why.to_string().contains("entries"), "{why}");
}

#[test]
fn resolve_never_leaves_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::os::unix::fs::symlink("/", root.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../..", root.join("rel")).unwrap();
    assert_eq!(resolve(root, Path::new("abs/etc")).unwrap(), root.join("etc"));
    assert_eq!(resolve(root, Path::new("rel/etc")).unwrap(), root.join("etc"));
    std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
    assert!(resolve(root, Path::new("loop/x")).is_err());
}

#[test]
fn zstd_layers_of_several_frames_unpack() {
    use ruzstd::encoding::{compress_to_vec, CompressionLevel};
    let tar = layer(&[E::Dir("etc"), E::File("etc/zstd", b"frames")]);
    let (first, second) = tar.split_at(700);
    let mut data = compress_to_vec(first, CompressionLevel::Fastest);
    // A skippable frame between the two (as zstd:chunked writes its table of contents).
    data.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
    data.extend_from_slice(&3u32.to_le_bytes());
    data.extend_from_slice(b"toc");
    data.extend_from_slice(&compress_to_vec(second, CompressionLevel::Fastest));
    let dir = tempfile::tempdir().unwrap();
    apply_all(dir.path(), &[data]).unwrap();
    assert_eq!(fs::read(dir.path().join("etc/zstd")).unwrap(), b"frames");
}
