//! `explain`: text and JSON for each action, and object names.

use super::{column, parse, tags};
use crate::{Action, ColumnRef, ObjectName, Policy, Scope, TableRef};

const POLICY: &str = r#"[[rule]]
match = "finance.*"
action = "deny"
reason = "SOX"

[[rule]]
match = "crm.customers"
columns = ["email", "phone"]
action = "deny"

[[rule]]
tag = { pii = "true" }
action = "read-through"
"#;

#[test]
fn explain_deny_by_column_rule() {
    let p = parse(POLICY);
    let pii = tags(&[("pii", "true")]);
    let t = TableRef::new("crm", "customers").with_tags(&pii);
    let e = p.explain(&t, Some(&column("email")));
    assert_eq!(e.outcome().action, Action::Deny);
    assert_eq!(
        e.to_string(),
        r#"crm.customers.email: deny
  table tags: pii="true"; column tags: none
  mode: allow (default)
  policy.toml (default action cache):
    rule 1, line 1: match = "finance.*" -> deny
      does not apply: match "finance.*" does not select crm.customers
    rule 2, line 6: match = "crm.customers", columns = ["email", "phone"] -> deny  <- decides
      applies to the column: match "crm.customers" selects crm.customers; columns ["email", "phone"] include email
    rule 3, line 11: tag = { pii = "true" } -> read-through
      applies to the table: tag pii="true" found on the table
    => deny
  table crm.customers: read-through (rule 3 of policy.toml (line 11: tag = { pii = "true" } -> read-through) selects crm.customers)
  column crm.customers.email: deny (rule 2 of policy.toml (line 6: match = "crm.customers", columns = ["email", "phone"] -> deny))"#
    );
}

#[test]
fn explain_deny_by_table_rule() {
    let p = parse(POLICY);
    let e = p.explain(&TableRef::new("finance", "ledger"), None);
    assert_eq!(e.outcome().action, Action::Deny);
    let text = e.to_string();
    assert!(text.starts_with("finance.ledger: deny\n  table tags: none\n"), "{text}");
    assert!(text.contains("    rule 1, line 1: match = \"finance.*\" -> deny  <- decides\n      applies to the table: match \"finance.*\" selects finance.ledger\n"), "{text}");
    assert!(text.contains("      does not apply: match \"crm.customers\" does not select finance.ledger; applies to columns [\"email\", \"phone\"] only, not to the table as a whole\n"), "{text}");
    assert!(text.contains("      does not apply: tag pii=\"true\" not found\n"), "{text}");
    assert!(text.ends_with("  table finance.ledger: deny (rule 1 of policy.toml (line 1: match = \"finance.*\" -> deny) selects finance.ledger: SOX)"), "{text}");
}

#[test]
fn explain_read_through_by_column_tag() {
    let p = parse(POLICY);
    let pii = tags(&[("pii", "true")]);
    let c = ColumnRef::new("ssn").with_tags(&pii);
    let e = p.explain(&TableRef::new("hr", "people"), Some(&c));
    assert_eq!(e.outcome().action, Action::ReadThrough);
    let text = e.to_string();
    assert!(text.contains("table tags: none; column tags: pii=\"true\""), "{text}");
    assert!(text.contains("rule 3, line 11: tag = { pii = \"true\" } -> read-through  <- decides\n      applies to the column: tag pii=\"true\" found on column ssn\n"), "{text}");
    assert!(
        text.contains(
            "  table hr.people: cache (no rule of policy.toml selects hr.people; the default action is cache)"
        ),
        "{text}"
    );
    assert!(text.ends_with("  column hr.people.ssn: read-through (rule 3 of policy.toml (line 11: tag = { pii = \"true\" } -> read-through))"), "{text}");
}

#[test]
fn explain_cache_by_default() {
    let p = parse(POLICY);
    let e = p.explain(&TableRef::new("sales", "orders"), Some(&column("amount")));
    assert_eq!(e.outcome().action, Action::Cache);
    assert!(e.layers[0].rules.iter().all(|r| r.applies.is_none() && !r.decisive));
    let text = e.to_string();
    assert!(text.starts_with("sales.orders.amount: cache\n"), "{text}");
    assert!(text.contains("    => cache\n"), "{text}");
    assert!(text.contains("column sales.orders.amount: cache (no rule of policy.toml selects sales.orders; the default action is cache)"), "{text}");
}

#[test]
fn explain_mode_deny_and_merged_layers() {
    let central = Policy::parse(POLICY, "central.toml").expect("valid");
    let local = Policy::parse("[local]\nmode = \"deny\"\n", "local.toml").expect("valid");
    let e = central.tightened_by(&local).explain(&TableRef::new("sales", "orders"), None);
    assert_eq!(e.outcome().action, Action::Deny);
    assert_eq!(e.layers.len(), 2);
    let text = e.to_string();
    assert!(text.contains("  mode: deny (local.toml:2)\n"), "{text}");
    assert!(text.contains("  central.toml (default action cache):\n"), "{text}");
    assert!(text.contains("  local.toml (default action cache):\n    no rules\n    => cache\n"), "{text}");
    assert!(text.ends_with("table sales.orders: deny (mode = \"deny\" at local.toml:2: nothing of the lake is stored or shown on this machine)"), "{text}");
}

#[test]
fn explain_json() {
    let p = parse(POLICY);
    let pii = tags(&[("pii", "true")]);
    let t = TableRef::new("crm", "customers").with_tags(&pii);
    let e = p.explain(&t, Some(&column("email")));
    let json = serde_json::to_value(&e).expect("serialises");
    assert_eq!(json["object"], "crm.customers.email");
    assert_eq!(json["table_tags"]["pii"], "true");
    assert_eq!(json["column"]["action"], "deny");
    assert_eq!(json["column"]["rule"]["index"], 1);
    assert_eq!(json["table"]["action"], "read-through");
    assert_eq!(json["mode"], "allow");
    let rules = &json["layers"][0]["rules"];
    assert_eq!(rules[0]["applies"], serde_json::Value::Null);
    assert_eq!(rules[1]["applies"], "column");
    assert_eq!(rules[1]["decisive"], true);
    assert_eq!(rules[2]["applies"], "table");
    assert_eq!(rules[0]["reason"], "SOX");
    assert_eq!(e.layers[0].rules[2].applies, Some(Scope::Table));
}

#[test]
fn object_names() {
    let ok = |s: &str, schema: &str, table: &str, column: Option<&str>| {
        assert_eq!(
            s.parse::<ObjectName>(),
            Ok(ObjectName { schema: schema.into(), table: table.into(), column: column.map(Into::into) }),
            "{s}"
        );
    };
    ok("sales.orders", "sales", "orders", None);
    ok("crm.customers.email", "crm", "customers", Some("email"));
    ok("\"my.schema\".t", "my.schema", "t", None);
    ok("s.\"a \"\"b\"\"\".c", "s", "a \"b\"", Some("c"));
    for bad in ["sales", "a.b.c.d", "a..b", "\"a.b", ".a.b", ""] {
        assert!(bad.parse::<ObjectName>().is_err(), "{bad}");
    }
}
