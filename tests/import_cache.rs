//! The local model cache in the hub layout (issue 18): a model id resolves to a snapshot folder
//! through `refs/<revision>` or a commit hash, offline; what the cache does not hold is a typed error.

use std::path::{Path, PathBuf};

use sepo::dfdx::prelude::Cpu;
use sepo::score::import::{import_dir, resolve_model, HubCache};
use sepo::score::ScoreModel;
use sepo::Error;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(rel)
}

#[test]
fn a_model_id_resolves_to_its_snapshot_offline() {
    let root = std::env::temp_dir().join(format!("sepo-hub-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let repo = root.join("models--louaaron--sedd-tiny");
    let snap = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), format!("{commit}\n")).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture(&format!("sedd-tiny/{f}")), snap.join(f)).unwrap();
    }

    let cache = HubCache::new(&root);
    assert_eq!(cache.snapshot("louaaron/sedd-tiny", "main").unwrap(), snap);
    assert_eq!(cache.snapshot("louaaron/sedd-tiny", commit).unwrap(), snap);
    let model = import_dir::<f32, Cpu>(
        &cache.snapshot("louaaron/sedd-tiny", "main").unwrap(),
        &Cpu::default(),
    )
    .unwrap();
    assert_eq!(model.num_states(), 28);

    for (id, rev) in [
        ("louaaron/sedd-tiny", "v2"),
        ("louaaron/sedd-small", "main"),
    ] {
        assert!(
            matches!(cache.snapshot(id, rev), Err(Error::ModelNotCached { .. })),
            "{id}@{rev}"
        );
    }
    assert!(matches!(
        cache.snapshot("louaaron/sedd-tiny", "../../etc"),
        Err(Error::InvalidParameter { .. })
    ));
    // A local folder resolves to itself, whatever the cache.
    let local = fixture("sedd-tiny");
    assert_eq!(resolve_model(local.to_str().unwrap(), None).unwrap(), local);
}
