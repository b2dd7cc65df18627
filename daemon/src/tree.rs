//! The lake as a folder: the daemon's [`Tree`] for the FUSE mount.
//!
//! Layout (see the README):
//! - `<schema>/<table>/<file>`: the data files of the current snapshot, named as in the lake
//!   (partition folders kept); `<schema>/<table>/_deletes/<file>`: its delete files;
//! - `lake.sql`: a DuckDB script with one view per table, exact DuckLake semantics, reading
//!   the files through this mount (`duckdb -init <mount>/lake.sql`);
//! - `.snapshots/<id>/...`: the same for every kept snapshot;
//! - `.warmlake/status.json`: the daemon's state.
//!
//! Everything but file contents comes from the published snapshots, so `ls` and `stat` never
//! touch the network. Publishing a new state swaps one `Arc`: a lookup sees the old tree or
//! the new one, never a mix, and an open file keeps the object it opened.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use warmlake_fuse_mount::{Attr, DirEntry, NodeKind, OpenFile, Tree, TreeError, TreePath};

use crate::catalog::LakeSnapshot;
use crate::governance::{Access, FileRules, Governed};
use crate::lake_path::LakeKey;
use crate::layout::{self, Layout};
use crate::view_sql;

/// An object of the lake, as the tree knows it from the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub key: LakeKey,
    pub size: u64,
    /// Parquet metadata length (the footer is this plus 8 bytes), when the catalog records it.
    pub footer_size: Option<u64>,
    /// `schema.table` the object belongs to, for metrics and policy.
    pub table: String,
    /// The catalog gives it an `encryption_key`: its bytes are opaque (cached whole, never parsed).
    pub encrypted: bool,
    /// Whether the policy lets its bytes be stored on this machine (else read-through).
    pub store: bool,
    /// Field ids of columns the policy denies: reads of their column chunks fail with `EACCES`.
    pub denied_fields: Arc<[i32]>,
}

/// Why an object's bytes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The object is gone from the store (expired, compacted away).
    #[error("{key} is missing from the store")]
    NotFound { key: LakeKey },
    /// Not cached, and the store cannot be reached right now.
    #[error("{key} is unavailable: {reason}")]
    Unavailable { key: LakeKey, reason: String },
    /// The object in the store is not the version read before (another ETag): what was
    /// cached of it is dropped, and so must be what readers hold of it.
    #[error("{key} changed in the store: {reason}")]
    Changed { key: LakeKey, reason: String },
    /// A local read failed.
    #[error("{key}: {source}")]
    Io { key: LakeKey, source: std::io::Error },
}

/// Where file contents come from: the chunk cache in the daemon, a local folder for lakes that
/// live on this machine.
pub trait ObjectSource: Send + Sync + 'static {
    /// Exactly `min(len, size - offset)` bytes of the object at `offset`, or an error. Bytes of
    /// an object with `store == false` must not be written to disk.
    fn read(&self, object: &ObjectRef, offset: u64, len: u64) -> Result<Vec<u8>, SourceError>;

    /// The object's Parquet layout (column chunk ranges by field id), or `None` when it is not
    /// a Parquet file that can be parsed. Used to refuse reads of denied columns.
    fn layout(&self, object: &ObjectRef) -> Result<Option<Arc<Layout>>, SourceError>;

    /// Bytes from `from` on that the source already holds on this machine and a reader that
    /// has just read up to `from` will likely read next (the mount puts them in the page cache
    /// ahead of it). Never fetches. Default: none.
    fn read_ahead(&self, object: &ObjectRef, from: u64) -> Option<Vec<u8>> {
        let _ = (object, from);
        None
    }
}

/// Reads objects straight from a local data root (a lake on local disk needs no cache).
pub struct LocalSource {
    root: PathBuf,
    /// Parsed footers, for files with denied columns.
    layouts: Mutex<HashMap<LakeKey, Option<Arc<Layout>>>>,
}

impl LocalSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalSource { root: root.into(), layouts: Mutex::new(HashMap::new()) }
    }
}

