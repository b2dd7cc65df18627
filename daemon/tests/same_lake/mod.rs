//! Asserting that several catalogs of one lake read back identically.

#![allow(dead_code)]

use warmlake_daemon::catalog::{CatalogLocation, CatalogReader, LakeSnapshot};
use warmlake_daemon::local_query::query_text;

/// The rows of `sql` over a snapshot, sorted (the comparison is of sets of rows).
pub fn rows(snap: &LakeSnapshot, sql: &str) -> Vec<Vec<String>> {
    let mut r = query_text(snap, sql).unwrap_or_else(|e| panic!("{sql}: {e}")).rows;
    r.sort();
    r
}

/// Asserts that every reader sees the same lake at every snapshot: the same snapshot list, the
/// same whole [`LakeSnapshot`] (schemas, tables, columns, files, deletes, inlined rows, tags,
/// data root), and the same rows for every table through DuckLake semantics. The first reader
/// is the reference; each is named by its label in failures. Returns the snapshots compared.
///
/// One difference is the backend's, not the reader's: SQLite stores an inlined `DECIMAL(10,2)`
/// with REAL affinity, so `12.50` comes back as the text `12.5`. For SQLite catalogs the inlined
/// values are therefore compared through the query results (cast to the column's type), and the
/// rest of the inlined rows (schema version, column ids, row count) as values.
pub fn assert_same_lake(readers: &[(&str, &CatalogReader)]) -> usize {
    let [(ref_name, reference), others @ ..] = readers else { panic!("no readers") };
    assert!(!others.is_empty(), "nothing to compare {ref_name} with");
    let snapshots = reference.snapshots().expect("snapshots");
    for (name, reader) in others {
        assert_eq!(reader.snapshots().expect("snapshots"), snapshots, "snapshot list of {name} vs {ref_name}");
    }
    for s in &snapshots {
        let want = reference.read_snapshot(s.id).unwrap_or_else(|e| panic!("{ref_name} at {}: {e}", s.id));
        let tables: Vec<(String, Vec<Vec<String>>)> = want
            .tables
            .iter()
            .map(|t| {
                let sql = format!("SELECT * FROM \"{}\".\"{}\"", t.schema, t.name);
                let r = rows(&want, &sql);
                (sql, r)
            })
            .collect();
        for (name, reader) in others {
            let got = reader.read_snapshot(s.id).unwrap_or_else(|e| panic!("{name} at {}: {e}", s.id));
            // Rows first: a difference in the data is the clearer failure. They can differ only
            // if the snapshots do, which the whole-value comparison then pins down.
            for (sql, want_rows) in &tables {
                assert_eq!(&rows(&got, sql), want_rows, "snapshot {} of {name} vs {ref_name}: {sql}", s.id);
            }
            let sqlite = |r: &CatalogReader| matches!(r.location(), CatalogLocation::Sqlite(_));
            let (got, want) = if sqlite(reader) || sqlite(reference) {
                (without_inlined_text(got), without_inlined_text(want.clone()))
            } else {
                (got, want.clone())
            };
            assert_eq!(got, want, "snapshot {} of {name} vs {ref_name}", s.id);
        }
    }
    snapshots.len()
}

/// The snapshot with each inlined value replaced by whether it is NULL.
fn without_inlined_text(mut snap: LakeSnapshot) -> LakeSnapshot {
    for table in &mut snap.tables {
        for inlined in &mut table.inlined {
            for row in &mut inlined.rows {
                for value in row.iter_mut() {
                    *value = value.as_ref().map(|_| String::new());
                }
            }
        }
    }
    snap
}
