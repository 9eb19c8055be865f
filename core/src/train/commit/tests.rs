//! The commit protocol against damaged files, leftovers of killed writers and failing writes.

use super::*;
use std::sync::Arc;

fn fresh(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sepo-commit-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

const A: &[(&str, &[u8])] = &[("model.safetensors", b"weights-a"), ("trainer.json", b"{}")];
const B: &[(&str, &[u8])] = &[
    ("model.safetensors", b"weights-b, longer"),
    ("trainer.json", b"{\"round\": 2}"),
];

fn published(root: &Path) -> Committed {
    Committed::open(root)
        .unwrap()
        .expect("a published generation")
}

/// Every entry of `root` that is not a generation, the manifest or the lock.
fn leftovers(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != MANIFEST && n != LOCK && parse_generation(n).is_none())
        .collect();
    out.sort();
    out
}

fn problem(r: Result<Vec<u8>>) -> Integrity {
    match r {
        Err(Error::CheckpointIntegrity { problem, .. }) => problem,
        other => panic!("expected an integrity error, got {other:?}"),
    }
}

#[test]
fn commits_publish_whole_generations_and_keep_the_last_k() {
    let root = fresh("publish");
    assert_eq!(Committed::open(&root).unwrap(), None);
    assert_eq!(commit(&root, A, 2).unwrap(), 1);
    assert_eq!(commit(&root, B, 2).unwrap(), 2);
    let c = published(&root);
    assert_eq!(c.generation(), Some(2));
    assert_eq!(c.read("model.safetensors").unwrap(), b"weights-b, longer");
    c.verify().unwrap();
    // The previous generation is kept and verifiable through its own manifest copy.
    let old = Committed::open_generation(&root, 1).unwrap();
    assert_eq!(old.read("model.safetensors").unwrap(), b"weights-a");
    assert_eq!(commit(&root, A, 2).unwrap(), 3);
    assert_eq!(generations(&root), vec![2, 3]);
    assert_eq!(commit(&root, B, 1).unwrap(), 4);
    assert_eq!(generations(&root), vec![4]);
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
    fs::remove_dir_all(&root).ok();
}

#[test]
fn truncated_missing_and_flipped_files_are_each_their_typed_error() {
    let root = fresh("damage");
    commit(&root, B, 2).unwrap();
    let c = published(&root);
    let path = c.path("model.safetensors");
    let good = fs::read(&path).unwrap();

    fs::write(&path, &good[..good.len() - 3]).unwrap();
    assert_eq!(
        problem(c.read("model.safetensors")),
        Integrity::Size {
            expected: good.len() as u64,
            found: good.len() as u64 - 3
        }
    );

    let mut flipped = good.clone();
    flipped[4] ^= 0x01;
    fs::write(&path, &flipped).unwrap();
    assert!(matches!(
        problem(c.read("model.safetensors")),
        Integrity::Checksum { ref expected, .. } if *expected == crc64_hex(&good)
    ));

    fs::remove_file(&path).unwrap();
    assert_eq!(problem(c.read("model.safetensors")), Integrity::Missing);
    assert!(matches!(
        c.verify(),
        Err(Error::CheckpointIntegrity {
            problem: Integrity::Missing,
            ..
        })
    ));
    // A file the generation never held is missing too, not read from elsewhere.
    assert_eq!(problem(c.read("optimizer.safetensors")), Integrity::Missing);
    fs::remove_dir_all(&root).ok();
}

#[test]
fn damaged_manifests_are_corrupt_checkpoints() {
    let root = fresh("manifest");
    commit(&root, A, 2).unwrap();
    let path = root.join(MANIFEST);
    let good = fs::read_to_string(&path).unwrap();
    for bad in [
        good[..good.len() / 2].to_string(),
        good.replace(FORMAT, "sepo-checkpoint/0"),
        good.replace("\"trainer.json\"", "\"../trainer.json\""),
        good.replacen(&crc64_hex(b"{}"), "not-a-crc", 1),
    ] {
        fs::write(&path, bad).unwrap();
        assert!(
            matches!(Committed::open(&root), Err(Error::CorruptCheckpoint { .. })),
            "{:?}",
            Committed::open(&root)
        );
    }
    fs::remove_dir_all(&root).ok();
}

