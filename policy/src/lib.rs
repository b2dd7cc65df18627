//! The warmlake governance policy: parse it, decide with it, merge it, explain it.
//!
//! This crate is pure: it parses a policy from a string and answers questions. The daemon
//! reads and watches the files, fetches the central policy from the bucket, keeps the last
//! good policy when a new one fails to parse, and enforces decisions on every path (cache,
//! mirror, mount, SQL socket, prewarm).
//!
//! # The policy file
//!
//! ```toml
//! [local]                       # everything here is optional
//! mode = "allow"                # "deny": nothing of the lake is stored or shown here (default "allow")
//! default_action = "cache"      # action for tables no rule selects (default "cache";
//!                               #   "deny" turns the rules into an allow-list)
//! max_cache = "50GiB"           # hard budget; B, KB/MB/GB/TB/PB (1000^n), KiB/MiB/GiB/TiB/PiB
//!                               #   (1024^n), or an integer number of bytes (default: none)
//! min_free_disk = "10%"         # a percentage of the file system or a size (default "10%")
//! max_age = "7d"                # cached bytes older than this are dropped; s, m, h, d, w,
//!                               #   combinable: "1d12h" (default: none)
//! keep_snapshots = 3            # snapshots kept, the current one included, >= 1 (default 3)
//!
//! [[rule]]
//! match = "finance.*"           # glob over schema.table: `*`, `?`, ignoring case
//! except = ["finance.rates"]    # tables the rule does not apply to (optional)
//! action = "deny"               # "cache" (default) | "read-through" | "deny"
//! reason = "Finance data stays in the bucket"   # shown by `explain` (optional)
//!
//! [[rule]]
//! match = "crm.customers"
//! columns = ["email", "phone*"] # column globs: the rule applies to these columns only
//! action = "deny"
//!
//! [[rule]]
//! tag = { pii = "true" }        # DuckLake tags, on the table or on the column; values are globs
//! action = "read-through"
//!
//! [refresh]                     # poll the catalog (default every 5 minutes)
//! cron = "*/5 * * * *"          # crontab's 5 fields, or the cron crate's 6-7 (seconds first)
//!
//! [[prewarm]]
//! name = "monday-review"        # unique
//! cron = "45 8 * * Mon"         # days of week by name only
//! tables = ["sales.*"]
//! columns = "hot"               # "hot" (default) | "all" | ["amount", "region*"]
//! snapshot = "latest"           # the only choice today (default)
//! catch_up = true               # run once at wake if a run was missed (default false)
//!
//! [[prewarm]]
//! name = "board-meetings"
//! calendar = "~/calendars/work.ics"   # fire `lead` before each matching event (incl. RRULE)
//! lead = "30m"                        # default "15m"
//! title = "*board*"                   # glob over event titles, ignoring case (default "*")
//! tables = ["finance.kpis", "sales.orders"]
//! columns = "all"
//!
//! [evict]                       # apply max_cache and max_age (default hourly)
//! cron = "0 * * * *"
//! ```
//!
//! Unknown keys are errors (a typo must not silently drop a restriction), and every error,
//! syntactic or semantic, names the file, line and column of the offending value.
//!
//! # Precedence
//!
//! The strictest applicable rule wins, whatever the order (`cache < read-through < deny`);
//! `default_action` applies to tables no rule selects; a column is never less strict than
//! its table. Why, and how exceptions are written: see [`decision`].
//!
//! # Central and local
//!
//! `central.tightened_by(&local)` is the effective policy: for every object at least as
//! strict as either, with the stricter of every limit. See [`merge`].
//!
//! # Example
//!
//! ```
//! use warmlake_policy::{Action, ColumnRef, Policy, TableRef};
//!
//! let policy = Policy::parse(
//!     r#"
//! [local]
//! max_cache = "50GiB"
//! max_age = "7d"
//!
//! [[rule]]
//! match = "finance.*"
//! except = ["finance.rates"]
//! action = "deny"
//!
//! [[rule]]
//! match = "crm.customers"
//! columns = ["email", "phone"]
//! action = "deny"
//!
//! [[rule]]
//! tag = { pii = "true" }
//! action = "read-through"
//!
//! [[prewarm]]
//! name = "monday-review"
//! cron = "45 8 * * Mon"
//! tables = ["sales.*"]
//! columns = "hot"
//!
//! [refresh]
//! cron = "0 */5 * * * *"
//! "#,
//!     "policy.toml",
//! )?;
//!
//! let ledger = TableRef::new("finance", "ledger");
//! assert_eq!(policy.table_decision(&ledger).action, Action::Deny);
//! assert_eq!(policy.table_action(&TableRef::new("finance", "rates")), Action::Cache);
//!
//! let pii = [("pii".to_string(), "true".to_string())];
//! let customers = TableRef::new("crm", "customers").with_tags(&pii);
//! assert_eq!(policy.table_action(&customers), Action::ReadThrough);
//! let email = policy.column_decision(&customers, &ColumnRef::new("email"));
//! assert_eq!(email.action, Action::Deny);
//! assert!(email.reason.contains("policy.toml (line 11"), "{}", email.reason);
//!
//! assert_eq!(policy.limits().max_cache(), Some(50 << 30));
//! assert_eq!(policy.schedules().prewarm()[0].name, "monday-review");
//! println!("{}", policy.explain(&customers, Some(&ColumnRef::new("email"))));
//! # Ok::<(), warmlake_policy::PolicyError>(())
//! ```

pub mod action;
pub mod decision;
pub mod duration;
pub mod error;
pub mod explain;
pub mod glob;
pub mod limits;
pub mod merge;
mod parse;
pub mod policy;
pub mod rule;
pub mod schedule;
pub mod setting;
pub mod size;

pub use action::{Action, Mode};
pub use decision::{ColumnRef, Decision, RuleId, TableRef};
pub use error::{ErrorKind, PolicyError};
pub use explain::{Explanation, LayerTrace, ObjectName, RuleTrace};
pub use glob::{Glob, QualifiedGlob};
pub use limits::Limits;
pub use policy::{Layer, Policy};
pub use rule::{Rule, Scope, TagCondition};
pub use schedule::{CalendarTrigger, ColumnSelection, Cron, PrewarmJob, Schedules, SnapshotSelection};
pub use setting::{Origin, Setting};
pub use size::ByteSize;

#[cfg(test)]
mod tests;
