//! Central + local, as a property over random policies: whatever the two files say, the
//! effective policy is never looser than either, object by object and limit by limit.
//!
//! `merge.rs` checks every pair from a fixed pool of rules exhaustively; this draws the rules
//! themselves at random (globs with `*`, `?` and other capitalisation, `except` lists, column
//! globs, tag patterns, any action, limits and mode) and the objects too (tables and columns
//! with random tags), so selectors the pool does not think of are covered. Policies are
//! written as TOML text and parsed, so the property holds for what an admin can write, not for
//! values only the crate can build.

use std::fmt::Write;

use proptest::prelude::*;

use crate::{Action, ColumnRef, Mode, Policy, TableRef};

const SCHEMAS: [&str; 3] = ["sales", "crm", "hr"];
const TABLES: [&str; 3] = ["orders", "customers", "pay"];
const COLUMNS: [&str; 4] = ["id", "email", "ssn", "amount"];
const TAG_KEYS: [&str; 2] = ["pii", "tier"];
const TAG_VALUES: [&str; 3] = ["true", "false", "gold"];

/// One side of a `schema.table` glob: a name, a name in other case, a prefix with `*`, `?`s,
/// or `*`.
fn name_glob(names: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        prop::sample::select(names).prop_map(str::to_string),
        prop::sample::select(names).prop_map(str::to_uppercase),
        prop::sample::select(names).prop_map(|n| format!("{}*", &n[..1])),
        prop::sample::select(names).prop_map(|n| format!("?{}", &n[1..])),
    ]
}

fn table_glob() -> impl Strategy<Value = String> {
    (name_glob(&SCHEMAS), name_glob(&TABLES)).prop_map(|(s, t)| format!("{s}.{t}"))
}

fn action() -> impl Strategy<Value = Action> {
    prop::sample::select(Action::ALL.to_vec())
}

/// A `[[rule]]` as TOML lines. A rule must select something, so one without `match`,
/// `columns` and `tag` gets `match = "*.*"`.
fn rule() -> impl Strategy<Value = String> {
    (
        prop::option::of(table_glob()),
        prop::collection::vec(table_glob(), 0..2),
        prop::option::of(prop::collection::vec(name_glob(&COLUMNS), 1..3)),
        prop::collection::btree_map(
            prop::sample::select(TAG_KEYS.to_vec()),
            prop_oneof![prop::sample::select(TAG_VALUES.to_vec()), Just("*"), Just("g*")],
            0..3,
        ),
        action(),
    )
        .prop_map(|(table, except, columns, tags, action)| {
            let mut text = String::from("[[rule]]\n");
            let table = match (&table, &columns, tags.is_empty()) {
                (None, None, true) => Some("*.*".to_string()),
                _ => table,
            };
            if let Some(g) = table {
                let _ = writeln!(text, "match = {g:?}");
            }
            if !except.is_empty() {
                let _ = writeln!(text, "except = {except:?}");
            }
            if let Some(c) = columns {
                let _ = writeln!(text, "columns = {c:?}");
            }
            if !tags.is_empty() {
                let pairs: Vec<String> = tags.iter().map(|(k, v)| format!("{k} = {v:?}")).collect();
                let _ = writeln!(text, "tag = {{ {} }}", pairs.join(", "));
            }
            let _ = writeln!(text, "action = {:?}", action.as_str());
            text
        })
}

/// A whole policy file: optional `[local]` settings, then up to four rules.
fn policy_text() -> impl Strategy<Value = String> {
    (
        prop::option::of(prop_oneof![Just("allow"), Just("deny")]),
        prop::option::of(action()),
        prop::option::of(prop::sample::select(vec!["1GiB", "5GiB", "20GB", "123456"])),
        prop::option::of(prop::sample::select(vec!["10%", "2.5%", "5GiB"])),
        prop::option::of(prop::sample::select(vec!["1h", "1d", "7d", "1d12h"])),
        prop::option::of(1u32..8),
        prop::collection::vec(rule(), 0..5),
    )
        .prop_map(|(mode, default, max_cache, min_free, max_age, keep, rules)| {
            let mut text = String::from("[local]\n");
            if let Some(m) = mode {
                let _ = writeln!(text, "mode = {m:?}");
            }
            if let Some(a) = default {
                let _ = writeln!(text, "default_action = {:?}", a.as_str());
            }
            if let Some(v) = max_cache {
                let _ = writeln!(text, "max_cache = {v:?}");
            }
            if let Some(v) = min_free {
                let _ = writeln!(text, "min_free_disk = {v:?}");
            }
            if let Some(v) = max_age {
                let _ = writeln!(text, "max_age = {v:?}");
            }
            if let Some(v) = keep {
                let _ = writeln!(text, "keep_snapshots = {v}");
            }
            for r in rules {
                text.push('\n');
                text.push_str(&r);
            }
            text
        })
}

fn tag_list() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::btree_map(
        prop::sample::select(TAG_KEYS.to_vec()),
        prop::sample::select(TAG_VALUES.to_vec()),
        0..3,
    )
    .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

