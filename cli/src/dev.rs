//! `warmlake dev ...`: tools for developers and benchmarks.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use warmlake_daemon::catalog::{CatalogLocation, CatalogReader};
use warmlake_daemon::generate::{self, CatalogKind, DataStore, LakeSpec, Targets};
use warmlake_daemon::local_query;
use warmlake_daemon::store::StoreConfig;

#[derive(Subcommand)]
pub enum DevCommand {
    /// Write a DuckLake 1.0 lake (catalog + Parquet files) into a folder, or its Parquet files
    /// into an object store (--data).
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
    /// Upload the Parquet files to this object store URL instead of DIR/data (s3://bucket/prefix/,
    /// gs://, az://, file:///dir/). It becomes every catalog's data_path and must hold nothing
    /// yet; the catalog files still go to DIR.
    #[arg(long, value_name = "URL")]
    pub data: Option<String>,
    /// An option of the --data store, by object_store's name: aws_endpoint, aws_region,
    /// aws_access_key_id, aws_secret_access_key, aws_allow_http, ... Repeatable; what is not
    /// given comes from AWS_*, GOOGLE_* or AZURE_* environment variables.
    #[arg(long = "store-option", value_name = "KEY=VALUE", value_parser = parse_store_option, requires = "data")]
    pub store_options: Vec<(String, String)>,
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

fn parse_store_option(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// The store configuration of `--store-option`s. `allow_http` (under any backend's prefix)
/// is taken out and set as [`StoreConfig::allow_http`]: the store builds its HTTP client from
/// that field, so passed on as a backend option it would be silently overridden.
fn store_config(options: &[(String, String)]) -> anyhow::Result<StoreConfig> {
    let mut config = StoreConfig::default();
    for (key, value) in options {
        let bare = ["aws_", "google_", "azure_"].iter().find_map(|p| key.strip_prefix(p)).unwrap_or(key);
        if bare == "allow_http" {
            config.allow_http =
                value.parse().with_context(|| format!("--store-option {key}={value}: expected true or false"))?;
        } else {
            config.options.push((key.clone(), value.clone()));
        }
    }
    Ok(config)
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
            let data = match a.data {
                Some(url) => Some(DataStore { url, config: store_config(&a.store_options)? }),
                None => None,
            };
            let lake = generate::generate_to(&a.dir, &spec, &kinds, &Targets { postgres: a.postgres, data })?;
            for c in &lake.catalogs {
                println!("catalog  {}", c.display());
            }
            if let Some(pg) = &lake.postgres {
                println!("catalog  {pg}");
            }
            match &lake.data_url {
                Some(url) => println!("data     {url}"),
                None => println!("data     {}", lake.data_dir.display()),
            }
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
            print!("{}", crate::sql_client::render_table(&result));
            Ok(())
        }
    }
}
