//! `warmlake service install|uninstall|status`: run the daemon as the user's background
//! service, a systemd user unit on Linux and a launchd agent on macOS.
//!
//! The files are the repository's `systemd/warmlake.service` and
//! `launchd/dev.warmlake.daemon.plist`, compiled in, with this binary's path and the config
//! file filled in, so the service runs exactly the warmlake that installed it. Both platforms'
//! code is compiled everywhere (`--platform` renders either), only the one matching the OS is
//! enabled.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use warmlake_daemon::config::{self, Config};

const SYSTEMD_UNIT: &str = include_str!("../../systemd/warmlake.service");
const LAUNCHD_PLIST: &str = include_str!("../../launchd/dev.warmlake.daemon.plist");
const UNIT_NAME: &str = "warmlake.service";
const LAUNCHD_LABEL: &str = "dev.warmlake.daemon";

#[derive(Subcommand)]
pub enum ServiceCommand {
    /// Write the service file for this platform with your paths, and enable and start it.
    Install(InstallArgs),
    /// Stop and disable the service and remove its file.
    Uninstall(PlatformArgs),
    /// Whether the service file is installed, and what the service manager says of it.
    Status(PlatformArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Platform {
    /// A systemd user unit (Linux).
    Systemd,
    /// A launchd user agent (macOS).
    Launchd,
}

#[derive(Args)]
pub struct PlatformArgs {
    /// The service manager (default: this system's).
    #[arg(long, value_enum)]
    platform: Option<Platform>,
}

#[derive(Args)]
pub struct InstallArgs {
    /// The config file the service runs with (default: the platform's, see `warmlake daemon`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The warmlake binary the service runs (default: this one).
    #[arg(long, value_name = "FILE")]
    binary: Option<PathBuf>,
    /// Print the service file instead of installing it.
    #[arg(long)]
    print: bool,
    /// Write the file but do not enable or start the service.
    #[arg(long)]
    no_enable: bool,
    #[command(flatten)]
    platform: PlatformArgs,
}

pub fn run(cmd: ServiceCommand) -> anyhow::Result<()> {
    match cmd {
        ServiceCommand::Install(args) => install(args),
        ServiceCommand::Uninstall(args) => uninstall(platform(&args)),
        ServiceCommand::Status(args) => status(platform(&args)),
    }
}

fn platform(args: &PlatformArgs) -> Platform {
    args.platform.unwrap_or(if cfg!(target_os = "macos") { Platform::Launchd } else { Platform::Systemd })
}

fn install(args: InstallArgs) -> anyhow::Result<()> {
    let platform = platform(&args.platform);
    let config_path = args.config.unwrap_or_else(config::default_path);
    // The service must find the same file from any working directory, and a config that does
    // not load would only fail later, in a log.
    Config::load(&config_path)?;
    let config_path =
        std::fs::canonicalize(&config_path).with_context(|| format!("resolving {}", config_path.display()))?;
    let binary = match args.binary {
        Some(b) => std::fs::canonicalize(&b).with_context(|| format!("resolving {}", b.display()))?,
        None => std::env::current_exe().context("finding this warmlake binary")?,
    };
    let text = match platform {
        Platform::Systemd => systemd_unit(&binary, &config_path)?,
        Platform::Launchd => launchd_plist(&binary, &config_path, &home()?.join("Library/Logs/warmlake"))?,
    };
    if args.print {
        print!("{text}");
        return Ok(());
    }
    let path = service_file(platform)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    if args.no_enable {
        match platform {
            Platform::Systemd => {
                println!("enable it with: systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}")
            }
            Platform::Launchd => println!(
                "load it with: launchctl bootstrap gui/{} {}",
                rustix::process::getuid().as_raw(),
                path.display()
            ),
        }
        return Ok(());
    }
    match platform {
        Platform::Systemd => {
            run_tool("systemctl", &["--user", "daemon-reload"])?;
            run_tool("systemctl", &["--user", "enable", "--now", UNIT_NAME])?;
            println!("enabled and started {UNIT_NAME}; logs: journalctl --user -u {UNIT_NAME}");
        }
        Platform::Launchd => {
            std::fs::create_dir_all(home()?.join("Library/Logs/warmlake")).context("creating the log folder")?;
            let plist = path.to_string_lossy();
            run_tool("launchctl", &["bootstrap", &gui_domain(), &plist])?;
            println!("loaded {LAUNCHD_LABEL}; logs: ~/Library/Logs/warmlake/daemon.log");
        }
    }
    Ok(())
}

fn uninstall(platform: Platform) -> anyhow::Result<()> {
    let path = service_file(platform)?;
    match platform {
        // Stopping a service that is not loaded fails; removing its file is what matters.
        Platform::Systemd => {
            let _ = run_tool("systemctl", &["--user", "disable", "--now", UNIT_NAME]);
        }
        Platform::Launchd => {
            let _ = run_tool("launchctl", &["bootout", &format!("{}/{LAUNCHD_LABEL}", gui_domain())]);
        }
    }
    match std::fs::remove_file(&path) {
        Ok(()) => println!("removed {}", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => println!("not installed ({} is absent)", path.display()),
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    if platform == Platform::Systemd {
        let _ = run_tool("systemctl", &["--user", "daemon-reload"]);
    }
    Ok(())
}

fn status(platform: Platform) -> anyhow::Result<()> {
    let path = service_file(platform)?;
    anyhow::ensure!(
        path.exists(),
        "the service is not installed ({} is absent): warmlake service install",
        path.display()
    );
    println!("installed: {}", path.display());
    match platform {
        Platform::Systemd => run_tool("systemctl", &["--user", "status", "--no-pager", UNIT_NAME]),
        Platform::Launchd => run_tool("launchctl", &["print", &format!("{}/{LAUNCHD_LABEL}", gui_domain())]),
    }
}

/// The unit with `ExecStart` running `binary daemon --config config`.
fn systemd_unit(binary: &Path, config: &Path) -> anyhow::Result<String> {
    let exec = format!("ExecStart={} daemon --config {}", systemd_quote(binary)?, systemd_quote(config)?);
    let mut replaced = false;
    let lines: Vec<String> = SYSTEMD_UNIT
        .lines()
        .map(|l| {
            if l.starts_with("ExecStart=") {
                replaced = true;
                exec.clone()
            } else {
                l.to_string()
            }
        })
        .collect();
    anyhow::ensure!(replaced, "the built-in unit has no ExecStart line");
    Ok(lines.join("\n") + "\n")
}

/// A path as one systemd command-line word: quoted, with `\`, `"`, `%` and `$` escaped (systemd
/// would expand the last two as specifiers and variables).
fn systemd_quote(path: &Path) -> anyhow::Result<String> {
    let text = path.to_str().with_context(|| format!("{} is not UTF-8", path.display()))?;
    anyhow::ensure!(!text.contains('\n'), "{} holds a line break", path.display());
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%").replace('$', "$$");
    Ok(format!("\"{escaped}\""))
}

/// The plist with the binary, config and log folder filled in (XML-escaped).
fn launchd_plist(binary: &Path, config: &Path, logs: &Path) -> anyhow::Result<String> {
    let xml = |p: &Path| -> anyhow::Result<String> {
        let text = p.to_str().with_context(|| format!("{} is not UTF-8", p.display()))?;
        Ok(text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"))
    };
    // Only the body: the template's comment names the placeholders too.
    let (head, body) = LAUNCHD_PLIST.split_once("<plist").context("the built-in plist has no <plist>")?;
    let body =
        body.replace("@WARMLAKE@", &xml(binary)?).replace("@CONFIG@", &xml(config)?).replace("@LOGS@", &xml(logs)?);
    Ok(format!("{head}<plist{body}"))
}

fn service_file(platform: Platform) -> anyhow::Result<PathBuf> {
    Ok(match platform {
        Platform::Systemd => {
            let config_home = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
                Some(dir) => PathBuf::from(dir),
                None => home()?.join(".config"),
            };
            config_home.join("systemd/user").join(UNIT_NAME)
        }
        Platform::Launchd => home()?.join("Library/LaunchAgents").join(format!("{LAUNCHD_LABEL}.plist")),
    })
}

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).context("HOME is not set")
}

fn gui_domain() -> String {
    format!("gui/{}", rustix::process::getuid().as_raw())
}

/// Runs a service manager command, its output going to the user.
fn run_tool(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let status =
        Command::new(program).args(args).status().with_context(|| format!("running {program} (is it installed?)"))?;
    anyhow::ensure!(status.success(), "`{program} {}` failed ({status})", args.join(" "));
    Ok(())
}
