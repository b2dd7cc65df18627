//! Hostile policy text: the full example of the docs, mutated at random (characters deleted,
//! inserted and replaced, lines dropped, duplicated or cut, values swapped for odd ones), must
//! parse or fail with an error that points inside the text, never panic. A policy file is
//! edited by hand and fetched from the organisation's store, so any text can arrive.

use proptest::prelude::*;

use super::parsing::FULL;
use crate::Policy;

/// Odd values an editor or a truncated download leaves behind.
const ODD: [&str; 16] = [
    "",
    "\"",
    "\"\"\"",
    "[",
    "[[rule]]",
    "=",
    "\u{0}",
    "ü",
    "\"99999999999999999999999GiB\"",
    "-1",
    "1e400",
    "\"*/0 * * * *\"",
    "\"61 25 * * *\"",
    "\"**.**\"",
    "{ pii = 1 }",
    "[\"a\", 3]",
];

#[derive(Debug, Clone)]
enum Edit {
    DeleteChar(usize),
    InsertOdd(usize, usize),
    ReplaceValue(usize, usize),
    DropLine(usize),
    DuplicateLine(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::DeleteChar),
        (any::<usize>(), 0..ODD.len()).prop_map(|(at, v)| Edit::InsertOdd(at, v)),
        (any::<usize>(), 0..ODD.len()).prop_map(|(line, v)| Edit::ReplaceValue(line, v)),
        any::<usize>().prop_map(Edit::DropLine),
        any::<usize>().prop_map(Edit::DuplicateLine),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

/// The char boundary at or before `at % (len + 1)`.
fn boundary(text: &str, at: usize) -> usize {
    let mut i = at % (text.len() + 1);
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &str, e: &Edit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines.len();
    match *e {
        Edit::DeleteChar(at) => {
            let mut s = text.to_string();
            let i = boundary(&s, at);
            if i < s.len() {
                s.remove(i);
            }
            return s;
        }
        Edit::InsertOdd(at, v) => {
            let mut s = text.to_string();
            s.insert_str(boundary(text, at), ODD[v]);
            return s;
        }
        Edit::Truncate(at) => return text[..boundary(text, at)].to_string(),
        _ if n == 0 => return text.to_string(),
        Edit::ReplaceValue(line, v) => {
            let l = &mut lines[line % n];
            if let Some((key, _)) = l.split_once('=') {
                *l = format!("{key}= {}", ODD[v]);
            }
        }
        Edit::DropLine(line) => {
            lines.remove(line % n);
        }
        Edit::DuplicateLine(line) => {
            let l = lines[line % n].clone();
            lines.insert(line % n, l);
        }
    }
    lines.join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_policies_parse_or_point_at_the_problem(edits in proptest::collection::vec(edit(), 1..5)) {
        let text = edits.iter().fold(FULL.to_string(), |t, e| apply(&t, e));
        if let Err(e) = Policy::parse(&text, "policy.toml") {
            let lines = text.lines().count().max(1);
            prop_assert!(e.line >= 1 && e.line <= lines + 1, "line {} of {lines}: {e}", e.line);
            prop_assert!(e.column >= 1, "{e}");
            let message = e.to_string();
            prop_assert!(message.starts_with(&format!("policy.toml:{}:{}", e.line, e.column)), "{message}");
            prop_assert!(!e.snippet().is_empty());
        }
    }
}
