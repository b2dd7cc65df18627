//! The cache's in-memory state: every object and piece the index holds, plus what is busy
//! right now (pieces being read, ranges being written or punched) and the byte budget.
//!
//! It mirrors the SQLite index (loaded at start, updated in the same critical section as each
//! index change) so that planning a read never queries SQLite. Functions here take
//! `&mut State`, i.e. they run with the cache's state lock held, and do no I/O.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use super::index::PieceRow;
use super::range_set::RangeSet;

/// One verified piece of an object's data file.
#[derive(Debug, Clone)]
pub struct Piece {
    pub len: u64,
    pub crc32c: u32,
    pub stored_at: i64,
    pub last_access: i64,
    pub hits: u64,
    pub pinned: bool,
    pub table_name: Option<String>,
    pub column_id: Option<i32>,
    /// Readers copying this piece out right now; eviction skips it while > 0.
    pub readers: u32,
    /// Access statistics changed since the last flush to the index.
    pub dirty: bool,
}

/// One cached object.
#[derive(Debug)]
pub struct Object {
    pub id: i64,
    pub size: u64,
    pub etag: Option<String>,
    /// Data file path relative to `objects/`.
    pub file_name: String,
    /// Pieces by start offset; disjoint.
    pub pieces: BTreeMap<u64, Piece>,
    /// Union of the pieces.
    pub present: RangeSet,
    /// Ranges being written or punched: no one else may claim them.
    pub busy: RangeSet,
}

/// Everything the state lock protects.
#[derive(Debug, Default)]
pub struct State {
    pub objects: HashMap<String, Object>,
    /// Object id → cache key.
    pub keys: HashMap<i64, String>,
    /// Bytes in pieces.
    pub stored: u64,
    /// Bytes claimed by writes in progress; counted against the budget before they land.
    pub reserved: u64,
}

/// A piece chosen for eviction, already removed from the state and the index.
#[derive(Debug, Clone)]
pub struct Victim {
    pub object_id: i64,
    pub cache_key: String,
    pub file_name: String,
    pub range: Range<u64>,
    pub table_name: Option<String>,
}

impl State {
    /// Adds a piece loaded from or just written to the index.
    pub fn add_piece(&mut self, key: &str, row: &PieceRow) {
        let Some(obj) = self.objects.get_mut(key) else { return };
        let range = row.start..row.start + row.len;
        if obj.present.intersection(range.clone()).iter().any(|r| r.start < r.end) {
            // Never overlap pieces; the caller only writes missing ranges, so this is a bug
            // guard rather than a path that happens.
            return;
        }
        obj.present.insert(range);
        obj.pieces.insert(
            row.start,
            Piece {
                len: row.len,
                crc32c: row.crc32c,
                stored_at: row.stored_at,
                last_access: row.last_access,
                hits: row.hits,
                pinned: row.pinned,
                table_name: row.table_name.clone(),
                column_id: row.column_id,
                readers: 0,
                dirty: false,
            },
        );
        self.stored += row.len;
    }

    /// Removes one piece from the object, returning it.
    pub fn remove_piece(&mut self, key: &str, start: u64) -> Option<Piece> {
        let obj = self.objects.get_mut(key)?;
        let piece = obj.pieces.remove(&start)?;
        obj.present.remove(start..start + piece.len);
        self.stored -= piece.len;
        Some(piece)
    }

    /// Bytes counted against the budget: stored plus reserved.
    pub fn used(&self) -> u64 {
        self.stored + self.reserved
    }

    /// Picks pieces to evict so that at least `need` bytes are freed, least valuable first:
    /// unpinned before pinned, then by `last_access + min(hits, 100) × hit_weight` (a piece
    /// read often survives longer than one read once at the same time). Pieces being read or
    /// inside a busy range are never chosen. Returns the victims (not yet removed) and the
    /// bytes they free, which may be less than `need` when not enough can go.
    pub fn choose_victims(
        &self,
        need: u64,
        hit_weight_secs: i64,
        older_than: Option<i64>,
    ) -> (Vec<(String, u64)>, u64) {
        let mut candidates: Vec<(bool, i64, &str, u64, u64)> = Vec::new();
        for (key, obj) in &self.objects {
            for (start, p) in &obj.pieces {
                if p.readers > 0 || !obj.busy.intersection(*start..start + p.len).is_empty() {
                    continue;
                }
                if let Some(cutoff) = older_than
                    && p.stored_at >= cutoff
                {
                    continue;
                }
                let score = p.last_access.saturating_add(p.hits.min(100) as i64 * hit_weight_secs);
                candidates.push((p.pinned, score, key.as_str(), *start, p.len));
            }
        }
        candidates.sort_by(|a, b| (a.0, a.1, a.2, a.3).cmp(&(b.0, b.1, b.2, b.3)));
        let mut freed = 0;
        let mut out = Vec::new();
        for (_, _, key, start, len) in candidates {
            if freed >= need {
                break;
            }
            freed += len;
            out.push((key.to_string(), start));
        }
        (out, freed)
    }

