//! The policy applied to a snapshot: what this machine may show, and what it may store.
//!
//! `policy/` decides per table and column; this module turns those decisions into the three
//! things the daemon enforces:
//!
//! - **what is shown** ([`Governed::snapshot`]): denied tables are removed, denied columns are
//!   removed from their table (so the mount's `lake.sql` and the SQL socket's views never name
//!   them) and their values are blanked in inlined rows (which `lake.sql` would otherwise carry
//!   as literals);
//! - **how each table's files are read** ([`FileRules`]): whether their bytes may be stored
//!   (the strictest of the table's and all its columns' actions, because a Parquet footer holds
//!   min/max statistics of every column), and the field ids whose column chunks are refused
//!   (`EACCES`) because their column is denied;
//! - **what the mirror must not keep** ([`MirrorScrub`]): statistics (min/max values) of every
//!   column that may not be stored, and inlined rows of such columns and tables.
//!
//! `local.mode = "deny"` shows nothing at all.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use warmlake_policy::{Action, ColumnRef, Mode, Policy, TableRef};

use crate::catalog::{LakeSnapshot, TableDef};

/// How the files of one table may be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRules {
    /// Whether fetched bytes may be written to the cache.
    pub store: bool,
    /// Parquet field ids (leaves included) of denied columns: reads of their column chunks fail.
    pub denied_fields: Arc<[i32]>,
}

impl FileRules {
    /// What both allow: stored only if both let it be, every field either denies refused.
    pub fn strictest(&self, other: &FileRules) -> FileRules {
        let mut denied: Vec<i32> = self.denied_fields.iter().chain(other.denied_fields.iter()).copied().collect();
        denied.sort_unstable();
        denied.dedup();
        FileRules { store: self.store && other.store, denied_fields: denied.into() }
    }
}

impl Default for FileRules {
    fn default() -> Self {
        FileRules { store: true, denied_fields: Arc::from(Vec::new()) }
    }
}

/// What the policy allows for each table's files, by qualified name (`schema.table`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Tables (and, under `local.mode = "deny"`, everything) that may not be read at all.
    pub hidden: BTreeSet<String>,
    /// Whether nothing may be read (`local.mode = "deny"`).
    pub nothing: bool,
    /// Restricted tables; tables absent here (and not hidden) are unrestricted.
    pub rules: HashMap<String, FileRules>,
}

impl Access {
    /// Whether the policy keeps anything of the lake from this machine: a table, a column, or
    /// everything. (Read-through alone keeps nothing from being shown.)
    pub fn restricts(&self) -> bool {
        self.nothing || !self.hidden.is_empty() || self.rules.values().any(|r| !r.denied_fields.is_empty())
    }

    /// The file rules of `schema.table`, or `None` when it may not be read at all.
    pub fn rules_for(&self, qualified: &str) -> Option<FileRules> {
        if self.nothing || self.hidden.contains(qualified) {
            return None;
        }
        Some(self.rules.get(qualified).cloned().unwrap_or_default())
    }
}

/// A snapshot as the policy lets this machine see it.
#[derive(Debug, Clone)]
pub struct Governed {
    pub snapshot: LakeSnapshot,
    pub access: Access,
}

impl Governed {
    /// The snapshot with nothing restricted (a lake without a policy).
    pub fn unrestricted(snapshot: LakeSnapshot) -> Governed {
        Governed { snapshot, access: Access::default() }
    }
}

fn tags(map: &BTreeMap<String, String>) -> Vec<(String, String)> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The decisions for one table: its action and each top-level column's.
struct TableDecisions {
    table: Action,
    columns: Vec<Action>,
}

/// The strictest of the decisions for `then` (a table in a kept snapshot, with its names and
/// tags of that time) and for the same table (by id) in the current snapshot, column by column
/// (by id): a policy follows a table and its columns whatever they were called or tagged then,
/// so a column tagged `pii` today is denied in last month's snapshot too, and a table renamed
/// since is denied under its old name.
fn decide_kept(policy: &Policy, then: &TableDef, now: Option<&TableDef>) -> TableDecisions {
    let mut d = decide(policy, then);
    let Some(now) = now else { return d };
    let n = decide(policy, now);
    d.table = d.table.max(n.table);
    for (c, action) in then.columns.iter().zip(d.columns.iter_mut()) {
        let current = now.columns.iter().zip(&n.columns).find(|(nc, _)| nc.id == c.id).map(|(_, a)| *a);
        *action = (*action).max(current.unwrap_or(n.table)).max(d.table);
    }
    d
}

fn decide(policy: &Policy, t: &TableDef) -> TableDecisions {
    let table_tags = tags(&t.tags);
    let tref = TableRef::new(&t.schema, &t.name).with_tags(&table_tags);
    let table = policy.table_action(&tref);
    let columns = t
        .columns
        .iter()
        .map(|c| {
            let column_tags = tags(&c.tags);
            policy.column_action(&tref, &ColumnRef::new(&c.name).with_tags(&column_tags)).max(table)
        })
        .collect();
    TableDecisions { table, columns }
}

