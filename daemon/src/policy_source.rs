//! The policy in force, kept live: the central policy from the lake's store, tightened by the
//! local file, republished whenever either changes.
//!
//! # Sources
//!
//! - **Local file** ([`LocalPolicy`]). Watched (see `local`), so an edit applies within a
//!   second or so, and re-read every [`PolicySourceConfig::recheck_interval`] in case the watch
//!   missed it. A file named by the user's config (`required`) must exist; the default file
//!   (`~/.config/warmlake/policy.toml`) may be absent, which means "no local layer". Deleting
//!   a required file is an error (the last good policy stays); deleting the default file
//!   removes the local layer, which is what the user asked for.
//! - **Central policy** ([`CentralPolicy`]): one object in the store (`s3://bucket/.warmlake/
//!   policy.toml`), fetched at start, every `recheck_interval` (a conditional GET: an unchanged
//!   policy costs one request and no body) and on [`PolicySource::reload_now`]. Each good one
//!   is saved to local disk, so a laptop that starts offline still enforces it.
//!
//! The effective policy is `central.tightened_by(local)`: the local file can tighten, never
//! loosen (see `warmlake_policy::merge`). With neither source it is [`Policy::default`]:
//! everything may be cached.
//!
//! # Failures
//!
//! A policy that does not parse never replaces a good one. At start there is no good one to
//! keep, so [`PolicySource::start`] fails with `file:line:column: reason`, except for a central
//! policy that cannot be *fetched* (offline, not published yet): then the saved copy is used,
//! and without one the daemon fails closed with [`Policy::deny_all`] (nothing of the lake is
//! shown or stored) and keeps trying. Starting is not refused in that case because the
//! network often comes up after the daemon, and a daemon that recovers on its own beats one
//! the user must restart. After start, every failure is logged once (when its message
//! changes), kept for [`PolicySource::last_error`], and cleared by the next good load.
//!
//! # Concurrency
//!
//! Two tasks, one per source, so a central fetch stuck in retries never delays a local edit.
//! Each updates its half of the shared state under one `std::sync::Mutex` and republishes the merged
//! policy before releasing it, so the `watch` channel sees updates in the order they were made.
//! No `.await` happens under the lock. Dropping the [`PolicySource`] aborts both tasks and
//! stops the file watch.

mod central;
mod local;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use warmlake_policy::{Policy, PolicyError};

pub use local::LocalError;

use crate::file_watch::FileWatch;
use crate::store::{StoreConfig, StoreError};
use central::{CentralStore, Fetched};

/// After an event on the local file, wait until it has been quiet this long before reading
/// it: editors write in several steps (truncate then write, or write a temporary file then
/// rename), and reading between the steps would see a half-written policy.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Read the file after this long even if events keep coming (a program rewriting it in a
/// loop), so an edit is never postponed indefinitely.
const MAX_DEBOUNCE: Duration = Duration::from_secs(1);

/// The local policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPolicy {
    /// The file.
    pub path: PathBuf,
    /// Whether the file must exist. True for a file the user named: a typo in the path must
    /// not silently run without the restrictions the user wrote.
    pub required: bool,
}

impl LocalPolicy {
    /// `$XDG_CONFIG_HOME/warmlake/policy.toml` (`~/.config/warmlake/policy.toml`), which may be
    /// absent.
    pub fn default_file() -> LocalPolicy {
        LocalPolicy { path: default_local_path(), required: false }
    }

    /// A file the user named, which must exist.
    pub fn explicit(path: impl Into<PathBuf>) -> LocalPolicy {
        LocalPolicy { path: path.into(), required: true }
    }
}

/// The default local policy file: `policy.toml` next to the default config
/// (`~/.config/warmlake/policy.toml` on Linux, see [`crate::paths`]).
pub fn default_local_path() -> PathBuf {
    crate::paths::Dirs::current().config.join("policy.toml")
}

/// The organisation's policy, published in the lake's store.
#[derive(Debug, Clone)]
pub struct CentralPolicy {
    /// URL of the policy object: `s3://bucket/.warmlake/policy.toml`, any scheme
    /// [`crate::store::Store::open`] accepts, `file://` included. It is also the file name in
    /// the policy's messages and origins.
    pub url: String,
    /// How to reach the store (usually the lake's own store options).
    pub store: StoreConfig,
    /// Where the last good central policy is saved (`<state>/policy/central.toml`), so a start
    /// without network still enforces it. `None`: not saved, and an offline start fails closed.
    /// A user can edit this copy, but only until the next fetch; it guards against accidents
    /// (no network), not against the machine's owner.
    pub saved_copy: Option<PathBuf>,
}