impl ObjectSource for LocalSource {
    fn layout(&self, object: &ObjectRef) -> Result<Option<Arc<Layout>>, SourceError> {
        if let Some(known) = self.layouts.lock().unwrap_or_else(|e| e.into_inner()).get(&object.key) {
            return Ok(known.clone());
        }
        let parsed = if object.encrypted || object.size < layout::FOOTER_TAIL_LEN {
            None
        } else {
            let tail = self.read(object, object.size - layout::FOOTER_TAIL_LEN, layout::FOOTER_TAIL_LEN)?;
            let meta_len = object.footer_size.map(Ok).unwrap_or_else(|| layout::metadata_len_from_tail(&tail));
            match meta_len.and_then(|n| layout::footer_range(object.size, n)) {
                Ok(range) => {
                    let footer = self.read(object, range.start, range.end - range.start)?;
                    layout::parse_footer(&footer, object.size).ok().map(Arc::new)
                }
                Err(_) => None,
            }
        };
        self.layouts.lock().unwrap_or_else(|e| e.into_inner()).insert(object.key.clone(), parsed.clone());
        Ok(parsed)
    }

    fn read(&self, object: &ObjectRef, offset: u64, len: u64) -> Result<Vec<u8>, SourceError> {
        use std::os::unix::fs::FileExt as _;
        let path = self.root.join(object.key.as_str());
        let file = std::fs::File::open(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => SourceError::NotFound { key: object.key.clone() },
            _ => SourceError::Io { key: object.key.clone(), source },
        })?;
        let want = len.min(object.size.saturating_sub(offset));
        let mut buf = vec![0u8; usize::try_from(want).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut buf, offset).map_err(|source| SourceError::Io { key: object.key.clone(), source })?;
        Ok(buf)
    }
}

enum Node {
    Dir(Vec<DirEntry>),
    Object(ObjectRef),
    Generated(Arc<[u8]>),
    /// `.warmlake/status.json`: replaced on its own (every few seconds), not with the tree.
    Status,
}

/// One published state of the whole tree.
struct State {
    nodes: HashMap<String, Node>,
    mtime: SystemTime,
    /// The current snapshot's views (the root `lake.sql` without its settings).
    script: String,
    /// The kept snapshots' views, as `<schema>@<snapshot>` schemas, over their paths.
    history: String,
}

/// The daemon's tree: published snapshots over an [`ObjectSource`].
pub struct LakeTree {
    mount_root: PathBuf,
    source: Arc<dyn ObjectSource>,
    state: RwLock<Arc<State>>,
    status: RwLock<Arc<[u8]>>,
    /// What the policy in force allows, consulted on every read: a file opened before the
    /// policy tightened obeys the new policy from its next read on.
    access: Arc<RwLock<Arc<Access>>>,
}

