//! Decisions: globs, tags, columns, precedence, defaults, mode, reasons.

use super::{column, parse, table, tags};
use crate::{Action, ColumnRef, Policy, RuleId, TableRef};

const SKETCH: &str = r#"
[[rule]]
match = "finance.*"
action = "deny"

[[rule]]
match = "crm.customers"
columns = ["email", "phone"]
action = "deny"

[[rule]]
tag = { pii = "true" }
action = "read-through"
"#;

#[test]
fn table_globs() {
    let p = parse(SKETCH);
    for (schema, name, action) in [
        ("finance", "ledger", Action::Deny),
        ("Finance", "LEDGER", Action::Deny),
        ("finance2", "ledger", Action::Cache),
        ("sales", "orders", Action::Cache),
        ("crm", "customers", Action::Cache),
    ] {
        assert_eq!(p.table_action(&table(schema, name)), action, "{schema}.{name}");
    }
}

#[test]
fn column_rules_do_not_touch_the_table() {
    let p = parse(SKETCH);
    let t = table("crm", "customers");
    assert_eq!(p.table_action(&t), Action::Cache);
    assert_eq!(p.column_action(&t, &column("email")), Action::Deny);
    assert_eq!(p.column_action(&t, &column("PHONE")), Action::Deny);
    assert_eq!(p.column_action(&t, &column("name")), Action::Cache);
    // Same column name, other table.
    assert_eq!(p.column_action(&table("crm", "leads"), &column("email")), Action::Cache);
    assert!(p.may_show_table(&t));
    assert!(!p.may_show_column(&t, &column("email")));
    assert!(p.may_store_column(&t, &column("name")));
}

#[test]
fn a_column_is_never_less_strict_than_its_table() {
    let p = parse(SKETCH);
    let t = table("finance", "ledger");
    let d = p.column_decision(&t, &column("amount"));
    assert_eq!(d.action, Action::Deny);
    assert_eq!(d.rule, Some(RuleId { layer: 0, index: 0 }));
    assert!(d.reason.contains("selects finance.ledger"), "{}", d.reason);
}

#[test]
fn table_tags_cover_every_column() {
    let p = parse(SKETCH);
    let pii = tags(&[("pii", "true")]);
    let t = table("sales", "contacts").with_tags(&pii);
    assert_eq!(p.table_action(&t), Action::ReadThrough);
    assert_eq!(p.column_action(&t, &column("id")), Action::ReadThrough);
    assert!(!p.may_store_column(&t, &column("id")));
    assert!(p.may_show_column(&t, &column("id")));
}

#[test]
fn column_tags_cover_only_their_column() {
    let p = parse(SKETCH);
    let pii = tags(&[("pii", "true")]);
    let t = table("sales", "orders");
    assert_eq!(p.table_action(&t), Action::Cache);
    let tagged = ColumnRef::new("customer_email").with_tags(&pii);
    let d = p.column_decision(&t, &tagged);
    assert_eq!(d.action, Action::ReadThrough);
    assert_eq!(d.rule, Some(RuleId { layer: 0, index: 2 }));
    assert_eq!(p.column_action(&t, &column("amount")), Action::Cache);
}

