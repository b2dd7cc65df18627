//! Parsing valid policies: defaults, every field, schedules, the crate-doc example.

use std::time::Duration;

use super::parse;
use crate::{Action, ColumnSelection, Mode, Policy, Schedules, SnapshotSelection};

/// The full example of the crate docs, kept in sync by hand: it must parse.
pub(crate) const FULL: &str = r#"
[local]
mode = "allow"
default_action = "cache"
max_cache = "50GiB"
min_free_disk = "10%"
max_age = "7d"
keep_snapshots = 3

[[rule]]
match = "finance.*"
except = ["finance.rates"]
action = "deny"
reason = "Finance data stays in the bucket"

[[rule]]
match = "crm.customers"
columns = ["email", "phone*"]
action = "deny"

[[rule]]
tag = { pii = "true" }
action = "read-through"

[refresh]
cron = "*/5 * * * *"

[[prewarm]]
name = "monday-review"
cron = "45 8 * * Mon"
tables = ["sales.*"]
columns = "hot"
snapshot = "latest"
catch_up = true

[[prewarm]]
name = "board-meetings"
calendar = "~/calendars/work.ics"
lead = "30m"
title = "*board*"
tables = ["finance.kpis", "sales.orders"]
columns = "all"

[evict]
cron = "0 * * * *"
"#;

#[test]
fn full_example() {
    let p = parse(FULL);
    assert_eq!(p.mode(), Mode::Allow);
    assert_eq!(p.layers().len(), 1);
    assert_eq!(p.layers()[0].default_action(), Action::Cache);
    assert_eq!(p.layers()[0].file(), "policy.toml");
    let limits = p.limits();
    assert_eq!(limits.max_cache(), Some(50 << 30));
    assert_eq!(limits.min_free_disk(1000), 100);
    assert_eq!(limits.max_age(), Some(Duration::from_secs(7 * 86_400)));
    assert_eq!(limits.keep_snapshots(), 3);
    assert_eq!(limits.max_age_setting().map(|s| s.origin.line), Some(7));

    let rules = p.layers()[0].rules();
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0].origin().line, 10);
    assert_eq!(rules[0].action(), Action::Deny);
    assert_eq!(rules[0].reason(), Some("Finance data stays in the bucket"));
    assert_eq!(rules[0].to_string(), "match = \"finance.*\", except = [\"finance.rates\"] -> deny");
    assert_eq!(rules[1].to_string(), "match = \"crm.customers\", columns = [\"email\", \"phone*\"] -> deny");
    assert_eq!(rules[2].to_string(), "tag = { pii = \"true\" } -> read-through");

    let s = p.schedules();
    assert_eq!(s.refresh().source(), "*/5 * * * *");
    assert_eq!(s.evict().source(), "0 * * * *");
    assert_eq!(s.prewarm().len(), 2);
    let monday = s.prewarm_job("monday-review").expect("job");
    assert!(monday.catch_up);
    assert_eq!(monday.columns, ColumnSelection::Hot);
    assert_eq!(monday.snapshot, SnapshotSelection::Latest);
    assert!(monday.selects_table("sales", "orders"));
    assert!(!monday.selects_table("crm", "orders"));
    assert!(monday.calendar.is_none());
    assert_eq!(monday.origin.line, 28);
    let board = s.prewarm_job("board-meetings").expect("job");
    assert!(board.cron.is_none());
    let cal = board.calendar.as_ref().expect("calendar");
    assert_eq!(cal.path, "~/calendars/work.ics");
    assert_eq!(cal.lead, Duration::from_secs(1800));
    assert!(cal.title.matches("Quarterly Board Review"));
    assert!(!cal.title.matches("standup"));
    assert_eq!(board.columns, ColumnSelection::All);
    assert!(!board.catch_up);
}

#[test]
fn empty_file_is_the_default_policy() {
    let p = parse("");
    assert_eq!(p.mode(), Mode::Allow);
    assert_eq!(p.limits().max_cache(), None);
    assert_eq!(p.limits().min_free_disk(10_000), 1000);
    assert_eq!(p.limits().max_age(), None);
    assert_eq!(p.limits().keep_snapshots(), 3);
    assert_eq!(p.schedules().refresh().source(), Schedules::DEFAULT_REFRESH);
    assert_eq!(p.schedules().evict().source(), Schedules::DEFAULT_EVICT);
    assert!(p.schedules().prewarm().is_empty());
    // Same decisions as no policy at all, but it remembers its file.
    assert_eq!(p.layers().len(), 1);
    assert!(Policy::default().layers().is_empty());
}