    /// Removes the chosen pieces from the state, marks their ranges busy until they are
    /// punched, and describes them for the index and the punch.
    pub fn take_victims(&mut self, chosen: &[(String, u64)]) -> Vec<Victim> {
        let mut out = Vec::new();
        for (key, start) in chosen {
            let Some(piece) = self.remove_piece(key, *start) else { continue };
            let Some(obj) = self.objects.get_mut(key) else { continue };
            let range = *start..start + piece.len;
            obj.busy.insert(range.clone());
            out.push(Victim {
                object_id: obj.id,
                cache_key: key.clone(),
                file_name: obj.file_name.clone(),
                range,
                table_name: piece.table_name,
            });
        }
        out
    }

    /// Rows whose access statistics changed since the last flush; clears the dirty marks.
    pub fn take_dirty_access(&mut self) -> Vec<(i64, u64, i64, u64, bool)> {
        let mut rows = Vec::new();
        for obj in self.objects.values_mut() {
            for (start, p) in obj.pieces.iter_mut() {
                if p.dirty {
                    p.dirty = false;
                    rows.push((obj.id, *start, p.last_access, p.hits, p.pinned));
                }
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with(pieces: &[(u64, u64, i64, u64, bool)]) -> State {
        let mut s = State::default();
        s.objects.insert(
            "k".into(),
            Object {
                id: 1,
                size: 1 << 30,
                etag: None,
                file_name: "f".into(),
                pieces: BTreeMap::new(),
                present: RangeSet::new(),
                busy: RangeSet::new(),
            },
        );
        s.keys.insert(1, "k".into());
        for &(start, len, last_access, hits, pinned) in pieces {
            let row = PieceRow {
                object_id: 1,
                start,
                len,
                crc32c: 0,
                stored_at: last_access,
                last_access,
                hits,
                pinned,
                table_name: None,
                column_id: None,
            };
            s.add_piece("k", &row);
        }
        s
    }

    #[test]
    fn victims_are_lru_weighted_by_hits_pinned_last() {
        // (start, len, last_access, hits, pinned)
        let s = state_with(&[
            (0, 10, 100, 0, false),
            (10, 10, 50, 0, true),
            (20, 10, 90, 5, false),
            (30, 10, 95, 0, false),
        ]);
        assert_eq!(s.stored, 40);
        // hit weight 10 s: scores 100, pinned, 140, 95 → order 30, 0, 20, then pinned 10.
        let (v, freed) = s.choose_victims(15, 10, None);
        assert_eq!(v, vec![("k".to_string(), 30), ("k".to_string(), 0)]);
        assert_eq!(freed, 20);
        let (v, _) = s.choose_victims(40, 10, None);
        assert_eq!(v.last(), Some(&("k".to_string(), 10)), "pinned goes last");
    }

    #[test]
    fn busy_and_read_pieces_are_never_victims() {
        let mut s = state_with(&[(0, 10, 1, 0, false), (10, 10, 2, 0, false), (20, 10, 3, 0, false)]);
        if let Some(obj) = s.objects.get_mut("k") {
            obj.pieces.get_mut(&0).expect("piece").readers = 1;
            obj.busy.insert(12..13);
        }
        let (v, freed) = s.choose_victims(100, 10, None);
        assert_eq!(v, vec![("k".to_string(), 20)]);
        assert_eq!(freed, 10);
    }

    #[test]
    fn take_victims_updates_accounting_and_marks_busy() {
        let mut s = state_with(&[(0, 10, 1, 0, false), (10, 10, 2, 0, false)]);
        let victims = s.take_victims(&[("k".to_string(), 0)]);
        assert_eq!(victims.len(), 1);
        assert_eq!(victims[0].range, 0..10);
        assert_eq!(s.stored, 10);
        let obj = &s.objects["k"];
        assert!(!obj.present.contains(&(0..10)));
        assert!(obj.busy.contains(&(0..10)));
    }

    #[test]
    fn max_age_selects_only_old_pieces() {
        let s = state_with(&[(0, 10, 100, 0, false), (10, 10, 200, 0, true)]);
        let (v, _) = s.choose_victims(u64::MAX, 10, Some(150));
        assert_eq!(v, vec![("k".to_string(), 0)]);
        let (v, _) = s.choose_victims(u64::MAX, 10, Some(300));
        assert_eq!(v.len(), 2, "pinned pieces age out too");
    }
}