/// A table with tags and some of its columns, each with tags.
#[derive(Debug, Clone)]
struct Object {
    schema: &'static str,
    table: &'static str,
    tags: Vec<(String, String)>,
    columns: Vec<(&'static str, Vec<(String, String)>)>,
}

fn object() -> impl Strategy<Value = Object> {
    (
        prop::sample::select(SCHEMAS.to_vec()),
        prop::sample::select(TABLES.to_vec()),
        tag_list(),
        prop::collection::vec((prop::sample::select(COLUMNS.to_vec()), tag_list()), 0..4),
    )
        .prop_map(|(schema, table, tags, columns)| Object { schema, table, tags, columns })
}

fn parsed(text: &str, file: &str) -> Policy {
    Policy::parse(text, file).unwrap_or_else(|e| panic!("generated policy does not parse: {e}\n{text}"))
}

/// Every limit a file sets binds the merged policy: the merged value is never larger (for
/// `min_free_disk`, never smaller) than the file's.
fn assert_limits_bind(merged: &Policy, file: &Policy) {
    let (m, f) = (merged.limits(), file.limits());
    if let Some(cap) = f.max_cache() {
        assert!(m.max_cache().is_some_and(|v| v <= cap), "max_cache {:?} > {cap}", m.max_cache());
    }
    if let Some(age) = f.max_age() {
        assert!(m.max_age().is_some_and(|v| v <= age), "max_age {:?} > {age:?}", m.max_age());
    }
    if f.keep_snapshots_setting().is_some() {
        assert!(m.keep_snapshots() <= f.keep_snapshots());
    }
    if f.min_free_bytes_setting().is_some() || f.min_free_basis_points_setting().is_some() {
        for disk in [0, 1 << 30, 100 << 30, u64::MAX] {
            assert!(m.min_free_disk(disk) >= f.min_free_disk(disk), "min_free_disk on a {disk}-byte disk");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn merged_policy_is_never_looser(
        central in policy_text(),
        local in policy_text(),
        objects in prop::collection::vec(object(), 1..6),
    ) {
        let (c, l) = (parsed(&central, "central.toml"), parsed(&local, "local.toml"));
        let m = c.tightened_by(&l);

        prop_assert_eq!(m.mode(), c.mode().max(l.mode()));
        assert_limits_bind(&m, &c);
        assert_limits_bind(&m, &l);

        for o in &objects {
            let t = TableRef::new(o.schema, o.table).with_tags(&o.tags);
            let table = m.table_action(&t);
            prop_assert_eq!(table, c.table_action(&t).max(l.table_action(&t)), "{:?}", o);
            if m.mode() == Mode::Deny {
                prop_assert_eq!(table, Action::Deny);
            }
            prop_assert_eq!(m.table_decision(&t).action, table);
            let columns: Vec<ColumnRef<'_>> =
                o.columns.iter().map(|(name, tags)| ColumnRef::new(name).with_tags(tags)).collect();
            for col in &columns {
                let action = m.column_action(&t, col);
                prop_assert!(action >= c.column_action(&t, col), "looser than central: {:?} {}", o, col.name);
                prop_assert!(action >= l.column_action(&t, col), "looser than local: {:?} {}", o, col.name);
                prop_assert_eq!(action, c.column_action(&t, col).max(l.column_action(&t, col)));
                prop_assert!(action >= table, "column {} of {:?} less strict than its table", col.name, o);
                let explained = m.explain(&t, Some(col));
                prop_assert_eq!(explained.outcome().action, action);
                let decision = m.column_decision(&t, col);
                if let Some(id) = decision.rule {
                    prop_assert_eq!(m.rule(id).map(|r| r.action()), Some(action));
                }
            }
            let file = m.file_decision(&t, &columns).action;
            prop_assert!(file >= c.file_decision(&t, &columns).action);
            prop_assert!(file >= l.file_decision(&t, &columns).action);
            prop_assert!(columns.iter().all(|col| file >= m.column_action(&t, col)));
        }
    }

    /// Tightening by a policy with no local file (an empty one) changes no decision, and
    /// tightening by oneself neither: the merge adds strictness only where a file asks for it.
    #[test]
    fn tightening_by_nothing_or_oneself_changes_nothing(
        central in policy_text(),
        objects in prop::collection::vec(object(), 1..6),
    ) {
        let c = parsed(&central, "central.toml");
        let empty = parsed("", "local.toml");
        for m in [c.tightened_by(&empty), c.tightened_by(&c), Policy::default().tightened_by(&c)] {
            prop_assert_eq!(m.mode(), c.mode());
            prop_assert_eq!(m.limits().max_cache(), c.limits().max_cache());
            prop_assert_eq!(m.limits().max_age(), c.limits().max_age());
            prop_assert_eq!(m.limits().keep_snapshots(), c.limits().keep_snapshots());
            for o in &objects {
                let t = TableRef::new(o.schema, o.table).with_tags(&o.tags);
                prop_assert_eq!(m.table_action(&t), c.table_action(&t));
                for (name, tags) in &o.columns {
                    let col = ColumnRef::new(name).with_tags(tags);
                    prop_assert_eq!(m.column_action(&t, &col), c.column_action(&t, &col));
                }
            }
        }
    }
}