#[test]
fn value_forms() {
    let p = parse(
        "[local]\nmode = \"deny\"\nmax_cache = 1048576\nmin_free_disk = \"20GB\"\nmax_age = \"1d12h\"\nkeep_snapshots = 1\n",
    );
    assert_eq!(p.mode(), Mode::Deny);
    assert_eq!(p.limits().max_cache(), Some(1 << 20));
    assert_eq!(p.limits().min_free_disk(1), 20_000_000_000);
    assert_eq!(p.limits().max_age(), Some(Duration::from_secs(36 * 3600)));
    assert_eq!(p.limits().keep_snapshots(), 1);
    let p = parse("[local]\nmin_free_disk = 5000\n");
    assert_eq!(p.limits().min_free_disk(1 << 40), 5000);
}

#[test]
fn rule_forms() {
    let p = parse(
        r#"
[[rule]]
columns = ["*ssn*"]
action = "deny"

[[rule]]
tags = { PII = true, level = "h*" }

[[rule]]
match = "*.*"
tag = { retention = 30 }
action = "read-through"
"#,
    );
    let rules = p.layers()[0].rules();
    assert!(rules[0].table_glob().is_none());
    assert_eq!(rules[0].columns().map(<[_]>::len), Some(1));
    assert_eq!(rules[1].action(), Action::Cache);
    let t: Vec<(&str, &str)> = rules[1].tags().iter().map(|c| (c.key.as_str(), c.value.as_str())).collect();
    assert_eq!(t, [("PII", "true"), ("level", "h*")]);
    assert_eq!(rules[2].tags()[0].value.as_str(), "30");
}

#[test]
fn prewarm_column_list_and_defaults() {
    let p = parse(
        "[[prewarm]]\nname = \"x\"\ncron = \"0 0 6 * * Mon-Fri\"\ntables = [\"*.orders\"]\ncolumns = [\"amount\", \"region*\"]\n\n[[prewarm]]\nname = \"y\"\ncalendar = \"c.ics\"\ntables = [\"a.b\"]\n",
    );
    let x = p.schedules().prewarm_job("x").expect("x");
    assert!(x.columns.lists("Region_Code"));
    assert!(!x.columns.lists("email"));
    let y = p.schedules().prewarm_job("y").expect("y");
    assert_eq!(y.columns, ColumnSelection::Hot);
    let cal = y.calendar.as_ref().expect("calendar");
    assert_eq!(cal.lead, Duration::from_secs(15 * 60));
    assert!(cal.title.matches("anything"));
}

#[test]
fn policy_display_and_json() {
    let p = parse(FULL);
    let shown = p.to_string();
    for needle in [
        "mode            allow (policy.toml:3)",
        "max_cache       50 GiB (policy.toml:5)",
        "min_free_disk   10% (policy.toml:6)",
        "max_age         1w (policy.toml:7)",
        "keep_snapshots  3 (policy.toml:8)",
        "rules of policy.toml, default action cache (policy.toml:4):",
        "  1. line 10: match = \"finance.*\", except = [\"finance.rates\"] -> deny",
        "refresh         \"*/5 * * * *\" (policy.toml:26)",
        "prewarm         \"board-meetings\": tables [\"finance.kpis\", \"sales.orders\"], all columns, 30m before events titled \"*board*\" in ~/calendars/work.ics (policy.toml:36)",
    ] {
        assert!(shown.contains(needle), "{needle:?} not in:\n{shown}");
    }
    let json = serde_json::to_value(&p).expect("serialises");
    assert_eq!(json["limits"]["max_cache"]["value"], 50u64 << 30);
    assert_eq!(json["limits"]["max_cache"]["shown"], "50 GiB");
    assert_eq!(json["limits"]["max_age_secs"]["value"], 7 * 86_400);
    assert_eq!(json["layers"][0]["rules"][1]["columns"][1], "phone*");
    assert_eq!(json["layers"][0]["rules"][2]["action"], "read-through");
    assert_eq!(json["schedules"]["prewarm"][1]["calendar"]["lead_secs"], 1800);
    assert_eq!(json["mode"]["value"], "allow");
}