#[test]
fn tag_matching() {
    let p = parse(
        r#"
[[rule]]
tag = { pii = "true" }
action = "read-through"

[[rule]]
tag = { classification = "secret*" }
action = "deny"

[[rule]]
tag = { owner = "*", region = "eu" }
action = "read-through"

[[rule]]
match = "sales.*"
tag = { export = false }
action = "deny"
"#,
    );
    type Tags = &'static [(&'static str, &'static str)];
    let cases: &[(Tags, Tags, Action)] = &[
        (&[], &[], Action::Cache),
        (&[("pii", "true")], &[], Action::ReadThrough),
        (&[("PII", "TRUE")], &[], Action::ReadThrough),
        (&[("pii", "false")], &[], Action::Cache),
        (&[("pii", "truex")], &[], Action::Cache),
        (&[("piix", "true")], &[], Action::Cache),
        (&[], &[("pii", "true")], Action::ReadThrough),
        (&[("classification", "secret")], &[], Action::Deny),
        (&[], &[("classification", "secret-eu")], Action::Deny),
        (&[("classification", "public")], &[], Action::Cache),
        // Every pair must be found; each on the table or on the column.
        (&[("owner", "ann")], &[], Action::Cache),
        (&[("owner", "ann"), ("region", "eu")], &[], Action::ReadThrough),
        (&[("owner", "ann")], &[("region", "EU")], Action::ReadThrough),
        (&[], &[("owner", ""), ("region", "eu")], Action::ReadThrough),
        (&[("owner", "ann")], &[("region", "us")], Action::Cache),
        // Strictest wins when several rules apply.
        (&[("pii", "true"), ("classification", "secret")], &[], Action::Deny),
        // A boolean in the policy matches DuckLake's string "false"; `match` must hold too.
        (&[("export", "false")], &[], Action::Deny),
    ];
    for (table_tags, column_tags, expected) in cases {
        let tt = tags(table_tags);
        let ct = tags(column_tags);
        let t = TableRef::new("sales", "t").with_tags(&tt);
        let c = ColumnRef::new("c").with_tags(&ct);
        assert_eq!(p.column_action(&t, &c), *expected, "table {table_tags:?}, column {column_tags:?}");
        if column_tags.is_empty() {
            assert_eq!(p.table_action(&t), *expected, "table {table_tags:?}");
        }
    }
    let export = tags(&[("export", "false")]);
    assert_eq!(p.table_action(&TableRef::new("crm", "t").with_tags(&export)), Action::Cache);
}

/// The same rules in every order give the same decisions: order carries no meaning.
#[test]
fn strictest_wins_whatever_the_order() {
    let rules = [
        "[[rule]]\nmatch = \"crm.*\"\naction = \"cache\"\n",
        "[[rule]]\ntag = { pii = \"true\" }\naction = \"deny\"\n",
        "[[rule]]\nmatch = \"crm.customers\"\naction = \"read-through\"\n",
        "[[rule]]\ncolumns = [\"email\"]\naction = \"read-through\"\n",
    ];
    let pii = tags(&[("pii", "true")]);
    let objects = [
        (table("crm", "customers"), None),
        (table("crm", "customers"), Some(column("email"))),
        (table("crm", "customers"), Some(column("id"))),
        (table("crm", "leads").with_tags(&pii), None),
        (table("crm", "leads"), Some(ColumnRef::new("x").with_tags(&pii))),
        (table("crm", "leads"), Some(column("email"))),
        (table("crm", "leads"), None),
    ];
    let expected = [
        Action::ReadThrough,
        Action::ReadThrough,
        Action::ReadThrough,
        Action::Deny,
        Action::Deny,
        Action::ReadThrough,
        Action::Cache,
    ];
    let orders = [[0, 1, 2, 3], [3, 2, 1, 0], [1, 0, 3, 2], [2, 3, 0, 1]];
    for order in orders {
        let text: String = order.iter().map(|&i| rules[i]).collect();
        let p = parse(&text);
        for ((t, c), want) in objects.iter().zip(expected) {
            let got = match c {
                Some(c) => p.column_action(t, c),
                None => p.table_action(t),
            };
            assert_eq!(got, want, "order {order:?}, {}.{} {:?}", t.schema, t.table, c.map(|c| c.name));
        }
    }
}