/// Applies `policy` to `snapshot`, the current one.
pub fn govern(policy: &Policy, snapshot: &LakeSnapshot) -> Governed {
    govern_with(policy, snapshot, |t| decide(policy, t))
}

/// Applies `policy` to `kept`, a snapshot older than `current`: each table as strictly as
/// itself then or as the same table in `current`, whichever is stricter ([`decide_kept`]).
pub fn govern_kept(policy: &Policy, kept: &LakeSnapshot, current: &LakeSnapshot) -> Governed {
    let now: HashMap<i64, &TableDef> = current.tables.iter().map(|t| (t.id, t)).collect();
    govern_with(policy, kept, |t| decide_kept(policy, t, now.get(&t.id).copied()))
}

/// Applies `policy` to what is served: `current`, and each of `kept` by its tables now
/// ([`govern_kept`]).
pub fn govern_served(policy: &Policy, current: &LakeSnapshot, kept: &[LakeSnapshot]) -> (Governed, Vec<Governed>) {
    (govern(policy, current), kept.iter().map(|k| govern_kept(policy, k, current)).collect())
}

fn govern_with(policy: &Policy, snapshot: &LakeSnapshot, decide: impl Fn(&TableDef) -> TableDecisions) -> Governed {
    let mut shown = snapshot.clone();
    let mut access = Access::default();
    if policy.mode() == Mode::Deny {
        shown.schemas.clear();
        shown.tables.clear();
        shown.views.clear();
        shown.scheduled_for_deletion.clear();
        access.nothing = true;
        return Governed { snapshot: shown, access };
    }
    shown.tables = Vec::with_capacity(snapshot.tables.len());
    for t in &snapshot.tables {
        let d = decide(t);
        if d.table == Action::Deny {
            access.hidden.insert(format!("{}.{}", t.schema, t.name));
            continue;
        }
        let strictest = d.columns.iter().copied().fold(d.table, Action::max);
        let mut denied_fields = Vec::new();
        let mut denied_ids = BTreeSet::new();
        for (c, action) in t.columns.iter().zip(&d.columns) {
            if *action == Action::Deny {
                denied_fields.extend(c.field_ids());
                denied_ids.insert(c.id);
            }
        }
        let mut table = t.clone();
        if !denied_ids.is_empty() {
            table.columns.retain(|c| !denied_ids.contains(&c.id));
            for block in &mut table.inlined {
                for (i, id) in block.column_ids.iter().enumerate() {
                    if id.is_some_and(|id| denied_ids.contains(&id)) {
                        for row in &mut block.rows {
                            if let Some(v) = row.get_mut(i) {
                                *v = None;
                            }
                        }
                    }
                }
            }
        }
        if strictest != Action::Cache {
            access.rules.insert(
                format!("{}.{}", t.schema, t.name),
                FileRules { store: strictest.may_store(), denied_fields: denied_fields.into() },
            );
        }
        shown.tables.push(table);
    }
    // A schema whose every table is denied is not shown either (an empty one still is).
    shown.schemas.retain(|schema| {
        let had = snapshot.tables.iter().any(|t| &t.schema == schema);
        !had || shown.tables.iter().any(|t| &t.schema == schema)
    });
    Governed { snapshot: shown, access }
}

/// What the mirror must drop so that nothing the policy forbids to store rests in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorScrub {
    /// Tables (by id) none of whose data may be stored: all their inlined rows go.
    pub tables: BTreeSet<i64>,
    /// Columns (table id → column ids) whose values may not be stored: their statistics and
    /// inlined values go.
    pub columns: BTreeMap<i64, BTreeSet<i64>>,
    /// Everything goes: `local.mode = "deny"`.
    pub everything: bool,
}

impl MirrorScrub {
    /// Whether there is nothing to drop.
    pub fn is_empty(&self) -> bool {
        !self.everything && self.tables.is_empty() && self.columns.is_empty()
    }
}