/// Where the policy comes from and how often it is checked.
#[derive(Debug, Clone)]
pub struct PolicySourceConfig {
    /// The local file; `None`: no local layer.
    pub local: Option<LocalPolicy>,
    /// The central policy; `None`: none.
    pub central: Option<CentralPolicy>,
    /// How often the central policy is refetched and the local file re-read even without a
    /// change event. Five minutes: a central change reaches every laptop within that, for one
    /// small conditional GET each; local edits normally arrive through the watch at once.
    pub recheck_interval: Duration,
}

impl Default for PolicySourceConfig {
    /// The default local file, no central policy.
    fn default() -> Self {
        PolicySourceConfig {
            local: Some(LocalPolicy::default_file()),
            central: None,
            recheck_interval: Duration::from_secs(300),
        }
    }
}

/// No good policy could be loaded at start.
#[derive(Debug, thiserror::Error)]
pub enum PolicySourceError {
    /// The local file is missing (when required), unreadable or malformed.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// The central policy was fetched but does not parse, and no saved copy does.
    #[error(transparent)]
    CentralInvalid(Box<PolicyError>),
    /// The central policy's URL or store options do not describe a store.
    #[error("central policy: {0}")]
    CentralStore(#[from] StoreError),
}

impl PolicySourceError {
    /// The parse error, with its file, line and column, when a policy was malformed (for a
    /// caret snippet: [`PolicyError::snippet`]).
    pub fn policy_error(&self) -> Option<&PolicyError> {
        match self {
            PolicySourceError::Local(LocalError::Invalid(e)) | PolicySourceError::CentralInvalid(e) => Some(e),
            PolicySourceError::Local(_) | PolicySourceError::CentralStore(_) => None,
        }
    }
}

/// What each source last contributed. The two tasks each write their half.
#[derive(Default)]
struct State {
    /// The local layer in force (`None`: no local file).
    local: Option<Policy>,
    /// The central policy configured: its URL and the last good policy fetched, if any.
    central: Option<(String, Option<Policy>)>,
    local_error: Option<String>,
    central_error: Option<String>,
}

impl State {
    /// Both sources' errors, central first, one per line.
    fn errors(&self) -> Option<String> {
        let errors: Vec<&str> =
            [&self.central_error, &self.local_error].into_iter().flatten().map(String::as_str).collect();
        (!errors.is_empty()).then(|| errors.join("\n"))
    }

    fn effective(&self) -> Policy {
        let central = self.central.as_ref().map(|(url, good)| match good {
            Some(policy) => policy.clone(),
            None => Policy::deny_all(&format!("the central policy {url} (not fetched yet)")),
        });
        match (central, &self.local) {
            (Some(c), Some(l)) => c.tightened_by(l),
            (Some(c), None) => c,
            (None, Some(l)) => l.clone(),
            (None, None) => Policy::default(),
        }
    }
}

/// What the handle and the tasks share.
struct Shared {
    state: Mutex<State>,
    policy: watch::Sender<Arc<Policy>>,
}

/// Which source an error belongs to.
#[derive(Clone, Copy)]
enum Source {
    Local,
    Central,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-written (every update is a
        // few assignments), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies `update` and republishes the effective policy if it changed.
    fn update(&self, update: impl FnOnce(&mut State)) {
        let mut state = self.lock();
        update(&mut state);
        let effective = state.effective();
        let changed = self.policy.send_if_modified(|current| {
            if **current == effective {
                return false;
            }
            *current = Arc::new(effective);
            true
        });
        drop(state);
        if changed {
            tracing::info!("policy changed; now in force:\n{}", *self.policy.borrow());
        }
    }

    /// Records `error` for `source` (`None`: it is fixed), logging when the message changes.
    fn set_error(&self, source: Source, error: Option<String>) {
        let mut state = self.lock();
        let slot = match source {
            Source::Local => &mut state.local_error,
            Source::Central => &mut state.central_error,
        };
        if *slot == error {
            return;
        }
        let old = std::mem::replace(slot, error.clone());
        drop(state);
        match (error, old) {
            (Some(e), _) => tracing::error!("{e}"),
            (None, Some(old)) => tracing::info!("policy error resolved: {old}"),
            (None, None) => {}
        }
    }
}

/// The effective policy, kept live. See the module docs.
pub struct PolicySource {
    shared: Arc<Shared>,
    /// Ask a task to reload now; it answers when done.
    reloads: Vec<mpsc::Sender<oneshot::Sender<()>>>,
    tasks: Vec<AbortHandle>,
}

impl Drop for PolicySource {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl PolicySource {
    /// Loads the policy and starts watching it, on the current tokio runtime. Fails when no
    /// good policy can be had (see the module docs). From synchronous code inside the runtime
    /// (a `spawn_blocking` thread), call `tokio::runtime::Handle::current().block_on(..)`.
    pub async fn start(config: PolicySourceConfig) -> Result<PolicySource, PolicySourceError> {
        // Watch before the first read, so an edit made while starting is not missed.
        let changed = Arc::new(Notify::new());
        let watch = config.local.as_ref().and_then(|l| {
            match FileWatch::start(std::slice::from_ref(&l.path), "policy file", changed.clone()) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!("cannot watch policy files ({e}); edits apply at the next periodic re-read");
                    None
                }
            }
        });
        let (state, central) = load_initial(&config).await?;
        if let Some(e) = &state.central_error {
            tracing::error!("{e}");
        }
        let effective = state.effective();
        let shared = Arc::new(Shared { state: Mutex::new(state), policy: watch::channel(Arc::new(effective)).0 });

