//! Tests across modules: parsing (every error kind at its exact position), decisions (globs,
//! tags, columns, precedence), explain output, and the central/local merge property.

mod decisions;
mod errors;
mod explain;
mod merge;
mod merge_props;
mod parse_fuzz;
mod parsing;

use crate::{ColumnRef, Policy, TableRef};

pub(crate) fn parse(text: &str) -> Policy {
    Policy::parse(text, "policy.toml").unwrap_or_else(|e| panic!("{e}\n{}", e.snippet()))
}

pub(crate) fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub(crate) fn table<'a>(schema: &'a str, name: &'a str) -> TableRef<'a> {
    TableRef::new(schema, name)
}

pub(crate) fn column(name: &str) -> ColumnRef<'_> {
    ColumnRef::new(name)
}
