//! `warmlake daemon`: run in the foreground until Ctrl-C or SIGTERM.
//!
//! Under systemd (`systemd/warmlake.service`, `Type=notify`) it reports READY=1 once the
//! mirror is read, the lake mounted and the SQL and control sockets bound, and STOPPING=1 when a signal
//! arrives, so `systemctl --user start` returns when the lake is usable.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use sd_notify::NotifyState;
use warmlake_daemon::config::{self, Config};
use warmlake_daemon::daemon::Daemon;

#[derive(Args)]
pub struct DaemonArgs {
    /// Config file (default: ~/.config/warmlake/config.toml; macOS: ~/Library/Application
    /// Support/warmlake/config.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: DaemonArgs) -> anyhow::Result<()> {
    let path = args.config.unwrap_or_else(config::default_path);
    let config = Config::load(&path)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_signal()?;
        let handle = tokio::runtime::Handle::current();
        let daemon = tokio::task::spawn_blocking(move || Daemon::start(config, handle)).await??;
        let status = daemon.status();
        let serving = format!(
            "serving {} at snapshot {}{}{}",
            status.lake,
            status.snapshot.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            status.mount.map(|m| format!(", mounted at {}", m.display())).unwrap_or_default(),
            status.sql_socket.map(|s| format!(", SQL socket {}", s.display())).unwrap_or_default()
        );
        daemon
            .run(async {
                // `run` first polls this once its control socket is bound: only then is the
                // daemon ready for `warmlake status` as well as for the mount and SQL.
                eprintln!("warmlake: {serving}");
                notify(&[NotifyState::Ready, NotifyState::Status(&serving)]);
                shutdown.await;
                notify(&[NotifyState::Stopping, NotifyState::Status("unmounting and stopping")]);
            })
            .await?;
        anyhow::Ok(())
    })
}

/// Tells systemd (a `Type=notify` unit) how the daemon is doing; without `NOTIFY_SOCKET` (a
/// terminal, launchd) it does nothing. A failure is logged, never fatal: the daemon serves
/// either way, and systemd reports a unit that never got READY=1 itself.
fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "could not notify the service manager");
    }
}

/// A future that completes on Ctrl-C (SIGINT) or SIGTERM, the signals a terminal and a service
/// manager send. The handlers are installed when this is called (inside a runtime), not when
/// the future is first polled, so a signal that arrives in between is not lost and cannot
/// kill the process before it has unmounted.
pub fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
