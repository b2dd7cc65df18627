//! The lake as a folder: a real FUSE mount of the daemon's tree over generated and reference
//! lakes. Files read through the mount equal the source byte for byte, and `lake.sql` read
//! from the mount gives DuckDB the DuckLake extension's answers at every kept snapshot.

mod fixtures;

use std::path::Path;
use std::sync::Arc;

use warmlake_daemon::catalog::{CatalogLocation, CatalogReader, LakeSnapshot};
use warmlake_daemon::generate::{self, CatalogKind, LakeSpec};
use warmlake_daemon::governance::Governed;
use warmlake_daemon::local_query::query_text;
use warmlake_daemon::tree::{LakeTree, LocalSource};
use warmlake_fuse_mount::{MountOptions, mount, tree_conformance};

fn read_all(reader: &CatalogReader) -> Vec<LakeSnapshot> {
    reader.snapshots().expect("snapshots").iter().map(|s| reader.read_snapshot(s.id).expect("snapshot")).collect()
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() { files_under(&p, out) } else { out.push(p) }
    }
}

#[test]
fn generated_lake_through_the_mount() {
    if !fixtures::fuse_available("generated_lake_through_the_mount") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = LakeSpec { events_rows: 300_000, events_files: 3, row_group_rows: 50_000, ..LakeSpec::default() };
    let lake = generate::generate(&tmp.path().join("lake"), &spec, &[CatalogKind::DuckDb]).expect("generate");
    let reader = CatalogReader::open(&CatalogLocation::parse(&lake.catalogs[0].to_string_lossy()), None).expect("open");
    let current = reader.read_snapshot(lake.latest_snapshot).expect("latest");
    let kept = [reader.read_snapshot(lake.latest_snapshot - 1).expect("previous")];

    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mountpoint");
    let tree = Arc::new(LakeTree::new(&mnt, Arc::new(LocalSource::new(current.data_root.clone()))));
    let governed = |s: &LakeSnapshot| Governed::unrestricted(s.clone());
    tree.publish(&governed(&current), &kept.iter().map(governed).collect::<Vec<_>>());
    tree.set_status(&serde_json::json!({"snapshot": current.snapshot.id}));
    let report = tree_conformance(tree.as_ref()).expect("the daemon's tree conforms");
    assert!(report.files > 10, "{report:?}");
    let mounted = mount(tree.clone(), &mnt, &MountOptions::default()).expect("mount");

    // Listings and sizes come from the catalog; bytes equal the source files.
    let orders = mnt.join("sales/orders");
    let names: Vec<String> = std::fs::read_dir(&orders)
        .expect("ls")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    let table = current.table("sales", "orders").expect("orders");
    assert_eq!(names.iter().filter(|n| n.ends_with(".parquet")).count(), table.files.len());
    assert!(names.contains(&"_deletes".to_string()), "{names:?}");
    let mut files = Vec::new();
    files_under(&mnt.join("sales"), &mut files);
    files_under(&mnt.join("web"), &mut files);
    let mut compared = 0;
    for t in &current.tables {
        for f in &t.files {
            let through_mount =
                std::fs::read(mnt.join(&t.schema).join(&t.name).join(&f.name)).expect("read through the mount");
            let source = std::fs::read(format!("{}{}", current.data_root, f.key)).expect("source");
            assert!(through_mount == source, "{}: bytes differ", f.name);
            assert_eq!(
                std::fs::metadata(mnt.join(&t.schema).join(&t.name).join(&f.name)).expect("stat").len(),
                f.size as u64
            );
            compared += 1;
        }
    }
    assert_eq!(compared, files.iter().filter(|p| !p.to_string_lossy().contains("_deletes")).count());

    // DuckDB reads lake.sql from the mount; the views read the files through the mount.
    let script = std::fs::read_to_string(mnt.join("lake.sql")).expect("lake.sql");
    assert!(script.contains(&mnt.to_string_lossy().into_owned()), "lake.sql reads through the mount");
    let db = duckdb::Connection::open_in_memory().expect("duckdb");
    db.execute_batch(&script).expect("lake.sql runs");
    let q = "SELECT region, count(*), sum(amount), count(*) FILTER (WHERE channel = 'app') FROM sales.orders GROUP BY 1 ORDER BY 1";
    let mut stmt = db.prepare(&format!("SELECT COLUMNS(*)::VARCHAR FROM ({q})")).expect("prepare");
    let got: Vec<Vec<String>> = stmt
        .query_map([], |r| (0..4).map(|i| r.get::<_, String>(i)).collect())
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(got, query_text(&current, q).expect("direct").rows);
    let events: i64 = db.query_row("SELECT count(*) FROM web.events", [], |r| r.get(0)).expect("events");
    assert_eq!(events, 300_000);

    // Kept snapshots and status.
    let prev = mnt.join(format!(".snapshots/{}/lake.sql", kept[0].snapshot.id));
    assert!(std::fs::read_to_string(prev).expect("kept lake.sql").contains(".snapshots"));
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mnt.join(".warmlake/status.json")).expect("status")).expect("json");
    assert_eq!(status["snapshot"], current.snapshot.id);
    // status.json changes at its path: readers see the new content whole, whatever size the
    // kernel cached with the old attributes.
    let bigger = serde_json::json!({"snapshot": current.snapshot.id, "note": "x".repeat(5000)});
    tree.set_status(&bigger);
    let again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mnt.join(".warmlake/status.json")).expect("status")).expect("json");
    assert_eq!(again, bigger);

    // Read-only, and unknown paths are ENOENT.
    assert!(std::fs::write(mnt.join("sales/new.parquet"), b"x").is_err());
    assert_eq!(std::fs::metadata(mnt.join("sales/nope")).expect_err("missing").kind(), std::io::ErrorKind::NotFound);
    mounted.unmount().expect("unmount");
}