/// What the mirror must drop under `policy`, judged on every snapshot it holds (a table or
/// column may have had other names or tags in older snapshots; the newest decides).
pub fn mirror_scrub(policy: &Policy, snapshots: &[LakeSnapshot]) -> MirrorScrub {
    let mut scrub = MirrorScrub { everything: policy.mode() == Mode::Deny, ..MirrorScrub::default() };
    for s in snapshots {
        for t in &s.tables {
            let d = decide(policy, t);
            if !d.table.may_store() {
                scrub.tables.insert(t.id);
            }
            for (c, action) in t.columns.iter().zip(&d.columns) {
                if !action.may_store() {
                    let ids = scrub.columns.entry(t.id).or_default();
                    ids.extend(c.field_ids().into_iter().map(i64::from));
                }
            }
        }
    }
    scrub
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ColumnDef;
    use crate::catalog::{InlinedRows, SnapshotInfo};

    fn column(id: i64, name: &str, tags: &[(&str, &str)]) -> ColumnDef {
        ColumnDef {
            id,
            name: name.into(),
            ducklake_type: "varchar".into(),
            nullable: true,
            initial_default: None,
            default_value: None,
            children: Vec::new(),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn lake() -> LakeSnapshot {
        let table = |id: i64, schema: &str, name: &str, columns: Vec<ColumnDef>| TableDef {
            id,
            uuid: String::new(),
            schema: schema.into(),
            name: name.into(),
            dir: crate::lake_path::LakeKey::parse("x/").expect("key"),
            columns,
            tags: BTreeMap::new(),
            files: Vec::new(),
            inlined: vec![InlinedRows {
                schema_version: 1,
                column_ids: vec![Some(1), Some(2)],
                rows: vec![vec![Some("a".into()), Some("secret".into())]],
            }],
            inlined_deletes: Vec::new(),
            unreadable: None,
        };
        LakeSnapshot {
            snapshot: SnapshotInfo { id: 1, time: String::new(), schema_version: 1, changes: None },
            version: "1.0".into(),
            data_root: "/d/".into(),
            schemas: vec!["crm".into(), "finance".into()],
            tables: vec![
                table(10, "crm", "customers", vec![column(1, "name", &[]), column(2, "email", &[("pii", "true")])]),
                table(11, "finance", "ledger", vec![column(1, "a", &[]), column(2, "b", &[])]),
            ],
            views: Vec::new(),
            scheduled_for_deletion: Vec::new(),
        }
    }

    fn policy(text: &str) -> Policy {
        Policy::parse(text, "policy.toml").expect("policy")
    }

    #[test]
    fn denied_tables_and_columns_disappear_and_their_values_with_them() {
        let p = policy(
            "[[rule]]\nmatch = \"finance.*\"\naction = \"deny\"\n\n[[rule]]\ntag = { pii = \"true\" }\naction = \"deny\"\n",
        );
        let g = govern(&p, &lake());
        let names: Vec<&str> = g.snapshot.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["customers"]);
        assert_eq!(g.snapshot.schemas, ["crm"], "finance had only denied tables");
        let customers = &g.snapshot.tables[0];
        assert_eq!(customers.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["name"]);
        assert_eq!(customers.inlined[0].rows[0], vec![Some("a".to_string()), None]);
        assert_eq!(g.access.rules_for("finance.ledger"), None);
        let rules = g.access.rules_for("crm.customers").expect("shown");
        assert!(!rules.store, "a denied column's statistics are in every footer");
        assert_eq!(&*rules.denied_fields, &[2]);
        let scrub = mirror_scrub(&p, &[lake()]);
        assert_eq!(scrub.tables, BTreeSet::from([11]));
        assert_eq!(scrub.columns[&10], BTreeSet::from([2]));
    }

    #[test]
    fn kept_snapshots_are_governed_by_what_their_tables_are_now() {
        // A month ago: email not yet tagged, the ledger called `books`, a column since dropped.
        let mut then = lake();
        then.tables[0].columns[1].tags.clear();
        then.tables[1].name = "books".into();
        then.tables[0].columns.push(column(3, "ssn", &[]));
        let p = policy(
            "[[rule]]\nmatch = \"finance.ledger\"\naction = \"deny\"\n\n\
             [[rule]]\ntag = { pii = \"true\" }\naction = \"deny\"\n\n\
             [[rule]]\nmatch = \"crm.customers\"\ncolumns = [\"ssn\"]\naction = \"deny\"\n",
        );
        assert_eq!(govern(&p, &then).snapshot.tables.len(), 2, "by its own names and tags, nothing was denied");
        let g = govern_kept(&p, &then, &lake());
        let names: Vec<&str> = g.snapshot.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["customers"], "the ledger is denied under its old name");
        assert!(g.access.rules_for("finance.books").is_none());
        let customers = &g.snapshot.tables[0];
        assert_eq!(customers.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["name"]);
        let rules = g.access.rules_for("crm.customers").expect("shown");
        assert_eq!(&*rules.denied_fields, &[2, 3], "email by today's tag, ssn by its own name then");
    }

    #[test]
    fn read_through_is_shown_but_not_stored_and_mode_deny_shows_nothing() {
        let p = policy("[[rule]]\nmatch = \"crm.customers\"\naction = \"read-through\"\n");
        let g = govern(&p, &lake());
        assert_eq!(g.snapshot.tables.len(), 2);
        assert_eq!(g.snapshot.tables[0].inlined[0].rows[0][1].as_deref(), Some("secret"));
        assert_eq!(
            g.access.rules_for("crm.customers"),
            Some(FileRules { store: false, denied_fields: Arc::from(Vec::new()) })
        );
        assert_eq!(g.access.rules_for("finance.ledger"), Some(FileRules::default()));
        assert_eq!(mirror_scrub(&p, &[lake()]).tables, BTreeSet::from([10]));

        let deny = policy("[local]\nmode = \"deny\"\n");
        let g = govern(&deny, &lake());
        assert!(g.snapshot.tables.is_empty() && g.snapshot.schemas.is_empty());
        assert_eq!(g.access.rules_for("crm.customers"), None);
        assert!(mirror_scrub(&deny, &[lake()]).everything);
        assert!(mirror_scrub(&policy(""), &[lake()]).is_empty());
    }
}