        let mut source = PolicySource { shared: shared.clone(), reloads: Vec::new(), tasks: Vec::new() };
        if let Some(l) = config.local {
            let (tx, rx) = mpsc::channel(4);
            let task = LocalTask { config: l, shared: shared.clone(), changed, _watch: watch };
            source.tasks.push(tokio::spawn(task.run(rx, config.recheck_interval)).abort_handle());
            source.reloads.push(tx);
        }
        if let Some((store, start)) = central {
            let (tx, rx) = mpsc::channel(4);
            let task = CentralTask { store, shared: shared.clone(), etag: start.etag, good: start.policy };
            source.tasks.push(tokio::spawn(task.run(rx, config.recheck_interval)).abort_handle());
            source.reloads.push(tx);
        }
        tracing::info!("policy in force:\n{}", source.current());
        Ok(source)
    }

    /// Loads the policy once, exactly as [`PolicySource::start`] would, without watching or
    /// logging anything (`warmlake policy check` and `explain`). Returns the effective policy
    /// and, like [`PolicySource::last_error`], what is wrong with its sources.
    pub async fn load_once(config: &PolicySourceConfig) -> Result<(Policy, Option<String>), PolicySourceError> {
        let (state, _) = load_initial(config).await?;
        Ok((state.effective(), state.errors()))
    }

    /// A receiver that sees every new effective policy (`changed().await`, then `borrow()`).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Policy>> {
        self.shared.policy.subscribe()
    }

    /// The effective policy now.
    pub fn current(&self) -> Arc<Policy> {
        self.shared.policy.borrow().clone()
    }

    /// What is wrong right now, one line per source (`file:line:column: reason` for a malformed
    /// file, or why the central policy cannot be fetched), while the last good policy stays in
    /// force; `None` when both sources are fine. For `warmlake status`.
    pub fn last_error(&self) -> Option<String> {
        self.shared.lock().errors()
    }

    /// Re-reads the local file and refetches the central policy now, and returns the effective
    /// policy once both are applied (`warmlake policy reload`, or after the user edits a file
    /// the watch cannot see). Failures go to [`PolicySource::last_error`] as usual.
    pub async fn reload_now(&self) -> Arc<Policy> {
        let mut answers = Vec::new();
        for reload in &self.reloads {
            let (tx, rx) = oneshot::channel();
            if reload.send(tx).await.is_ok() {
                answers.push(rx);
            }
        }
        for answer in answers {
            // An error means the task is gone (only if it panicked); the current policy stands.
            let _ = answer.await;
        }
        self.current()
    }
}

/// The first load of both sources: the state to start from, and the central store with what
/// its first fetch found.
async fn load_initial(
    config: &PolicySourceConfig,
) -> Result<(State, Option<(CentralStore, CentralStart)>), PolicySourceError> {
    let mut state = State::default();
    if let Some(l) = &config.local {
        state.local = local::load(l).await?;
    }
    let central = match &config.central {
        Some(c) => {
            let store = CentralStore::open(c)?;
            let start = first_central(&store).await?;
            state.central = Some((store.url().to_string(), start.policy.clone()));
            state.central_error = start.error.clone();
            Some((store, start))
        }
        None => None,
    };
    Ok((state, central))
}

/// Waits until events on the local file have been quiet for [`DEBOUNCE`] (at most
/// [`MAX_DEBOUNCE`]).
async fn settle(changed: &Notify) {
    let deadline = Instant::now() + MAX_DEBOUNCE;
    loop {
        tokio::select! {
            () = changed.notified() => if Instant::now() >= deadline { return },
            () = tokio::time::sleep(DEBOUNCE) => return,
        }
    }
}

