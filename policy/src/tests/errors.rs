//! Every error kind, with its exact line and column.

use crate::{ErrorKind, Policy, PolicyError};

fn error(text: &str) -> PolicyError {
    match Policy::parse(text, "p.toml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts the error's position and that its message contains `needle`.
#[track_caller]
fn assert_error(text: &str, line: usize, column: usize, needle: &str) -> ErrorKind {
    let e = error(text);
    assert_eq!((e.file.as_str(), e.line, e.column), ("p.toml", line, column), "position of: {e}");
    assert!(e.to_string().contains(needle), "{e:?} lacks {needle:?}");
    assert!(e.to_string().starts_with(&format!("p.toml:{line}:{column}: ")), "{e}");
    *e.kind
}

#[test]
fn toml_syntax() {
    let kind = assert_error("[local\nmode = \"deny\"\n", 1, 7, "");
    assert!(matches!(kind, ErrorKind::Toml(_)));
    assert_error("x = \n", 1, 5, "");
}

#[test]
fn unknown_keys_are_errors() {
    let kind = assert_error("[local]\nmode = \"allow\"\nmax_cach = \"5GiB\"\n", 3, 1, "unknown field `max_cach`");
    assert!(matches!(kind, ErrorKind::Toml(_)));
    assert_error("[[rules]]\nmatch = \"a.b\"\n", 1, 3, "unknown field `rules`");
    assert_error("[[rule]]\nmatch = \"a.b\"\nactoin = \"deny\"\n", 3, 1, "unknown field `actoin`");
    assert_error("[refresh]\ncorn = \"@daily\"\n", 2, 1, "unknown field `corn`");
}

#[test]
fn wrong_types_and_missing_keys() {
    assert_error("[[rule]]\nmatch = 5\n", 2, 9, "invalid type: integer `5`, expected a string");
    assert_error("[[prewarm]]\nname = \"x\"\ncron = \"@daily\"\n", 1, 1, "missing field `tables`");
    assert_error(
        "[[prewarm]]\nname = \"x\"\ncron = \"@daily\"\ntables = [\"a.b\"]\ncatch_up = \"yes\"\n",
        5,
        12,
        "expected a boolean",
    );
}

#[test]
fn unknown_action_and_mode() {
    let kind = assert_error("[[rule]]\nmatch = \"a.b\"\naction = \"cach\"\n", 3, 10, "unknown action \"cach\"");
    assert_eq!(kind, ErrorKind::UnknownAction { found: "cach".into() });
    assert_error("[local]\ndefault_action = \"allow\"\n", 2, 18, "unknown action \"allow\"");
    let kind = assert_error("[local]\nmode = \"off\"\n", 2, 8, "unknown mode \"off\"");
    assert!(matches!(kind, ErrorKind::UnknownMode { .. }));
}

#[test]
fn bad_sizes() {
    let kind = assert_error("[local]\nmax_cache = \"50G\"\n", 2, 13, "bad max_cache \"50G\": ambiguous unit `G`");
    assert!(matches!(kind, ErrorKind::BadSize { field: "max_cache", .. }));
    assert_error("[local]\nmax_cache = -1\n", 2, 13, "cannot be negative");
    assert_error("[local]\nmax_cache = true\n", 2, 13, "found a boolean");
    assert_error("[local]\nmin_free_disk = \"110%\"\n", 2, 17, "bad min_free_disk \"110%\": more than 100%");
    assert_error("[local]\nmin_free_disk = \"lots\"\n", 2, 17, "bad min_free_disk");
}

#[test]
fn bad_durations() {
    let kind =
        assert_error("[local]\nmax_age = \"7 fortnights\"\n", 2, 11, "bad max_age \"7 fortnights\": unknown unit");
    assert!(matches!(kind, ErrorKind::BadDuration { field: "max_age", .. }));
    assert_error("[local]\nmax_age = 7\n", 2, 11, "write a unit, such as \"7d\"");
    assert_error(
        "[[prewarm]]\nname = \"m\"\ncalendar = \"w.ics\"\nlead = \"soon\"\ntables = [\"a.b\"]\n",
        4,
        8,
        "bad lead \"soon\"",
    );
}

#[test]
fn bad_globs_point_at_the_pattern() {
    let kind = assert_error(
        "[[rule]]\nmatch = \"finance\"\naction = \"deny\"\n",
        2,
        9,
        "bad pattern \"finance\" in `match`: no `.`",
    );
    assert!(matches!(kind, ErrorKind::BadGlob { field: "match", .. }));
    assert_error(
        "[[rule]]\nmatch = \"a.b\"\ncolumns = [\"email\", \"ph[o]ne\"]\n",
        3,
        21,
        "bad pattern \"ph[o]ne\" in `columns`",
    );
    assert_error("[[rule]]\nmatch = \"a.b\"\nexcept = [\"a.b.c\"]\n", 3, 11, "in `except`: more than one `.`");
    assert_error("[[rule]]\ntag = { pii = \"[x]\" }\n", 2, 15, "bad pattern \"[x]\" in `tag`");
    assert_error(
        "[[prewarm]]\nname = \"m\"\ncron = \"@daily\"\ntables = [\"sales.*\", \"orders\"]\n",
        4,
        22,
        "in `tables`: no `.`",
    );
    assert_error(
        "[[prewarm]]\nname = \"m\"\ncron = \"@daily\"\ntables = [\"a.b\"]\ncolumns = [\"x\", \"{y}\"]\n",
        5,
        17,
        "bad pattern \"{y}\" in `columns`",
    );
    assert_error(
        "[[prewarm]]\nname = \"m\"\ncalendar = \"w.ics\"\ntitle = \"[board]\"\ntables = [\"a.b\"]\n",
        4,
        9,
        "in `title`",
    );
}

#[test]
fn bad_crons_point_at_the_expression() {
    let kind =
        assert_error("[refresh]\ncron = \"every five minutes\"\n", 2, 8, "bad cron expression \"every five minutes\"");
    assert!(matches!(kind, ErrorKind::BadCron { .. }));
    assert_error("[evict]\ncron = \"0 0 25 * * *\"\n", 2, 8, "bad cron");
    assert_error("[[prewarm]]\nname = \"m\"\ncron = \"45 8 * * 1\"\ntables = [\"a.b\"]\n", 3, 8, "uses numbers");
}

#[test]
fn duplicate_prewarm_names() {
    let text = "\
[[prewarm]]
name = \"monday\"
cron = \"@daily\"
tables = [\"a.b\"]

[[prewarm]]
name = \"monday\"
cron = \"@weekly\"
tables = [\"c.d\"]
";
    let kind = assert_error(text, 7, 8, "duplicate prewarm job name \"monday\"");
    assert_eq!(kind, ErrorKind::DuplicatePrewarmName { name: "monday".into(), first_line: 2 });
}

#[test]
fn rule_without_selector() {
    let text = "[[rule]]\nmatch = \"a.b\"\n\n[[rule]]\naction = \"deny\"\n";
    let kind = assert_error(text, 4, 1, "this rule selects nothing");
    assert_eq!(kind, ErrorKind::RuleWithoutSelector);
    // An inline array of tables points at the rule's table.
    assert_error("rule = [{ match = \"a.b\" }, { action = \"deny\" }]\n", 1, 28, "selects nothing");
}

#[test]
fn other_bad_values() {
    for (text, line, column, needle) in [
        ("[local]\nkeep_snapshots = 0\n", 2, 18, "at least 1"),
        ("[local]\nkeep_snapshots = \"3\"\n", 2, 18, "at least 1"),
        ("[[rule]]\ncolumns = []\n", 2, 11, "empty list selects no column"),
        ("[[rule]]\ntag = {}\n", 2, 7, "empty tag table"),
        ("[[rule]]\ntag = { pii = 1.5 }\n", 2, 15, "not a float"),
        ("[[prewarm]]\nname = \" \"\ncron = \"@daily\"\ntables = [\"a.b\"]\n", 2, 8, "non-empty name"),
        ("[[prewarm]]\nname = \"m\"\ncron = \"@daily\"\ntables = []\n", 4, 10, "at least one"),
        (
            "[[prewarm]]\nname = \"m\"\ncron = \"@daily\"\ntables = [\"a.b\"]\ncolumns = \"warm\"\n",
            5,
            11,
            "expected \"hot\", \"all\" or a list",
        ),
        (
            "[[prewarm]]\nname = \"m\"\ncron = \"@daily\"\ntables = [\"a.b\"]\ncolumns = 3\n",
            5,
            11,
            "invalid type: integer",
        ),
        (
            "[[prewarm]]\nname = \"m\"\ncron = \"@daily\"\ntables = [\"a.b\"]\nsnapshot = \"first\"\n",
            5,
            12,
            "only \"latest\"",
        ),
        (
            "[[prewarm]]\nname = \"m\"\ncron = \"@daily\"\ntables = [\"a.b\"]\nlead = \"15m\"\n",
            5,
            8,
            "only meaningful with `calendar",
        ),
        ("\n[[prewarm]]\nname = \"m\"\ntables = [\"a.b\"]\n", 2, 1, "never runs"),
    ] {
        let kind = assert_error(text, line, column, needle);
        assert!(matches!(kind, ErrorKind::BadValue { .. } | ErrorKind::Toml(_)), "{kind:?}");
    }
}

#[test]
fn columns_count_characters_not_bytes() {
    // `é` is two bytes but one column.
    assert_error("rule = [{ reason = \"é\", match = \"x\" }]\n", 1, 33, "no `.`");
    assert_error("[[rule]]\nmatch = \"é\" ; oops\n", 2, 13, "");
}

#[test]
fn snippet_shows_the_line() {
    let e = error("[local]\nmax_age = \"7 days ago\"\n");
    assert_eq!(e.snippet(), "  |\n2 | max_age = \"7 days ago\"\n  |           ^");
}
