//! `warmlake policy check` and `warmlake policy explain`: the policy as the daemon would load
//! it (the same `PolicySource`, so the same defaults, merge and error messages), printed.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use warmlake_daemon::catalog::{CatalogLocation, CatalogReader};
use warmlake_daemon::policy_source::{CentralPolicy, LocalPolicy, PolicySource, PolicySourceConfig, PolicySourceError};
use warmlake_daemon::store::StoreConfig;
use warmlake_policy::{ColumnRef, ObjectName, Policy, TableRef};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file and print the effective policy: mode, limits, rules, schedules.
    Check(CheckArgs),
    /// Say which rule decides what happens to a table or column, and why, file by file.
    Explain(ExplainArgs),
    /// Make the running daemon re-read its policy files now (instead of at the next change).
    Reload(crate::ctl::Common),
}

/// Where the policy comes from, shared by both subcommands.
#[derive(Args)]
pub struct Sources {
    /// Central policy to tighten by the local file (`s3://bucket/.warmlake/policy.toml`,
    /// `file:///...`); credentials from the usual `AWS_*` variables.
    #[arg(long, value_name = "URL")]
    central: Option<String>,
}

#[derive(Args)]
pub struct CheckArgs {
    /// The policy file (default: policy.toml beside the default config, which may be absent).
    file: Option<PathBuf>,
    #[command(flatten)]
    sources: Sources,
}

#[derive(Args)]
pub struct ExplainArgs {
    /// `schema.table` or `schema.table.column` (quote a part holding a dot: "a.b".t).
    object: String,
    /// The policy file (default: policy.toml beside the default config, which may be absent).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    #[command(flatten)]
    sources: Sources,
    /// A table tag, as DuckLake's `ducklake_tag` would hold it (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = key_value)]
    tags: Vec<(String, String)>,
    /// A column tag, as `ducklake_column_tag` would hold it (repeatable; needs a column).
    #[arg(long = "column-tag", value_name = "KEY=VALUE", value_parser = key_value)]
    column_tags: Vec<(String, String)>,
    /// Read the table's and column's tags from this catalog (DuckDB file, sqlite:PATH,
    /// postgres:CONN); `--tag` and `--column-tag` add to them.
    #[arg(long, value_name = "LOCATION")]
    catalog: Option<String>,
    /// The snapshot whose tags to read (default: the latest).
    #[arg(long, requires = "catalog")]
    snapshot: Option<i64>,
    /// Print the explanation as JSON.
    #[arg(long)]
    json: bool,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?}: expected KEY=VALUE")),
    }
}

pub fn run(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Check(args) => check(args),
        PolicyCommand::Explain(args) => explain(args),
        PolicyCommand::Reload(common) => crate::ctl::policy_reload(&common),
    }
}

/// The effective policy and what is wrong with its sources (e.g. an unreachable central
/// policy, in force from a saved copy or failing closed).
struct Loaded {
    policy: Policy,
    problems: Option<String>,
    /// The local file, and whether it exists.
    file: PathBuf,
    file_exists: bool,
}

/// Loads the policy through `PolicySource`, as the daemon does. A malformed file is printed as
/// `file:line:column: reason` (what editors jump to) with the offending line, before failing.
fn load(file: Option<PathBuf>, sources: Sources) -> anyhow::Result<Loaded> {
    let local = match file {
        Some(path) => LocalPolicy::explicit(path),
        None => LocalPolicy::default_file(),
    };
    let (file, file_exists) = (local.path.clone(), local.path.exists());
    let central = sources.central.map(|url| CentralPolicy { url, store: StoreConfig::default(), saved_copy: None });
    let config = PolicySourceConfig { local: Some(local), central, ..PolicySourceConfig::default() };
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    let (policy, problems) = runtime.block_on(PolicySource::load_once(&config)).map_err(report)?;
    Ok(Loaded { policy, problems, file, file_exists })
}

fn report(e: PolicySourceError) -> anyhow::Error {
    match e.policy_error() {
        Some(located) => {
            eprintln!("{located}\n{}", located.snippet());
            anyhow::anyhow!("{} is not a valid policy", located.file)
        }
        None => e.into(),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let loaded = load(args.file, args.sources)?;
    if loaded.file_exists {
        println!("{} is valid.", loaded.file.display());
    } else {
        println!("No policy file at {}: nothing local to apply.", loaded.file.display());
    }
    if let Some(problems) = &loaded.problems {
        println!("problems:\n{problems}");
    }
    println!("\neffective policy:\n{}", loaded.policy);
    Ok(())
}

/// A table's and (optionally) a column's tags, from the catalog and the command line.
struct Tags {
    table: Vec<(String, String)>,
    column: Vec<(String, String)>,
}

fn catalog_tags(location: &str, snapshot: Option<i64>, name: &ObjectName) -> anyhow::Result<Tags> {
    let reader = CatalogReader::open(&CatalogLocation::parse(location), None).context("opening the catalog")?;
    let id = match snapshot {
        Some(id) => id,
        None => reader.latest_snapshot().context("reading the latest snapshot")?.id,
    };
    let snap = reader.read_snapshot(id).context("reading the snapshot")?;
    // DuckDB names are case-insensitive: an exact match first, then any.
    let table = snap.table(&name.schema, &name.table).or_else(|| {
        snap.tables
            .iter()
            .find(|t| t.schema.eq_ignore_ascii_case(&name.schema) && t.name.eq_ignore_ascii_case(&name.table))
    });
    let table =
        table.with_context(|| format!("no table {}.{} in {location} at snapshot {id}", name.schema, name.table))?;
    let column = match &name.column {
        Some(c) => {
            let def = table
                .columns
                .iter()
                .find(|d| d.name == *c)
                .or_else(|| table.columns.iter().find(|d| d.name.eq_ignore_ascii_case(c)));
            let def =
                def.with_context(|| format!("no column {c} in {}.{} at snapshot {id}", table.schema, table.name))?;
            def.tags.clone().into_iter().collect()
        }
        None => Vec::new(),
    };
    Ok(Tags { table: table.tags.clone().into_iter().collect(), column })
}

fn explain(args: ExplainArgs) -> anyhow::Result<()> {
    let name: ObjectName = args.object.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    anyhow::ensure!(
        name.column.is_some() || args.column_tags.is_empty(),
        "--column-tag needs a column: explain schema.table.column"
    );
    // The catalog is read before any runtime exists: its PostgreSQL backend runs a runtime of
    // its own and must not be driven from inside another.
    let mut tags = match &args.catalog {
        Some(location) => catalog_tags(location, args.snapshot, &name)?,
        None => Tags { table: Vec::new(), column: Vec::new() },
    };
    tags.table.extend(args.tags);
    tags.column.extend(args.column_tags);
    let loaded = load(args.policy, args.sources)?;
    let table = TableRef::new(&name.schema, &name.table).with_tags(&tags.table);
    let column = name.column.as_deref().map(|c| ColumnRef::new(c).with_tags(&tags.column));
    let explanation = loaded.policy.explain(&table, column.as_ref());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
    } else {
        if let Some(problems) = &loaded.problems {
            println!("problems:\n{problems}\n");
        }
        println!("{explanation}");
    }
    Ok(())
}
