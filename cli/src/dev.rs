//! `warmlake dev ...`: tools for developers and benchmarks.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use warmlake_daemon::catalog::{CatalogLocation, CatalogReader};
use warmlake_daemon::generate::{self, CatalogKind, LakeSpec};
use warmlake_daemon::local_query;

#[derive(Subcommand)]
pub enum DevCommand {
    /// Write a DuckLake 1.0 lake (catalog + Parquet files) into a folder.
    MakeLake(MakeLakeArgs),
    /// Print what a catalog holds at a snapshot (JSON).
    Inspect(InspectArgs),
    /// Run SQL over a local lake with exact DuckLake semantics.
    Query(QueryArgs),
    /// Print the DuckDB views of a local lake (`duckdb -init` them), reading its files in place.
    LakeSql(InspectArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Catalogs {
    Duckdb,
    Sqlite,
    Both,
    /// No catalog file: only the PostgreSQL catalog of `--postgres`.
    None,
}

#[derive(Args)]
pub struct MakeLakeArgs {
    /// Folder to write the lake into (created; must not already hold a catalog).
    pub dir: PathBuf,
    /// Which catalog files to write.
    #[arg(long, value_enum, default_value = "duckdb")]
    pub catalog: Catalogs,
    /// Also write the catalog into this PostgreSQL database (libpq connection string or URL;
    /// tables go to the first schema of its search_path). Its data_path is DIR/data, absolute.
    #[arg(long, value_name = "CONN")]
    pub postgres: Option<String>,
    /// Rows of web.events.
    #[arg(long, default_value_t = LakeSpec::default().events_rows)]
    pub events_rows: u64,
    /// Data files web.events is split into.
    #[arg(long, default_value_t = LakeSpec::default().events_files)]
    pub events_files: u64,
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = LakeSpec::default().row_group_rows)]
    pub row_group_rows: u64,
    /// Append snapshots of sales.orders.
    #[arg(long, default_value_t = LakeSpec::default().order_batches)]
    pub order_batches: u64,
    /// Uncompressed, dictionary-free Parquet (for tests that grep raw bytes).
    #[arg(long)]
    pub plain: bool,
}

#[derive(Args)]
pub struct InspectArgs {
    /// Catalog: a DuckDB file, sqlite:PATH, a path to a SQLite file, or postgres:CONN.
    pub catalog: String,
    /// Snapshot id (default: the latest).
    #[arg(long)]
    pub snapshot: Option<i64>,
}

#[derive(Args)]
pub struct QueryArgs {
    /// Catalog: a DuckDB file, sqlite:PATH, a path to a SQLite file, or postgres:CONN.
    pub catalog: String,
    /// SQL to run; tables are `schema.table`.
    pub sql: String,
    /// Snapshot id (default: the latest).
    #[arg(long)]
    pub snapshot: Option<i64>,
}

/// The lake in `catalog` at `snapshot` (the newest when `None`).
fn read_lake(catalog: &str, snapshot: Option<i64>) -> anyhow::Result<warmlake_daemon::catalog::LakeSnapshot> {
    let reader = CatalogReader::open(&CatalogLocation::parse(catalog), None)?;
    let id = match snapshot {
        Some(id) => id,
        None => reader.latest_snapshot()?.id,
    };
    Ok(reader.read_snapshot(id)?)
}

pub fn run(cmd: DevCommand) -> anyhow::Result<()> {
    match cmd {
        DevCommand::MakeLake(a) => {
            let kinds = match a.catalog {
                Catalogs::Duckdb => vec![CatalogKind::DuckDb],
                Catalogs::Sqlite => vec![CatalogKind::Sqlite],
                Catalogs::Both => vec![CatalogKind::DuckDb, CatalogKind::Sqlite],
                Catalogs::None if a.postgres.is_some() => vec![],
                Catalogs::None => anyhow::bail!("--catalog none writes no catalog at all without --postgres"),
            };
            let spec = LakeSpec {
                events_rows: a.events_rows,
                events_files: a.events_files,
                row_group_rows: a.row_group_rows,
                order_batches: a.order_batches,
                plain: a.plain,
            };
            let lake = match &a.postgres {
                Some(conn) => generate::generate_with_postgres(&a.dir, &spec, &kinds, conn)?,
                None => generate::generate(&a.dir, &spec, &kinds)?,
            };
            for c in &lake.catalogs {
                println!("catalog  {}", c.display());
            }
            if let Some(pg) = &lake.postgres {
                println!("catalog  {pg}");
            }
            println!("data     {}", lake.data_dir.display());
            println!("{} Parquet files, {} bytes, latest snapshot {}", lake.files, lake.bytes, lake.latest_snapshot);
            Ok(())
        }
        DevCommand::Inspect(a) => {
            let lake = read_lake(&a.catalog, a.snapshot)?;
            println!("{}", serde_json::to_string_pretty(&lake).context("encoding the snapshot")?);
            Ok(())
        }
        DevCommand::LakeSql(a) => {
            let lake = read_lake(&a.catalog, a.snapshot)?;
            let root = lake.data_root.clone();
            print!("{}", warmlake_daemon::view_sql::lake_script(&lake, &|k| format!("{root}{k}")));
            Ok(())
        }
        DevCommand::Query(a) => {
            let lake = read_lake(&a.catalog, a.snapshot)?;
            let result = local_query::query_text(&lake, &a.sql)?;
            print!("{}", crate::demo::render_table(&result));
            Ok(())
        }
    }
}
