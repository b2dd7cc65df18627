//! Column heat: how much people read each column (Parquet field id) of each table lately.
//!
//! Every demand read adds one to the score of each column chunk it overlaps; scores halve
//! every [`HALF_LIFE`], so what was read last month weighs little against what was read
//! today. A column is *hot* (fetched for new data files after a refresh, and by `hot`
//! prewarm jobs) while its decayed score is at least [`HOT_THRESHOLD`]: one read keeps it hot
//! for one half-life. Scores are capped at [`MAX_SCORE`], so a column nobody reads any more
//! stops being hot at most `log2(MAX_SCORE / HOT_THRESHOLD)` half-lives (four weeks) after its
//! last read, however heavily it was read before: a read counts FUSE read calls, not queries,
//! and one scan makes hundreds of them.
//!
//! The map lives in memory behind a leaf lock on the read path (one lookup and one `powf` per
//! overlapped column); changed entries are marked and written to the index in batches
//! ([`Heat::take_dirty`]) by the daemon's periodic loop and at shutdown, and read back when
//! the cache opens, so heat survives restarts. Times are Unix seconds passed in by the caller,
//! which keeps the arithmetic testable with a fixed clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How long a read takes to lose half its weight. A week: the rhythm of most reporting (a
/// column read every Monday stays hot), short enough that a finished project cools in weeks.
pub const HALF_LIFE_SECS: f64 = 7.0 * 24.0 * 3600.0;

/// The score from which a column is hot: one read within about the last half-life.
pub const HOT_THRESHOLD: f64 = 0.5;

/// The highest score: bounds how long past heavy use keeps a column hot (see the module docs).
pub const MAX_SCORE: f64 = 8.0;

/// A score below this is forgotten when the cache opens (its row deleted): about seven weeks
/// after the last read of a column read once, ten after heavy use. Without it, every column
/// ever read would keep a row forever.
pub const FORGOTTEN: f64 = 0.01;

/// One column's score as of `updated_unix`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub value: f64,
    pub updated_unix: i64,
}

impl Score {
    /// The score decayed to `now` (a clock that went backwards decays nothing).
    pub fn at(&self, now: i64) -> f64 {
        let elapsed = now.saturating_sub(self.updated_unix).max(0) as f64;
        if elapsed == 0.0 { self.value } else { self.value * 0.5f64.powf(elapsed / HALF_LIFE_SECS) }
    }

    /// Adds `reads` at `now`.
    fn add(&mut self, reads: f64, now: i64) {
        self.value = (self.at(now) + reads).min(MAX_SCORE);
        self.updated_unix = self.updated_unix.max(now);
    }
}

/// A persisted score: one row of the index's `heat` table.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatRow {
    pub table_name: String,
    pub column_id: i32,
    pub score: Score,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    score: Score,
    /// Changed since it was last handed to [`Heat::take_dirty`].
    dirty: bool,
}

/// Scores per table and column.
#[derive(Debug, Default)]
pub struct Heat {
    tables: HashMap<String, BTreeMap<i32, Entry>>,
    /// Whether any entry is dirty, so an idle periodic save costs one check.
    any_dirty: bool,
}

/// Splits saved rows into those worth keeping at `now` and those decayed below [`FORGOTTEN`].
pub fn split_forgotten(rows: Vec<HeatRow>, now: i64) -> (Vec<HeatRow>, Vec<HeatRow>) {
    rows.into_iter().partition(|r| r.score.at(now) >= FORGOTTEN)
}

impl Heat {
    /// The scores saved in the index (clean: they are on disk already).
    pub fn from_rows(rows: Vec<HeatRow>) -> Heat {
        let mut heat = Heat::default();
        for r in rows {
            heat.tables.entry(r.table_name).or_default().insert(r.column_id, Entry { score: r.score, dirty: false });
        }
        heat
    }

    /// Counts one read of each of `columns` of `table` at `now`.
    pub fn record(&mut self, table: &str, columns: impl IntoIterator<Item = i32>, now: i64) {
        let scores = match self.tables.get_mut(table) {
            Some(s) => s,
            None => self.tables.entry(table.to_string()).or_default(),
        };
        for id in columns {
            let entry =
                scores.entry(id).or_insert(Entry { score: Score { value: 0.0, updated_unix: now }, dirty: false });
            entry.score.add(1.0, now);
            entry.dirty = true;
            self.any_dirty = true;
        }
    }

    /// Every column of `table` with a score, decayed to `now`.
    pub fn scores(&self, table: &str, now: i64) -> BTreeMap<i32, f64> {
        self.tables.get(table).map(|s| s.iter().map(|(id, e)| (*id, e.score.at(now))).collect()).unwrap_or_default()
    }

    /// The hot columns of `table` at `now`: decayed score at least [`HOT_THRESHOLD`].
    pub fn hot(&self, table: &str, now: i64) -> BTreeSet<i32> {
        self.scores(table, now).into_iter().filter(|(_, s)| *s >= HOT_THRESHOLD).map(|(id, _)| id).collect()
    }

    /// Whether any score changed since the last [`Heat::take_dirty`].
    pub fn has_changes(&self) -> bool {
        self.any_dirty
    }

    /// Marks a batch that could not be saved as changed again, so the next save retries it.
    pub fn restore_dirty(&mut self, batch: &[HeatRow]) {
        for r in batch {
            if let Some(e) = self.tables.get_mut(&r.table_name).and_then(|s| s.get_mut(&r.column_id)) {
                e.dirty = true;
                self.any_dirty = true;
            }
        }
    }