/// A ticker for the periodic re-check, first firing one interval from now.
fn ticker(every: Duration) -> tokio::time::Interval {
    let every = every.max(Duration::from_millis(1));
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

struct LocalTask {
    config: LocalPolicy,
    shared: Arc<Shared>,
    changed: Arc<Notify>,
    /// Held so the watch lives as long as the task.
    _watch: Option<FileWatch>,
}

impl LocalTask {
    async fn run(self, mut reloads: mpsc::Receiver<oneshot::Sender<()>>, every: Duration) {
        let mut tick = ticker(every);
        loop {
            let mut answer = None;
            tokio::select! {
                () = self.changed.notified() => settle(&self.changed).await,
                _ = tick.tick() => {}
                Some(tx) = reloads.recv() => answer = Some(tx),
            }
            self.reload().await;
            if let Some(tx) = answer {
                let _ = tx.send(());
            }
        }
    }

    async fn reload(&self) {
        match local::load(&self.config).await {
            Ok(policy) => {
                self.shared.update(|s| s.local = policy);
                self.shared.set_error(Source::Local, None);
            }
            Err(e) => self.shared.set_error(Source::Local, Some(format!("{e} (keeping the last good local policy)"))),
        }
    }
}

/// The central policy after the first fetch.
struct CentralStart {
    policy: Option<Policy>,
    etag: Option<String>,
    error: Option<String>,
}

/// The first fetch of the central policy, falling back to the saved copy. Fails only when the
/// policy was fetched, does not parse, and no saved copy does either.
async fn first_central(store: &CentralStore) -> Result<CentralStart, PolicySourceError> {
    let (fetch_error, invalid) = match store.fetch(None).await {
        Ok(Fetched::Text { text, etag }) => match Policy::parse(&text, store.url()) {
            Ok(policy) => {
                store.save(text).await;
                return Ok(CentralStart { policy: Some(policy), etag, error: None });
            }
            Err(e) => (e.to_string(), Some(e)),
        },
        // Nothing was asked to be unchanged from; read as "no answer".
        Ok(Fetched::NotModified) => (format!("the store gave no central policy {}", store.url()), None),
        Err(e) => (e.to_string(), None),
    };
    if let Some((path, text)) = store.read_saved().await {
        match Policy::parse(&text, store.url()) {
            Ok(policy) => {
                let error = format!("{fetch_error} (using the copy saved at {})", path.display());
                return Ok(CentralStart { policy: Some(policy), etag: None, error: Some(error) });
            }
            Err(e) => tracing::warn!("ignoring the saved central policy {}: {e}", path.display()),
        }
    }
    match invalid {
        Some(e) => Err(PolicySourceError::CentralInvalid(Box::new(e))),
        None => Ok(CentralStart {
            policy: None,
            etag: None,
            error: Some(format!("{fetch_error} (nothing of the lake is shown or stored until it is fetched)")),
        }),
    }
}

struct CentralTask {
    store: CentralStore,
    shared: Arc<Shared>,
    /// ETag of the policy in force, for conditional fetches.
    etag: Option<String>,
    /// The central policy in force, to skip saving and republishing an unchanged one.
    good: Option<Policy>,
}

impl CentralTask {
    async fn run(mut self, mut reloads: mpsc::Receiver<oneshot::Sender<()>>, every: Duration) {
        let mut tick = ticker(every);
        loop {
            let mut answer = None;
            tokio::select! {
                _ = tick.tick() => {}
                Some(tx) = reloads.recv() => answer = Some(tx),
            }
            self.refetch().await;
            if let Some(tx) = answer {
                let _ = tx.send(());
            }
        }
    }

    async fn refetch(&mut self) {
        let keeping = if self.good.is_some() {
            "keeping the last good central policy"
        } else {
            "nothing of the lake is shown or stored until it is fetched"
        };
        let error = match self.store.fetch(self.etag.as_deref()).await {
            Ok(Fetched::NotModified) => None,
            Ok(Fetched::Text { text, etag }) => match Policy::parse(&text, self.store.url()) {
                Ok(policy) => {
                    self.etag = etag;
                    if self.good.as_ref() != Some(&policy) {
                        self.good = Some(policy.clone());
                        let url = self.store.url().to_string();
                        self.shared.update(|s| s.central = Some((url, Some(policy))));
                        self.store.save(text).await;
                    }
                    None
                }
                Err(e) => Some(format!("{e} ({keeping})")),
            },
            Err(e) => Some(format!("{e} ({keeping})")),
        };
        self.shared.set_error(Source::Central, error);
    }
}
