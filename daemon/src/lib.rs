//! The warmlake daemon library: DuckLake catalog reading, the lake generator, and the SQL
//! that gives DuckDB exact DuckLake semantics. See `docs/ARCHITECTURE.md` for the whole picture.

pub mod cache;
pub mod cached_source;
pub mod catalog;
pub mod config;
pub mod control;
pub mod daemon;
mod file_watch;
pub mod generate;
pub mod governance;
mod heap;
pub mod jobs;
pub mod lake_path;
pub mod layout;
pub mod local_query;
pub mod mirror;
pub mod paths;
pub mod policy_source;
pub mod prewarm;
pub mod redact;
pub mod scheduler;
pub mod sql;
pub mod store;
pub mod tree;
pub mod view_sql;