/// Leftovers of killed writers (a temporary generation, a temporary manifest, a renamed but never
/// published generation, a `.tmp<pid>` file of the older per-file writes) do not disturb readers and
/// are removed by the next save or `clean`; nothing else is touched.
#[test]
fn stale_temporaries_are_cleaned_and_nothing_else_is() {
    let root = fresh("stale");
    commit(&root, A, 2).unwrap();
    let stale_gen = root.join(".gen-00000002.tmp");
    fs::create_dir(&stale_gen).unwrap();
    fs::write(stale_gen.join("model.safetensors"), b"half").unwrap();
    fs::write(root.join(".manifest-00000002.tmp"), b"{\"form").unwrap();
    fs::write(root.join("model.safetensors.tmp4242"), b"old").unwrap();
    fs::create_dir(generation_dir(&root, 7)).unwrap();
    fs::write(root.join("notes.txt"), b"mine").unwrap();
    fs::write(root.join("model.safetensors.tmpx"), b"not ours").unwrap();

    let c = published(&root);
    assert_eq!(c.generation(), Some(1));
    assert_eq!(c.read("model.safetensors").unwrap(), b"weights-a");

    let removed = clean(&root).unwrap();
    assert_eq!(removed.len(), 4, "{removed:?}");
    assert_eq!(
        leftovers(&root),
        vec!["model.safetensors.tmpx", "notes.txt"]
    );
    assert_eq!(generations(&root), vec![1]);
    published(&root).verify().unwrap();

    // The same through a save, which then numbers on from the published generation.
    fs::create_dir(&stale_gen).unwrap();
    fs::create_dir(generation_dir(&root, 7)).unwrap();
    assert_eq!(commit(&root, B, 2).unwrap(), 2);
    assert_eq!(
        leftovers(&root),
        vec!["model.safetensors.tmpx", "notes.txt"]
    );
    assert_eq!(generations(&root), vec![1, 2]);
    fs::remove_dir_all(&root).ok();
}

/// A full disk at any step of a commit: the error is returned, the previous generation stays
/// published and intact, the failed one leaves nothing behind, and the next commit succeeds.
#[test]
fn a_full_disk_at_any_step_leaves_the_last_commit_intact() {
    let root = fresh("full");
    commit(&root, A, 2).unwrap();
    let points = [
        "begin",
        "write model.safetensors",
        "synced model.safetensors",
        "write trainer.json",
        "synced trainer.json",
        "write generation manifest",
        "synced generation",
        "renamed generation",
        "write manifest",
    ];
    for point in points {
        let target = point.to_string();
        set_fault_hook(
            &root,
            Some(Arc::new(move |p: &str| {
                if p == target {
                    Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
                } else {
                    Ok(())
                }
            })),
        );
        let err = commit(&root, B, 2).unwrap_err();
        assert!(
            matches!(&err, Error::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull),
            "{point}: {err:?}"
        );
        let c = published(&root);
        assert_eq!(c.generation(), Some(1), "{point}");
        assert_eq!(c.read("model.safetensors").unwrap(), b"weights-a");
        c.verify().unwrap();
        assert!(
            leftovers(&root).is_empty(),
            "{point}: {:?}",
            leftovers(&root)
        );
        assert_eq!(generations(&root), vec![1], "{point}");
    }
    set_fault_hook(&root, None);
    assert_eq!(commit(&root, B, 2).unwrap(), 2);
    fs::remove_dir_all(&root).ok();
}

#[test]
fn a_second_writer_is_refused_while_the_lock_is_held() {
    let root = fresh("busy");
    commit(&root, A, 2).unwrap();
    let held = lock(&root).unwrap();
    assert!(matches!(
        commit(&root, B, 2),
        Err(Error::CheckpointBusy { .. })
    ));
    assert_eq!(clean(&root).unwrap(), Vec::<PathBuf>::new());
    drop(held);
    assert_eq!(commit(&root, B, 2).unwrap(), 2);
    fs::remove_dir_all(&root).ok();
}

#[test]
fn bad_commit_arguments_are_typed_errors() {
    let root = fresh("args");
    let name = |r: Result<u64>| match r {
        Err(Error::InvalidParameter { name, .. }) => name,
        other => panic!("{other:?}"),
    };
    assert_eq!(name(commit(&root, A, 0)), "keep_last");
    for bad in ["", MANIFEST, ".hidden", "a/b", "../x"] {
        assert_eq!(name(commit(&root, &[(bad, b"x")], 1)), "file name", "{bad}");
    }
    assert_eq!(
        name(commit(&root, &[("a", b"x"), ("a", b"y")], 1)),
        "file name"
    );
    assert!(matches!(commit(&root, &[], 1), Err(Error::Empty { .. })));
    fs::remove_dir_all(&root).ok();
}

#[test]
fn a_flat_directory_of_the_older_layout_opens_unverified() {
    let root = fresh("legacy");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("model.safetensors"), b"old weights").unwrap();
    let c = published(&root);
    assert!(!c.is_verified());
    assert_eq!(c.read("model.safetensors").unwrap(), b"old weights");
    assert_eq!(problem(c.read("config.json")), Integrity::Missing);
    fs::remove_dir_all(&root).ok();
}
