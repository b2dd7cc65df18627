//! Central + local: the effective policy never loosens either one.
//!
//! Checked exhaustively over a table of policies: every pair of 174 generated policies
//! (modes × default actions × every set of up to two rules from a pool covering globs,
//! `except`, columns and tags), against 32 objects (tables with and without tags, columns with
//! and without tags). `merge_props.rs` draws the rules and objects at random instead.

use std::time::Duration;

use super::{parse, tags};
use crate::{Action, ColumnRef, Mode, Policy, TableRef};

const RULES: &[&str] = &[
    "match = \"sales.*\"\naction = \"deny\"",
    "match = \"*.orders\"\naction = \"read-through\"",
    "tag = { pii = \"true\" }\naction = \"deny\"",
    "columns = [\"email\"]\naction = \"read-through\"",
    "match = \"sales.*\"\naction = \"cache\"",
    "match = \"crm.*\"\ncolumns = [\"email\", \"phone\"]\naction = \"deny\"",
    "match = \"*.*\"\nexcept = [\"sales.orders\"]\ntag = { tier = \"*\" }\naction = \"read-through\"",
];

fn rule_sets() -> Vec<Vec<usize>> {
    let mut sets = vec![vec![]];
    for i in 0..RULES.len() {
        sets.push(vec![i]);
        for j in i + 1..RULES.len() {
            sets.push(vec![i, j]);
        }
    }
    sets
}

fn policies(file: &str) -> Vec<Policy> {
    let mut out = Vec::new();
    for mode in [None, Some("deny")] {
        for default in [None, Some("read-through"), Some("deny")] {
            for set in rule_sets() {
                let mut text = String::from("[local]\n");
                if let Some(m) = mode {
                    text.push_str(&format!("mode = \"{m}\"\n"));
                }
                if let Some(d) = default {
                    text.push_str(&format!("default_action = \"{d}\"\n"));
                }
                for i in &set {
                    text.push_str(&format!("\n[[rule]]\n{}\n", RULES[*i]));
                }
                out.push(Policy::parse(&text, file).unwrap_or_else(|e| panic!("{e}\n{text}")));
            }
        }
    }
    out
}