#[test]
fn default_action_makes_an_allow_list() {
    let p = parse(
        r#"
[local]
default_action = "deny"

[[rule]]
match = "sales.*"
action = "cache"

[[rule]]
match = "sales.orders"
columns = ["card_*"]
action = "deny"

[[rule]]
columns = ["id"]
action = "cache"
"#,
    );
    assert_eq!(p.table_action(&table("sales", "orders")), Action::Cache);
    assert_eq!(p.column_action(&table("sales", "orders"), &column("card_number")), Action::Deny);
    let hr = table("hr", "salaries");
    let d = p.table_decision(&hr);
    assert_eq!(d.action, Action::Deny);
    assert_eq!(d.rule, None);
    assert_eq!(d.reason, "no rule of policy.toml selects hr.salaries; default_action = \"deny\" at policy.toml:3");
    // A column rule cannot lift a column out of a denied table.
    assert_eq!(p.column_action(&hr, &column("id")), Action::Deny);
}

#[test]
fn except_carves_out_tables() {
    let p = parse(
        "[[rule]]\nmatch = \"finance.*\"\nexcept = [\"finance.rates\", \"finance.public_*\"]\naction = \"deny\"\n",
    );
    assert_eq!(p.table_action(&table("finance", "ledger")), Action::Deny);
    assert_eq!(p.table_action(&table("finance", "rates")), Action::Cache);
    assert_eq!(p.table_action(&table("finance", "public_kpis")), Action::Cache);
}

#[test]
fn mode_deny_denies_everything() {
    let p = parse("[local]\nmode = \"deny\"\n\n[[rule]]\nmatch = \"*.*\"\naction = \"cache\"\n");
    let t = table("sales", "orders");
    let d = p.table_decision(&t);
    assert_eq!(d.action, Action::Deny);
    assert_eq!(d.rule, None);
    assert_eq!(d.reason, "mode = \"deny\" at policy.toml:2: nothing of the lake is stored or shown on this machine");
    assert_eq!(p.column_action(&t, &column("id")), Action::Deny);
}

#[test]
fn reasons_name_the_rule() {
    let p = parse(
        "[[rule]]\nmatch = \"finance.*\"\naction = \"deny\"\nreason = \"SOX\"\n\n[[rule]]\nmatch = \"crm.customers\"\ncolumns = [\"email\"]\naction = \"deny\"\n",
    );
    let d = p.table_decision(&table("finance", "ledger"));
    assert_eq!(d.reason, "rule 1 of policy.toml (line 1: match = \"finance.*\" -> deny) selects finance.ledger: SOX");
    let d = p.column_decision(&table("crm", "customers"), &column("email"));
    assert_eq!(d.reason, "rule 2 of policy.toml (line 6: match = \"crm.customers\", columns = [\"email\"] -> deny)");
    let d = p.table_decision(&table("crm", "customers"));
    assert_eq!(d.action, Action::Cache);
    assert_eq!(d.reason, "no rule of policy.toml selects crm.customers; the default action is cache");
    let d = Policy::default().table_decision(&table("a", "b"));
    assert_eq!((d.action, d.rule), (Action::Cache, None));
    assert_eq!(d.reason, "no policy rules; the default action is cache");
}

/// A rule that decides on a tie is reported rather than the default.
#[test]
fn ties_name_a_rule() {
    let p = parse("[[rule]]\nmatch = \"sales.*\"\naction = \"cache\"\n");
    let d = p.column_decision(&table("sales", "orders"), &column("id"));
    assert_eq!(d.rule, Some(RuleId { layer: 0, index: 0 }));
}

#[test]
fn file_decision_is_the_strictest_column() {
    let p = parse(SKETCH);
    let t = table("crm", "customers");
    let columns = [column("id"), column("email"), column("name")];
    let d = p.file_decision(&t, &columns);
    assert_eq!(d.action, Action::Deny);
    assert!(d.reason.starts_with("column email is the strictest of crm.customers: rule 2"), "{}", d.reason);
    let d = p.file_decision(&t, &[column("id")]);
    assert_eq!(d.action, Action::Cache);
    assert_eq!(p.file_decision(&t, &[]).action, Action::Cache);
}
