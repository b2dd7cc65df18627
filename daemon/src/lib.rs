//! The warmlake daemon library: DuckLake catalog reading, the lake generator, and the SQL
//! that gives DuckDB exact DuckLake semantics. See `docs/ARCHITECTURE.md` for the whole picture.

pub mod catalog;
pub mod generate;
pub mod lake_path;
pub mod local_query;
pub mod view_sql;