struct Object {
    schema: &'static str,
    table: &'static str,
    table_tags: Vec<(String, String)>,
    column: Option<(&'static str, Vec<(String, String)>)>,
}

fn objects() -> Vec<Object> {
    let mut out = Vec::new();
    for (schema, table) in [("sales", "orders"), ("sales", "leads"), ("crm", "customers"), ("hr", "pay")] {
        for table_tags in [tags(&[]), tags(&[("pii", "true"), ("tier", "gold")])] {
            for column in
                [None, Some(("id", tags(&[]))), Some(("email", tags(&[]))), Some(("ssn", tags(&[("pii", "true")])))]
            {
                out.push(Object { schema, table, table_tags: table_tags.clone(), column });
            }
        }
    }
    out
}

fn action(p: &Policy, o: &Object) -> Action {
    let t = TableRef::new(o.schema, o.table).with_tags(&o.table_tags);
    match &o.column {
        Some((name, tags)) => p.column_action(&t, &ColumnRef::new(name).with_tags(tags)),
        None => p.table_action(&t),
    }
}

#[test]
fn merged_actions_are_the_stricter_of_both() {
    let central = policies("central.toml");
    let local = policies("local.toml");
    assert_eq!(central.len(), 174);
    let objects = objects();
    assert_eq!(objects.len(), 32);
    let actions = |ps: &[Policy]| -> Vec<Vec<Action>> {
        ps.iter().map(|p| objects.iter().map(|o| action(p, o)).collect()).collect()
    };
    let (central_actions, local_actions) = (actions(&central), actions(&local));
    // The table must exercise every action on both sides, or the property is vacuous.
    for a in Action::ALL {
        assert!(central_actions.iter().flatten().any(|x| *x == a));
    }
    let mut checked = 0usize;
    for (c, ca) in central.iter().zip(&central_actions) {
        for (l, la) in local.iter().zip(&local_actions) {
            let merged = c.tightened_by(l);
            for (i, o) in objects.iter().enumerate() {
                let m = action(&merged, o);
                assert!(m >= ca[i] && m >= la[i], "loosened");
                assert_eq!(m, ca[i].max(la[i]), "object {i} under\n{c}\n---\n{l}");
                checked += 1;
            }
            assert_eq!(merged.mode(), c.mode().max(l.mode()));
        }
    }
    assert_eq!(checked, 174 * 174 * 32);
}

/// The decision of a merged policy names a rule that exists and has the decided action.
#[test]
fn merged_decisions_name_real_rules() {
    let central = policies("central.toml");
    let local = policies("local.toml");
    let objects = objects();
    for c in central.iter().step_by(7) {
        for l in local.iter().step_by(5) {
            let merged = c.tightened_by(l);
            for o in &objects {
                let t = TableRef::new(o.schema, o.table).with_tags(&o.table_tags);
                let d = match &o.column {
                    Some((name, tags)) => merged.column_decision(&t, &ColumnRef::new(name).with_tags(tags)),
                    None => merged.table_decision(&t),
                };
                if let Some(id) = d.rule {
                    let rule = merged.rule(id).expect("the rule exists");
                    assert_eq!(rule.action(), d.action);
                    assert!(d.reason.contains(&rule.origin().file));
                }
            }
        }
    }
}

/// A local `cache` rule does not lift a central allow-list's default deny (which
/// concatenating rule lists would do).
#[test]
fn local_cache_rule_cannot_lift_central_default() {
    let central = parse("[local]\ndefault_action = \"deny\"\n\n[[rule]]\nmatch = \"sales.*\"\naction = \"cache\"\n");
    let local = parse("[[rule]]\nmatch = \"hr.*\"\naction = \"cache\"\n");
    let merged = central.tightened_by(&local);
    let hr = TableRef::new("hr", "pay");
    assert_eq!(merged.table_action(&hr), Action::Deny);
    assert_eq!(merged.table_action(&TableRef::new("sales", "x")), Action::Cache);
}

const SIZES: [Option<&str>; 3] = [None, Some("1GiB"), Some("5GiB")];
const AGES: [Option<&str>; 3] = [None, Some("1d"), Some("7d")];
const KEEPS: [Option<u32>; 4] = [None, Some(1), Some(3), Some(5)];
const FREES: [Option<&str>; 4] = [None, Some("10%"), Some("5%"), Some("5GiB")];
const MODES: [Option<&str>; 3] = [None, Some("allow"), Some("deny")];

fn limit_policies(file: &str) -> Vec<Policy> {
    let mut out = Vec::new();
    for size in SIZES {
        for age in AGES {
            for keep in KEEPS {
                for free in FREES {
                    for mode in MODES {
                        let mut text = String::from("[local]\n");
                        if let Some(v) = size {
                            text.push_str(&format!("max_cache = \"{v}\"\n"));
                        }
                        if let Some(v) = age {
                            text.push_str(&format!("max_age = \"{v}\"\n"));
                        }
                        if let Some(v) = keep {
                            text.push_str(&format!("keep_snapshots = {v}\n"));
                        }
                        if let Some(v) = free {
                            text.push_str(&format!("min_free_disk = \"{v}\"\n"));
                        }
                        if let Some(v) = mode {
                            text.push_str(&format!("mode = \"{v}\"\n"));
                        }
                        out.push(Policy::parse(&text, file).unwrap_or_else(|e| panic!("{e}")));
                    }
                }
            }
        }
    }
    out
}

/// The stricter of two optional limits where `None` means "no limit".
fn min_limit<T: Ord + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[test]
fn merged_limits_are_the_stricter_of_both() {
    let central = limit_policies("central.toml");
    let local = limit_policies("local.toml");
    assert_eq!(central.len(), 432);
    let disk = 100u64 << 30;
    for c in &central {
        for l in &local {
            let m = c.tightened_by(l);
            let (cl, ll, ml) = (c.limits(), l.limits(), m.limits());
            assert_eq!(ml.max_cache(), min_limit(cl.max_cache(), ll.max_cache()));
            assert_eq!(ml.max_age(), min_limit(cl.max_age(), ll.max_age()));
            let set = |p: &Policy| p.limits().keep_snapshots_setting().map(|s| s.value);
            assert_eq!(set(&m), min_limit(set(c), set(l)));
            assert!(ml.keep_snapshots() <= cl.keep_snapshots().max(ll.keep_snapshots()));
            // More free disk is stricter: at least what either demands, and no more than that.
            let need = ml.min_free_disk(disk);
            let (cn, ln) = (cl.min_free_disk(disk), ll.min_free_disk(disk));
            let explicit = |p: &Policy| {
                p.limits().min_free_bytes_setting().is_some() || p.limits().min_free_basis_points_setting().is_some()
            };
            match (explicit(c), explicit(l)) {
                (true, true) => assert_eq!(need, cn.max(ln)),
                (true, false) => assert_eq!(need, cn),
                (false, true) => assert_eq!(need, ln),
                (false, false) => assert_eq!(need, disk / 10),
            }
            assert_eq!(m.mode(), c.mode().max(l.mode()));
            if l.mode() == Mode::Deny || c.mode() == Mode::Deny {
                assert_eq!(m.table_action(&TableRef::new("a", "b")), Action::Deny);
            }
        }
    }
}

#[test]
fn merged_limits_keep_their_origin() {
    let central = parse("[local]\nmax_cache = \"10GiB\"\nmax_age = \"1d\"\n");
    let local = Policy::parse("[local]\n\nmax_cache = \"2GiB\"\nmax_age = \"7d\"\n", "local.toml").expect("valid");
    let m = central.tightened_by(&local);
    let cache = m.limits().max_cache_setting().expect("set");
    assert_eq!((cache.value, cache.origin.to_string()), (2 << 30, "local.toml:3".to_string()));
    let age = m.limits().max_age_setting().expect("set");
    assert_eq!((age.value, age.origin.to_string()), (Duration::from_secs(86_400), "policy.toml:3".to_string()));
}

#[test]
fn schedules_merge() {
    let central = parse(
        "[refresh]\ncron = \"@hourly\"\n\n[[prewarm]]\nname = \"a\"\ncron = \"@daily\"\ntables = [\"s.a\"]\n\n[[prewarm]]\nname = \"b\"\ncron = \"@daily\"\ntables = [\"s.b\"]\n",
    );
    let local = parse(
        "[evict]\ncron = \"@daily\"\n\n[[prewarm]]\nname = \"b\"\ncron = \"@weekly\"\ntables = [\"s.b2\"]\n\n[[prewarm]]\nname = \"c\"\ncron = \"@daily\"\ntables = [\"s.c\"]\n",
    );
    let m = central.tightened_by(&local);
    assert_eq!(m.schedules().refresh().source(), "@hourly");
    assert_eq!(m.schedules().evict().source(), "@daily");
    let names: Vec<&str> = m.schedules().prewarm().iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let b = m.schedules().prewarm_job("b").expect("b");
    assert!(b.selects_table("s", "b2"));
    let local_refresh = parse("[refresh]\ncron = \"@daily\"\n");
    assert_eq!(central.tightened_by(&local_refresh).schedules().refresh().source(), "@daily");
}

/// The fail-closed policy denies everything, whatever a local file tightened by it allows,
/// and says why without a line number.
#[test]
fn deny_all_fails_closed_and_says_why() {
    let why = "central policy s3://b/p.toml (never fetched)";
    let local = parse("[local]\ndefault_action = \"cache\"\n\n[[rule]]\nmatch = \"*.*\"\naction = \"cache\"\n");
    for p in [Policy::deny_all(why), Policy::deny_all(why).tightened_by(&local)] {
        let t = TableRef::new("sales", "orders");
        let d = p.table_decision(&t);
        assert_eq!(d.action, Action::Deny);
        assert_eq!(
            d.reason,
            format!("mode = \"deny\" at {why}: nothing of the lake is stored or shown on this machine")
        );
        assert_eq!(p.column_action(&t, &ColumnRef::new("id")), Action::Deny);
    }
    assert!(Policy::deny_all(why).to_string().starts_with(&format!("mode            deny ({why})\n")));
}