impl LakeTree {
    /// A tree for a mount at `mount_root` (used to write absolute paths into `lake.sql`),
    /// empty until the first [`LakeTree::publish`].
    pub fn new(mount_root: impl Into<PathBuf>, source: Arc<dyn ObjectSource>) -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(String::new(), Node::Dir(Vec::new()));
        LakeTree {
            mount_root: mount_root.into(),
            source,
            state: RwLock::new(Arc::new(State {
                nodes,
                mtime: SystemTime::UNIX_EPOCH,
                script: String::new(),
                history: String::new(),
            })),
            status: RwLock::new(Arc::from(&b"{}\n"[..])),
            access: Arc::new(RwLock::new(Arc::new(Access::default()))),
        }
    }

    /// Replaces what the tree shows, atomically: `current` at the root and each of `kept`
    /// under `.snapshots/<id>/`, as the policy lets this machine see them.
    pub fn publish(&self, current: &Governed, kept: &[Governed]) {
        let mut b = Builder { nodes: BTreeMap::new(), mount_root: self.mount_root.clone() };
        let script = b.snapshot("", current).current;
        let mut history = String::new();
        for s in kept {
            history.push_str(&b.snapshot(&format!(".snapshots/{}", s.snapshot.snapshot.id), s).history);
        }
        b.dir(".snapshots");
        b.insert(".warmlake/status.json", Node::Status);
        let mtime = snapshot_time(&current.snapshot);
        let nodes = b.finish();
        let next = Arc::new(State { nodes, mtime, script, history });
        let access = Arc::new(current.access.clone());
        match self.access.write() {
            Ok(mut guard) => *guard = access,
            Err(poisoned) => *poisoned.into_inner() = access,
        }
        match self.state.write() {
            Ok(mut guard) => *guard = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }

    /// Replaces `.warmlake/status.json`.
    pub fn set_status(&self, status: &serde_json::Value) {
        let mut bytes = serde_json::to_vec_pretty(status).unwrap_or_default();
        bytes.push(b'\n');
        match self.status.write() {
            Ok(mut guard) => *guard = bytes.into(),
            Err(poisoned) => *poisoned.into_inner() = bytes.into(),
        }
    }

    /// The current snapshot's views over this tree's paths (`lake.sql` without the reader
    /// settings it starts with), once published.
    pub fn script(&self) -> String {
        self.current().script.clone()
    }

    /// The kept snapshots' views for time travel: `"<schema>@<snapshot>".<table>` over the
    /// files of `.snapshots/<snapshot>/`.
    pub fn history_script(&self) -> String {
        self.current().history.clone()
    }

    fn status_bytes(&self) -> Arc<[u8]> {
        match self.status.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn current(&self) -> Arc<State> {
        match self.state.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

fn snapshot_time(s: &LakeSnapshot) -> SystemTime {
    chrono::DateTime::parse_from_rfc3339(&s.snapshot.time)
        .ok()
        .and_then(|t| u64::try_from(t.timestamp_micros()).ok())
        .map(|us| SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(us))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Settings `lake.sql` starts with. DuckDB reads only the column chunks a query needs instead
/// of coalescing neighbours: in the mount, a chunk of a column the policy denies is unreadable,
/// and every byte read is a byte the cache fetches and the heat statistics count.
const READER_SETTINGS: &str = "-- Read only the column chunks a query needs (see warmlake's README).\n\
                               SET disable_parquet_prefetching = true;\n";

/// The views of one snapshot over this tree's paths: as the lake's schemas, and as the
/// `<schema>@<snapshot>` schemas of time travel.
struct Scripts {
    current: String,
    history: String,
}

/// Collects nodes by path; directories are implied by the files below them.
struct Builder {
    nodes: BTreeMap<String, Option<Node>>,
    mount_root: PathBuf,
}

impl Builder {
    fn dir(&mut self, path: &str) {
        let mut p = path.trim_matches('/').to_string();
        loop {
            self.nodes.entry(p.clone()).or_insert(None);
            match p.rfind('/') {
                Some(i) => p.truncate(i),
                None if p.is_empty() => break,
                None => p.clear(),
            }
        }
    }

    fn insert(&mut self, path: &str, node: Node) {
        if let Some(i) = path.rfind('/') {
            self.dir(&path[..i]);
        } else {
            self.dir("");
        }
        self.nodes.insert(path.to_string(), Some(node));
    }

    fn file(&mut self, path: &str, bytes: Vec<u8>) {
        self.insert(path, Node::Generated(bytes.into()));
    }

    /// Adds one snapshot under `prefix`; returns its views scripts.
    fn snapshot(&mut self, prefix: &str, governed: &Governed) -> Scripts {
        let lake = &governed.snapshot;
        let join = |rest: &str| if prefix.is_empty() { rest.to_string() } else { format!("{prefix}/{rest}") };
        let mut urls: HashMap<LakeKey, String> = HashMap::new();
        for schema in &lake.schemas {
            self.dir(&join(schema));
        }
        for t in &lake.tables {
            let table_dir = join(&format!("{}/{}", t.schema, t.name));
            self.dir(&table_dir);
            let qualified = format!("{}.{}", t.schema, t.name);
            let FileRules { store, denied_fields } = governed.access.rules_for(&qualified).unwrap_or_default();
            for f in &t.files {
                let path = format!("{table_dir}/{}", f.name);
                urls.insert(f.key.clone(), self.mount_root.join(&path).to_string_lossy().into_owned());
                let object = ObjectRef {
                    key: f.key.clone(),
                    size: u64::try_from(f.size).unwrap_or(0),
                    footer_size: f.footer_size.and_then(|s| u64::try_from(s).ok()),
                    table: qualified.clone(),
                    encrypted: f.encryption_key.is_some(),
                    store,
                    denied_fields: denied_fields.clone(),
                };
                self.insert(&path, Node::Object(object));
                for d in &f.deletes {
                    let name = d.name.rsplit('/').next().unwrap_or(&d.name);
                    let path = format!("{table_dir}/_deletes/{name}");
                    urls.insert(d.key.clone(), self.mount_root.join(&path).to_string_lossy().into_owned());
                    let object = ObjectRef {
                        key: d.key.clone(),
                        size: u64::try_from(d.size).unwrap_or(0),
                        footer_size: d.footer_size.and_then(|s| u64::try_from(s).ok()),
                        table: qualified.clone(),
                        encrypted: d.encryption_key.is_some(),
                        store,
                        // Delete files hold positions, not column values.
                        denied_fields: Arc::from(Vec::new()),
                    };
                    self.insert(&path, Node::Object(object));
                }
            }
        }
        let url = |k: &LakeKey| urls.get(k).cloned().unwrap_or_else(|| k.to_string());
        let script = view_sql::lake_script(lake, &url);
        self.file(&join("lake.sql"), format!("{READER_SETTINGS}{script}").into_bytes());
        Scripts { history: view_sql::lake_script(&view_sql::at_snapshot(lake), &url), current: script }
    }

    fn finish(self) -> HashMap<String, Node> {
        let mut children: HashMap<String, Vec<DirEntry>> = HashMap::new();
        for (path, node) in &self.nodes {
            if path.is_empty() {
                continue;
            }
            let (parent, name) = match path.rfind('/') {
                Some(i) => (&path[..i], &path[i + 1..]),
                None => ("", path.as_str()),
            };
            let kind = if node.is_none() { NodeKind::Directory } else { NodeKind::File };
            children.entry(parent.to_string()).or_default().push(DirEntry::new(name, kind));
        }
        self.nodes
            .into_iter()
            .map(|(path, node)| {
                let node = node.unwrap_or_else(|| Node::Dir(children.remove(&path).unwrap_or_default()));
                (path, node)
            })
            .collect()
    }
}

impl Tree for LakeTree {
    fn attr(&self, path: &TreePath) -> Result<Attr, TreeError> {
        let state = self.current();
        match state.nodes.get(path.as_str()) {
            Some(Node::Dir(_)) => Ok(Attr::directory(state.mtime)),
            Some(Node::Object(o)) => Ok(Attr::file(o.size, state.mtime)),
            Some(Node::Generated(b)) => Ok(Attr::file(b.len() as u64, state.mtime)),
            Some(Node::Status) => Ok(Attr::file(self.status_bytes().len() as u64, SystemTime::now())),
            None => Err(TreeError::NotFound { path: path.clone() }),
        }
    }

    fn list(&self, dir: &TreePath) -> Result<Vec<DirEntry>, TreeError> {
        match self.current().nodes.get(dir.as_str()) {
            Some(Node::Dir(entries)) => Ok(entries.clone()),
            Some(_) => Err(TreeError::NotADirectory { path: dir.clone() }),
            None => Err(TreeError::NotFound { path: dir.clone() }),
        }
    }

    fn open(&self, path: &TreePath) -> Result<Arc<dyn OpenFile>, TreeError> {
        match self.current().nodes.get(path.as_str()) {
            Some(Node::Dir(_)) => Err(TreeError::IsADirectory { path: path.clone() }),
            Some(Node::Object(o)) => Ok(Arc::new(OpenObject {
                path: path.clone(),
                object: o.clone(),
                source: Arc::clone(&self.source),
                access: Arc::clone(&self.access),
            })),
            Some(Node::Generated(b)) => Ok(Arc::new(OpenGenerated { bytes: Arc::clone(b) })),
            Some(Node::Status) => Ok(Arc::new(OpenGenerated { bytes: self.status_bytes() })),
            None => Err(TreeError::NotFound { path: path.clone() }),
        }
    }
}

struct OpenObject {
    path: TreePath,
    object: ObjectRef,
    source: Arc<dyn ObjectSource>,
    access: Arc<RwLock<Arc<Access>>>,
}

impl OpenFile for OpenObject {
    fn size(&self) -> u64 {
        self.object.size
    }

    /// A file with denied columns is read with direct I/O: the kernel would otherwise widen a
    /// reader's request to its readahead window, and a read of an allowed column would touch a
    /// denied one and fail. Direct reads reach the tree as the reader made them.
    fn keep_cache(&self) -> bool {
        self.object.denied_fields.is_empty()
    }

    fn read_at(&self, offset: u64, len: u32) -> Result<Vec<u8>, TreeError> {
        if offset >= self.object.size {
            return Ok(Vec::new());
        }
        let Some(object) = self.current() else {
            return Err(TreeError::PermissionDenied {
                path: self.path.clone(),
                reason: format!("the policy denies {}", self.object.table),
            });
        };
        if !object.denied_fields.is_empty() {
            self.check_allowed(&object, offset, u64::from(len))?;
        }
        self.source.read(&object, offset, u64::from(len)).map_err(|e| self.tree_error(e))
    }

    /// What the source holds locally after the read, when the policy lets this file's bytes
    /// rest on the machine and denies none of its columns (such a file is read with direct I/O
    /// anyway, and pages of it must not be filled ahead of a check).
    fn read_ahead(&self, offset: u64, len: u32) -> Option<(u64, Vec<u8>)> {
        let object = self.current()?;
        if !object.store || !object.denied_fields.is_empty() {
            return None;
        }
        let from = offset.saturating_add(u64::from(len)).min(object.size);
        self.source.read_ahead(&object, from).map(|bytes| (from, bytes))
    }
}

impl OpenObject {
    /// The object under the policy in force now, not the one the file was opened under; `None`
    /// when the policy now denies its table.
    fn current(&self) -> Option<std::borrow::Cow<'_, ObjectRef>> {
        let access = match self.access.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        let rules = access.rules_for(&self.object.table)?;
        Some(if rules.store == self.object.store && rules.denied_fields == self.object.denied_fields {
            std::borrow::Cow::Borrowed(&self.object)
        } else {
            std::borrow::Cow::Owned(ObjectRef {
                store: rules.store,
                denied_fields: rules.denied_fields,
                ..self.object.clone()
            })
        })
    }

    /// Refuses a read that touches a column chunk of a denied column. A file whose layout
    /// cannot be known is refused whole: failing closed is the only safe answer.
    fn check_allowed(&self, object: &ObjectRef, offset: u64, len: u64) -> Result<(), TreeError> {
        let denied = |reason: String| TreeError::PermissionDenied { path: self.path.clone(), reason };
        let layout = self.source.layout(object).map_err(|e| self.tree_error(e))?;
        let Some(layout) = layout else {
            return Err(denied("the file has a column the policy denies, and its layout cannot be read".into()));
        };
        let end = offset.saturating_add(len).min(object.size);
        // Every chunk is checked, not a binary search: a file whose chunks overlap (malformed,
        // or hostile) must not slip a denied chunk past the check.
        let hit = layout.chunks.iter().find(|c| {
            c.field_id.is_some_and(|id| object.denied_fields.contains(&id))
                && c.range.start < end
                && offset < c.range.end
        });
        match hit {
            Some(chunk) => {
                tracing::info!(path = %self.path, column = %chunk.path, "read of a denied column refused");
                Err(denied(format!("column {} is denied by the policy", chunk.path)))
            }
            None => Ok(()),
        }
    }

    fn tree_error(&self, e: SourceError) -> TreeError {
        match e {
            // The catalog lists the file but the store lost it: ENOENT, as a deleted file.
            SourceError::NotFound { .. } => {
                tracing::warn!(path = %self.path, key = %self.object.key, "object missing from the store");
                TreeError::NotFound { path: self.path.clone() }
            }
            SourceError::Unavailable { reason, .. } => TreeError::Unavailable { path: self.path.clone(), reason },
            SourceError::Changed { reason, .. } => TreeError::Changed { path: self.path.clone(), reason },
            SourceError::Io { source, .. } => TreeError::Io { path: self.path.clone(), source },
        }
    }
}

struct OpenGenerated {
    bytes: Arc<[u8]>,
}

impl OpenFile for OpenGenerated {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_at(&self, offset: u64, len: u32) -> Result<Vec<u8>, TreeError> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.bytes.len());
        let end = start.saturating_add(len as usize).min(self.bytes.len());
        Ok(self.bytes[start..end].to_vec())
    }

    fn keep_cache(&self) -> bool {
        // Generated files (lake.sql, status.json) change at the same path on every publish.
        false
    }
}