    /// The entries changed since the last call, marked clean: the batch to save.
    pub fn take_dirty(&mut self) -> Vec<HeatRow> {
        if !std::mem::take(&mut self.any_dirty) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (table, scores) in &mut self.tables {
            for (id, e) in scores.iter_mut().filter(|(_, e)| e.dirty) {
                e.dirty = false;
                out.push(HeatRow { table_name: table.clone(), column_id: *id, score: e.score });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::index::Index;

    const T0: i64 = 1_800_000_000;
    const WEEK: i64 = 7 * 24 * 3600;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn scores_halve_every_half_life_and_reads_add_up() {
        let mut heat = Heat::default();
        heat.record("web.events", [4, 5], T0);
        heat.record("web.events", [5], T0);
        let now = heat.scores("web.events", T0);
        assert!(close(now[&4], 1.0) && close(now[&5], 2.0), "{now:?}");
        let week_later = heat.scores("web.events", T0 + WEEK);
        assert!(close(week_later[&4], 0.5) && close(week_later[&5], 1.0), "{week_later:?}");
        // A read a week later adds to what is left, not to the old total.
        heat.record("web.events", [4], T0 + WEEK);
        assert!(close(heat.scores("web.events", T0 + WEEK)[&4], 1.5));
        assert!(close(heat.scores("web.events", T0 + 2 * WEEK)[&4], 0.75));
        assert!(heat.scores("sales.orders", T0).is_empty());
    }

    #[test]
    fn a_column_read_once_is_hot_for_a_half_life_then_cools() {
        let mut heat = Heat::default();
        heat.record("t", [1], T0);
        assert_eq!(heat.hot("t", T0), BTreeSet::from([1]));
        assert_eq!(heat.hot("t", T0 + WEEK), BTreeSet::from([1]), "exactly one half-life: 0.5 is still hot");
        assert!(heat.hot("t", T0 + WEEK + 3600).is_empty());
    }

    #[test]
    fn heavy_past_use_cools_within_four_half_lives() {
        let mut heat = Heat::default();
        for _ in 0..10_000 {
            heat.record("t", [1], T0);
        }
        assert!(close(heat.scores("t", T0)[&1], MAX_SCORE), "capped");
        assert_eq!(heat.hot("t", T0 + 4 * WEEK), BTreeSet::from([1]));
        assert!(heat.hot("t", T0 + 4 * WEEK + 3600).is_empty(), "nobody read it for four weeks");
    }

    #[test]
    fn a_clock_that_goes_back_decays_nothing() {
        let mut heat = Heat::default();
        heat.record("t", [1], T0);
        heat.record("t", [1], T0 - 3600);
        assert!(close(heat.scores("t", T0 - 3600)[&1], 2.0));
        assert!(close(heat.scores("t", T0)[&1], 2.0), "kept at the later time");
    }

    #[test]
    fn only_changed_scores_are_saved() {
        let mut heat = Heat::default();
        assert!(heat.take_dirty().is_empty());
        heat.record("a.b", [1, 2], T0);
        let batch = heat.take_dirty();
        assert_eq!(batch.iter().map(|r| r.column_id).collect::<Vec<_>>(), [1, 2]);
        assert!(heat.take_dirty().is_empty(), "saved once");
        heat.record("a.b", [2], T0 + 10);
        let batch = heat.take_dirty();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].score.updated_unix, T0 + 10);
        assert!(close(batch[0].score.value, 0.5f64.powf(10.0 / HALF_LIFE_SECS) + 1.0), "{batch:?}");
        assert!(!heat.has_changes());
        // A batch that could not be saved is offered again.
        heat.restore_dirty(&batch);
        assert!(heat.has_changes());
        assert_eq!(heat.take_dirty(), batch);
    }

    /// Saved, the index reopened (a daemon restart), loaded: the same scores, decaying on.
    #[test]
    fn heat_survives_reopening_the_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.sqlite");
        let mut heat = Heat::default();
        heat.record("web.events", [4, 5], T0);
        heat.record("web.events", [5], T0 + 60);
        heat.record("sales.orders", [2], T0 + 60);
        {
            let (mut index, _) = Index::open(&path).expect("open");
            index.save_heat(&heat.take_dirty()).expect("save");
            // A later batch replaces the rows it touches.
            heat.record("web.events", [4], T0 + 120);
            index.save_heat(&heat.take_dirty()).expect("save again");
        }
        let (mut index, _) = Index::open(&path).expect("reopen");
        let loaded = Heat::from_rows(index.load_heat().expect("load"));
        let later = T0 + 3 * WEEK;
        assert_eq!(loaded.scores("web.events", later), heat.scores("web.events", later));
        assert_eq!(loaded.scores("sales.orders", later), heat.scores("sales.orders", later));
        assert_eq!(loaded.hot("web.events", T0 + WEEK), BTreeSet::from([4, 5]));
        assert!(loaded.hot("web.events", later).is_empty(), "three weeks idle: cold");
        let mut loaded = loaded;
        assert!(loaded.take_dirty().is_empty(), "what was loaded is on disk already");

        // Months later every score has decayed below FORGOTTEN: the rows go.
        let (keep, forget) = split_forgotten(index.load_heat().expect("load"), T0 + 10 * WEEK);
        assert!(keep.is_empty() && forget.len() == 3, "{keep:?}");
        let (keep, _) = split_forgotten(index.load_heat().expect("load"), T0 + WEEK);
        assert_eq!(keep.len(), 3, "a week later all are kept");
        index.forget_heat(&forget).expect("forget");
        assert!(index.load_heat().expect("load").is_empty());
    }
}