/// `lake.sql` at every kept snapshot, read from the mount, equals the extension's answers.
#[test]
fn reference_lakes_through_the_mount_at_every_snapshot() {
    if !fixtures::fuse_available("reference_lakes_through_the_mount_at_every_snapshot") {
        return;
    }
    for name in ["shop", "types"] {
        let dir = fixtures::root().join("reference").join(name);
        let reader =
            CatalogReader::open(&CatalogLocation::parse(&dir.join("catalog.ducklake").to_string_lossy()), None)
                .expect("open");
        let all = read_all(&reader);
        let current = all.last().expect("a snapshot").clone();
        let tmp = tempfile::tempdir().expect("tempdir");
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mountpoint");
        let tree = Arc::new(LakeTree::new(&mnt, Arc::new(LocalSource::new(current.data_root.clone()))));
        tree.publish(
            &Governed::unrestricted(current.clone()),
            &all.iter().cloned().map(Governed::unrestricted).collect::<Vec<_>>(),
        );
        let mounted = mount(tree, &mnt, &MountOptions::default()).expect("mount");
        let mut checked = 0;
        let mut expected: Vec<_> = std::fs::read_dir(dir.join("expected"))
            .expect("expected")
            .map(|e| e.expect("e").path())
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect();
        expected.sort();
        for path in expected {
            let stem = path.file_stem().and_then(|s| s.to_str()).expect("stem").to_string();
            let (qualified, snap) = stem.split_once('@').expect("name@snapshot");
            let db = duckdb::Connection::open_in_memory().expect("duckdb");
            let script = std::fs::read_to_string(mnt.join(format!(".snapshots/{snap}/lake.sql"))).expect("lake.sql");
            db.execute_batch(&script).unwrap_or_else(|e| panic!("{stem}: {e}"));
            fixtures::assert_equals_expected(&db, qualified, &path, &stem);
            checked += 1;
        }
        assert_eq!(checked, if name == "shop" { 50 } else { 3 });
        mounted.unmount().expect("unmount");
    }
}
