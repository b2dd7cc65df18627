//! The lake as a folder: the daemon's [`Tree`] for the FUSE mount.
//!
//! Layout (see the README):
//! - `<schema>/<table>/<file>`: the data files of the current snapshot, named as in the lake
//!   (partition folders kept); `<schema>/<table>/_deletes/<file>`: its delete files;
//! - `lake.sql`: a DuckDB script with one view per table, exact DuckLake semantics, reading
//!   the files through this mount (`duckdb -init <mount>/lake.sql`);
//! - `.snapshots/<id>/...`: the same for every kept snapshot;
//! - `.data/<path>`: every file of those snapshots at its path below the lake's data path,
//!   for a DuckLake catalog (the mirror) attached with the mount as its data path;
//! - `.warmlake/status.json`: the daemon's state.
//!
//! Everything but file contents comes from the published snapshots, so `ls` and `stat` never
//! touch the network. Publishing a new state swaps one `Arc`: a lookup sees the old tree or
//! the new one, never a mix, and an open file keeps the object it opened.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use warmlake_fuse_mount::{Attr, DirEntry, NodeKind, OpenFile, Tree, TreeError, TreePath};

use crate::catalog::LakeSnapshot;
use crate::governance::{Access, FileRules, Governed};
use crate::lake_path::LakeKey;
use crate::layout;
use crate::redact::{Redacted, Redactions};
use crate::view_sql;

/// An object of the lake, as the tree knows it from the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub key: LakeKey,
    pub size: u64,
    /// Parquet metadata length (the footer is this plus 8 bytes), when the catalog records it.
    pub footer_size: Option<u64>,
    /// `schema.table` the object belongs to, for metrics and policy (one allocation per table).
    pub table: Arc<str>,
    /// The catalog gives it an `encryption_key`: its bytes are opaque (cached whole, never parsed).
    pub encrypted: bool,
    /// Whether the policy lets its bytes be stored on this machine (else read-through).
    pub store: bool,
    /// Field ids of columns the policy denies: the file is served redacted ([`crate::redact`]),
    /// and reads of their column chunks fail with `EACCES`.
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

    /// A reader opened one of `objects`, the files of one table folder. Readers of a table read
    /// its files one after another, each from its footer, so a source that fetches may fetch
    /// the others' footers now, in the background and in parallel, rather than a round trip
    /// per file as the reader reaches it. Never blocks. Default: nothing to fetch.
    fn prefetch_footers(&self, _objects: Vec<Arc<ObjectRef>>) {}

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
}

impl LocalSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalSource { root: root.into() }
    }
}

impl ObjectSource for LocalSource {
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

/// A node of the tree. Everything in it is shared: a kept snapshot's folders point at the same
/// objects and names as the current one's, so each file of the lake costs one [`ObjectRef`]
/// and one name however many snapshots show it, plus one entry per folder it appears in.
#[derive(Clone)]
enum Node {
    Dir(Arc<Dir>),
    Object(Arc<ObjectRef>),
    Generated(Arc<str>),
    /// `.warmlake/status.json`: replaced on its own (every few seconds), not with the tree.
    Status,
}

/// A folder: its children sorted by name, found by binary search.
struct Dir {
    entries: Vec<(Arc<str>, Node)>,
}

impl Dir {
    fn child(&self, name: &str) -> Option<&Node> {
        self.entries.binary_search_by(|(n, _)| (**n).cmp(name)).ok().map(|i| &self.entries[i].1)
    }
}

/// One published state of the whole tree.
struct State {
    root: Arc<Dir>,
    mtime: SystemTime,
    /// The current snapshot's views, which the root `lake.sql` holds after [`READER_SETTINGS`].
    views: Arc<view_sql::Script>,
    /// The kept snapshots as published, for their time-travel views ([`LakeTree::history_script`]),
    /// written only when asked for: the text is as large as a `lake.sql` per kept snapshot.
    kept: Vec<Governed>,
}

/// The daemon's tree: published snapshots over an [`ObjectSource`].
pub struct LakeTree {
    mount_root: PathBuf,
    source: Arc<dyn ObjectSource>,
    /// Shared with open files, which look their path up in it on every read.
    state: Arc<RwLock<Arc<State>>>,
    status: RwLock<Arc<str>>,
    /// What the policy in force allows for the current snapshot's tables, by name: what an open
    /// file obeys when its object left the tree altogether ([`OpenObject::governed`]).
    access: Arc<RwLock<Arc<Access>>>,
    /// Files with denied columns as served: rewritten once, for `stat` and every read.
    redactions: Arc<Redactions>,
    /// Folders whose footers were handed to [`ObjectSource::prefetch_footers`] (held, so a
    /// folder is not mistaken for a new one at the same address); forgotten wholesale past
    /// [`FOOTER_FOLDERS`].
    footers_asked: Mutex<Vec<Arc<Dir>>>,
}

/// Where the mount shows the lake's files at their paths below the data path ([`Builder::data_folder`]).
pub const DATA_FOLDER: &str = ".data";

/// Folders remembered as having had their footers prefetched.
const FOOTER_FOLDERS: usize = 256;

/// Most footers prefetched when a file of a folder is opened: a table of 100,000 files is not
/// read whole by one query, and its first files' footers are what a scan reads first.
const FOOTERS_AHEAD: usize = 1024;

impl LakeTree {
    /// A tree for a mount at `mount_root` (used to write absolute paths into `lake.sql`),
    /// empty until the first [`LakeTree::publish`].
    pub fn new(mount_root: impl Into<PathBuf>, source: Arc<dyn ObjectSource>) -> Self {
        LakeTree {
            mount_root: mount_root.into(),
            source,
            state: Arc::new(RwLock::new(Arc::new(State {
                root: Arc::new(Dir { entries: Vec::new() }),
                mtime: SystemTime::UNIX_EPOCH,
                views: Arc::new(view_sql::Script::default()),
                kept: Vec::new(),
            }))),
            status: RwLock::new(Arc::from("{}\n")),
            access: Arc::new(RwLock::new(Arc::new(Access::default()))),
            redactions: Arc::new(Redactions::new()),
            footers_asked: Mutex::new(Vec::new()),
        }
    }

    /// Replaces what the tree shows, atomically: `current` at the root and each of `kept`
    /// under `.snapshots/<id>/`, as the policy lets this machine see them.
    pub fn publish(&self, current: &Governed, kept: &[Governed]) {
        let mut b = Builder::new(self.mount_root.clone());
        let views = b.snapshot("", current);
        for s in kept {
            b.snapshot(&format!(".snapshots/{}", s.snapshot.snapshot.id), s);
        }
        b.dir(".snapshots");
        b.data_folder();
        b.insert(".warmlake/status.json", Node::Status);
        let mtime = snapshot_time(&current.snapshot);
        let next = Arc::new(State { root: b.finish(), mtime, views, kept: kept.to_vec() });
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
        let mut text = serde_json::to_string_pretty(status).unwrap_or_default();
        text.push('\n');
        match self.status.write() {
            Ok(mut guard) => *guard = text.into(),
            Err(poisoned) => *poisoned.into_inner() = text.into(),
        }
    }

    /// The current snapshot's views over this tree's paths (`lake.sql` without the reader
    /// settings it starts with), once published.
    pub fn script(&self) -> view_sql::Script {
        view_sql::Script::clone(&self.current().views)
    }

    /// The current snapshot's tables that are served as unreadable, with why.
    pub fn unreadable(&self) -> Vec<(String, String)> {
        self.current().views.unreadable()
    }

    /// The kept snapshots' views for time travel: `"<schema>@<snapshot>".<table>` over the
    /// files of `.snapshots/<snapshot>/`.
    pub fn history_script(&self) -> view_sql::Script {
        let state = self.current();
        let mut history = view_sql::Script::default();
        for s in &state.kept {
            let prefix = format!(".snapshots/{}", s.snapshot.snapshot.id);
            let urls = file_urls(&self.mount_root, &prefix, &s.snapshot);
            let url = |k: &LakeKey| urls.get(k).cloned().unwrap_or_else(|| k.to_string());
            history.append(view_sql::lake_views(&view_sql::at_snapshot(&s.snapshot), &url));
        }
        history
    }

    fn status_text(&self) -> Arc<str> {
        match self.status.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn current(&self) -> Arc<State> {
        read_state(&self.state)
    }

    /// The first time a file of `folder` is opened, hands the source the folder's files whose
    /// bytes may be stored (not encrypted: those are never parsed) to prefetch their footers.
    fn prefetch_footers_of(&self, folder: &Arc<Dir>) {
        {
            let mut asked = self.footers_asked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if asked.iter().any(|d| Arc::ptr_eq(d, folder)) {
                return;
            }
            if asked.len() >= FOOTER_FOLDERS {
                asked.clear();
            }
            asked.push(Arc::clone(folder));
        }
        let objects: Vec<Arc<ObjectRef>> = folder
            .entries
            .iter()
            .filter_map(|(_, node)| match node {
                Node::Object(o) if o.store && !o.encrypted => Some(Arc::clone(o)),
                _ => None,
            })
            .take(FOOTERS_AHEAD)
            .collect();
        if objects.len() > 1 {
            self.source.prefetch_footers(objects);
        }
    }
}

impl State {
    /// The node at `path`, walking down from the root.
    fn node(&self, path: &TreePath) -> Option<Node> {
        self.node_at(path.segments())
    }

    /// The node at the path of these segments.
    fn node_at<'a>(&self, segments: impl Iterator<Item = &'a str>) -> Option<Node> {
        let mut node = Node::Dir(Arc::clone(&self.root));
        for segment in segments {
            let Node::Dir(dir) = &node else { return None };
            node = dir.child(segment)?.clone();
        }
        Some(node)
    }
}

fn read_state(state: &RwLock<Arc<State>>) -> Arc<State> {
    match state.read() {
        Ok(guard) => Arc::clone(&guard),
        Err(poisoned) => Arc::clone(&poisoned.into_inner()),
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

/// Where each file of `lake` (published under `prefix`) is in the mount: the paths its views
/// read. Delete files are under their table's `_deletes/`, by their last segment.
fn file_urls(mount_root: &std::path::Path, prefix: &str, lake: &LakeSnapshot) -> HashMap<LakeKey, String> {
    let mut urls = HashMap::new();
    for (path, key) in object_paths(prefix, lake) {
        urls.insert(key.clone(), mount_root.join(&path).to_string_lossy().into_owned());
    }
    urls
}

/// The tree path of every data and delete file of `lake` under `prefix`, in the order the tree
/// inserts them.
fn object_paths<'a>(prefix: &'a str, lake: &'a LakeSnapshot) -> impl Iterator<Item = (String, &'a LakeKey)> + 'a {
    lake.tables.iter().flat_map(move |t| {
        let table_dir = join(prefix, &format!("{}/{}", t.schema, t.name));
        t.files.iter().flat_map(move |f| {
            let data = (format!("{table_dir}/{}", f.name), &f.key);
            let deletes = f.deletes.iter().map({
                let table_dir = table_dir.clone();
                move |d| {
                    let name = d.name.rsplit('/').next().unwrap_or(&d.name);
                    (format!("{table_dir}/_deletes/{name}"), &d.key)
                }
            });
            std::iter::once(data).chain(deletes)
        })
    })
}

/// `rest` under `prefix` (the root when `prefix` is empty).
fn join(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() { rest.to_string() } else { format!("{prefix}/{rest}") }
}

/// A path while the tree is built: a folder, unless a node was inserted at it (a file wins
/// over a folder of the same path).
#[derive(Default)]
struct Building {
    node: Option<Node>,
    children: BTreeMap<Arc<str>, Building>,
}

/// Collects nodes by path; directories are implied by the files below them. Objects and names
/// that several snapshots share are built once ([`Node`]).
struct Builder {
    root: Building,
    mount_root: PathBuf,
    /// Objects built so far, by key: reused when a later snapshot has the same file as is.
    objects: HashMap<LakeKey, Arc<ObjectRef>>,
    /// Every object's strictest rules so far, which its node in `.data/` gets.
    rules: HashMap<LakeKey, FileRules>,
    /// Names used so far (file names recur in every snapshot that has the file).
    names: HashSet<Arc<str>>,
}

impl Builder {
    fn new(mount_root: PathBuf) -> Self {
        Builder {
            root: Building::default(),
            mount_root,
            objects: HashMap::new(),
            rules: HashMap::new(),
            names: HashSet::new(),
        }
    }

    fn name(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.names.get(name) {
            return Arc::clone(known);
        }
        let name: Arc<str> = Arc::from(name);
        self.names.insert(Arc::clone(&name));
        name
    }

    /// The entry at `path`, created with its parents as needed.
    fn entry(&mut self, path: &str) -> &mut Building {
        let segments: Vec<Arc<str>> = path.split('/').filter(|s| !s.is_empty()).map(|s| self.name(s)).collect();
        let mut at = &mut self.root;
        for segment in segments {
            at = at.children.entry(segment).or_default();
        }
        at
    }

    fn dir(&mut self, path: &str) {
        self.entry(path);
    }

    fn insert(&mut self, path: &str, node: Node) {
        self.entry(path).node = Some(node);
    }

    /// The shared object for `object`: the one built before for the same key if it is equal.
    fn object(&mut self, object: ObjectRef) -> Node {
        let rules = FileRules { store: object.store, denied_fields: Arc::clone(&object.denied_fields) };
        let strictest = match self.rules.get(&object.key) {
            Some(known) => known.strictest(&rules),
            None => rules,
        };
        self.rules.insert(object.key.clone(), strictest);
        if let Some(known) = self.objects.get(&object.key)
            && **known == object
        {
            return Node::Object(Arc::clone(known));
        }
        let object = Arc::new(object);
        self.objects.insert(object.key.clone(), Arc::clone(&object));
        Node::Object(object)
    }

    /// Adds one snapshot under `prefix`; returns the views its `lake.sql` holds.
    fn snapshot(&mut self, prefix: &str, governed: &Governed) -> Arc<view_sql::Script> {
        let lake = &governed.snapshot;
        for schema in &lake.schemas {
            self.dir(&join(prefix, schema));
        }
        for t in &lake.tables {
            self.dir(&join(prefix, &format!("{}/{}", t.schema, t.name)));
        }
        let mut paths = object_paths(prefix, lake);
        for t in &lake.tables {
            let qualified = format!("{}.{}", t.schema, t.name);
            let FileRules { store, denied_fields } = governed.access.rules_for(&qualified).unwrap_or_default();
            let table: Arc<str> = Arc::from(qualified);
            for f in &t.files {
                let Some((path, _)) = paths.next() else { break };
                let node = self.object(ObjectRef {
                    key: f.key.clone(),
                    size: u64::try_from(f.size).unwrap_or(0),
                    footer_size: f.footer_size.and_then(|s| u64::try_from(s).ok()),
                    table: Arc::clone(&table),
                    encrypted: f.encryption_key.is_some(),
                    store,
                    denied_fields: denied_fields.clone(),
                });
                self.insert(&path, node);
                for d in &f.deletes {
                    let Some((path, _)) = paths.next() else { break };
                    let node = self.object(ObjectRef {
                        key: d.key.clone(),
                        size: u64::try_from(d.size).unwrap_or(0),
                        footer_size: d.footer_size.and_then(|s| u64::try_from(s).ok()),
                        table: Arc::clone(&table),
                        encrypted: d.encryption_key.is_some(),
                        store,
                        // Delete files hold positions, not column values.
                        denied_fields: Arc::from(Vec::new()),
                    });
                    self.insert(&path, node);
                }
            }
        }
        let urls = file_urls(&self.mount_root, prefix, lake);
        let url = |k: &LakeKey| urls.get(k).cloned().unwrap_or_else(|| k.to_string());
        let views = view_sql::lake_views(lake, &url);
        let lake_sql: Arc<str> = Arc::from(format!("{READER_SETTINGS}{}", views.text()));
        self.insert(&join(prefix, "lake.sql"), Node::Generated(lake_sql));
        Arc::new(views)
    }

    /// `.data/<key>`: every object of every published snapshot at its path below the lake's
    /// data path, as the store lays them out (tables under the folder they were created in,
    /// delete files beside their data files), under the strictest rules it has anywhere. A
    /// DuckLake catalog of the lake (the mirror) attaches over it: `DATA_PATH '<mount>/.data/'`.
    fn data_folder(&mut self) {
        self.dir(DATA_FOLDER);
        let objects: Vec<Arc<ObjectRef>> = self.objects.values().cloned().collect();
        for o in objects {
            let path = format!("{DATA_FOLDER}/{}", o.key.as_str());
            let node = match self.rules.get(&o.key) {
                Some(r) if r.store != o.store || r.denied_fields != o.denied_fields => {
                    Node::Object(Arc::new(ObjectRef {
                        store: r.store,
                        denied_fields: Arc::clone(&r.denied_fields),
                        ..(*o).clone()
                    }))
                }
                _ => Node::Object(o),
            };
            self.insert(&path, node);
        }
    }

    fn finish(self) -> Arc<Dir> {
        fn freeze(at: Building) -> Node {
            at.node.unwrap_or_else(|| {
                let entries = at.children.into_iter().map(|(name, child)| (name, freeze(child))).collect();
                Node::Dir(Arc::new(Dir { entries }))
            })
        }
        let entries = self.root.children.into_iter().map(|(name, child)| (name, freeze(child))).collect();
        Arc::new(Dir { entries })
    }
}

impl Tree for LakeTree {
    fn attr(&self, path: &TreePath) -> Result<Attr, TreeError> {
        let state = self.current();
        match state.node(path) {
            Some(Node::Dir(_)) => Ok(Attr::directory(state.mtime)),
            Some(Node::Object(o)) => {
                Ok(Attr::file(served_size(&*self.source, &self.redactions, path, &o), state.mtime))
            }
            Some(Node::Generated(b)) => Ok(Attr::file(b.len() as u64, state.mtime)),
            Some(Node::Status) => Ok(Attr::file(self.status_text().len() as u64, SystemTime::now())),
            None => Err(TreeError::NotFound { path: path.clone() }),
        }
    }

    fn list(&self, dir: &TreePath) -> Result<Vec<DirEntry>, TreeError> {
        match self.current().node(dir) {
            Some(Node::Dir(d)) => Ok(d
                .entries
                .iter()
                .map(|(name, node)| {
                    let kind = if matches!(node, Node::Dir(_)) { NodeKind::Directory } else { NodeKind::File };
                    DirEntry::new(&**name, kind)
                })
                .collect()),
            Some(_) => Err(TreeError::NotADirectory { path: dir.clone() }),
            None => Err(TreeError::NotFound { path: dir.clone() }),
        }
    }

    fn open(&self, path: &TreePath) -> Result<Arc<dyn OpenFile>, TreeError> {
        let state = self.current();
        match state.node(path) {
            Some(Node::Dir(_)) => Err(TreeError::IsADirectory { path: path.clone() }),
            Some(Node::Object(o)) => {
                if let Some(Node::Dir(folder)) = path.parent().and_then(|p| state.node(&p)) {
                    self.prefetch_footers_of(&folder);
                }
                Ok(Arc::new(OpenObject {
                    path: path.clone(),
                    object: o,
                    source: Arc::clone(&self.source),
                    state: Arc::clone(&self.state),
                    access: Arc::clone(&self.access),
                    redactions: Arc::clone(&self.redactions),
                }))
            }
            Some(Node::Generated(text)) => Ok(Arc::new(OpenGenerated { text })),
            Some(Node::Status) => Ok(Arc::new(OpenGenerated { text: self.status_text() })),
            None => Err(TreeError::NotFound { path: path.clone() }),
        }
    }
}

struct OpenObject {
    path: TreePath,
    object: Arc<ObjectRef>,
    source: Arc<dyn ObjectSource>,
    state: Arc<RwLock<Arc<State>>>,
    access: Arc<RwLock<Arc<Access>>>,
    redactions: Arc<Redactions>,
}

impl OpenFile for OpenObject {
    fn size(&self) -> u64 {
        match self.governed() {
            Some(object) => served_size(&*self.source, &self.redactions, &self.path, &object),
            None => self.object.size,
        }
    }

    /// A file with denied columns is read with direct I/O: the kernel would otherwise widen a
    /// reader's request to its readahead window, and a read of an allowed column would touch a
    /// denied one and fail. Direct reads reach the tree as the reader made them.
    fn keep_cache(&self) -> bool {
        self.object.denied_fields.is_empty()
    }

    fn read_at(&self, offset: u64, len: u32) -> Result<Vec<u8>, TreeError> {
        let Some(object) = self.governed() else {
            return Err(TreeError::PermissionDenied {
                path: self.path.clone(),
                reason: format!("the policy denies {}", self.object.table),
            });
        };
        if object.denied_fields.is_empty() {
            if offset >= object.size {
                return Ok(Vec::new());
            }
            return self.source.read(&object, offset, u64::from(len)).map_err(|e| tree_error(&self.path, &object, e));
        }
        let served = redaction(&*self.source, &self.redactions, &self.path, &object)?;
        let range = offset..offset.saturating_add(u64::from(len)).min(served.size());
        if range.is_empty() {
            return Ok(Vec::new());
        }
        if let Err(denied) = served.check(range.clone()) {
            tracing::info!(path = %self.path, column = %denied.column, "read of a denied column refused");
            return Err(TreeError::PermissionDenied {
                path: self.path.clone(),
                reason: format!("column {} is denied by the policy", denied.column),
            });
        }
        served.read(range, |part| {
            self.source.read(&object, part.start, part.end - part.start).map_err(|e| tree_error(&self.path, &object, e))
        })
    }

    /// What the source holds locally after the read, when the policy lets this file's bytes
    /// rest on the machine and denies none of its columns (such a file is read with direct I/O
    /// anyway, and pages of it must not be filled ahead of a check).
    fn read_ahead(&self, offset: u64, len: u32) -> Option<(u64, Vec<u8>)> {
        let object = self.governed()?;
        if !object.store || !object.denied_fields.is_empty() {
            return None;
        }
        let from = offset.saturating_add(u64::from(len)).min(object.size);
        self.source.read_ahead(&object, from).map(|bytes| (from, bytes))
    }
}

impl OpenObject {
    /// The file under the policy in force now, not the one it was opened under, so a file
    /// opened before the policy tightened obeys the new policy from its next read on: its path
    /// in the tree as published now (each snapshot governed as it is shown), else its node in
    /// `.data/` (its object's strictest rules anywhere in the tree), else (it left the tree: a
    /// newer snapshot replaced it) the rules it was opened with tightened by its table's now.
    /// `None` when the policy now denies its table.
    fn governed(&self) -> Option<Arc<ObjectRef>> {
        let state = read_state(&self.state);
        let key = &self.object.key;
        // Its path now, else its place in `.data/` (its strictest rules anywhere in the tree).
        for node in [state.node(&self.path), state.node_at(std::iter::once(DATA_FOLDER).chain(key.segments()))] {
            if let Some(Node::Object(now)) = node
                && now.key == *key
            {
                return Some(now);
            }
        }
        let opened = FileRules { store: self.object.store, denied_fields: Arc::clone(&self.object.denied_fields) };
        let access = match self.access.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        let rules = access.rules_for(&self.object.table)?.strictest(&opened);
        Some(if rules == opened {
            Arc::clone(&self.object)
        } else {
            Arc::new(ObjectRef { store: rules.store, denied_fields: rules.denied_fields, ..(*self.object).clone() })
        })
    }
}

/// The size `object` (as governed now) is served with: its own, or its redaction's
/// when the policy denies some of its columns. When the redaction cannot be made (the footer
/// is unreachable or broken), the catalog's size: `stat` and listings keep working, and every
/// read of the file fails with the reason.
fn served_size(source: &dyn ObjectSource, redactions: &Redactions, path: &TreePath, object: &ObjectRef) -> u64 {
    if object.denied_fields.is_empty() {
        return object.size;
    }
    match redaction(source, redactions, path, object) {
        Ok(served) => served.size(),
        Err(e) => {
            tracing::debug!(path = %path, error = %e, "size of a file with denied columns unknown");
            object.size
        }
    }
}

/// `object` as served under its denied columns, rewritten from its footer the first time. A
/// file whose footer cannot be rewritten (encrypted, malformed) is refused whole: failing
/// closed is the only safe answer.
fn redaction(
    source: &dyn ObjectSource,
    redactions: &Redactions,
    path: &TreePath,
    object: &ObjectRef,
) -> Result<Arc<Redacted>, TreeError> {
    let refused = |why: String| TreeError::PermissionDenied {
        path: path.clone(),
        reason: format!("the file has a column the policy denies, and {why}"),
    };
    redactions.get_or_make(&object.key, &object.denied_fields, || {
        if object.encrypted {
            return Err(refused("it is encrypted".into()));
        }
        let meta_len = match object.footer_size {
            Some(n) => n,
            None => {
                let tail_len = layout::FOOTER_TAIL_LEN.min(object.size);
                let tail =
                    source.read(object, object.size - tail_len, tail_len).map_err(|e| tree_error(path, object, e))?;
                layout::metadata_len_from_tail(&tail).map_err(|e| refused(format!("its footer cannot be read: {e}")))?
            }
        };
        let footer = layout::footer_range(object.size, meta_len)
            .map_err(|e| refused(format!("its footer cannot be read: {e}")))?;
        let bytes =
            source.read(object, footer.start, footer.end - footer.start).map_err(|e| tree_error(path, object, e))?;
        Redacted::new(&bytes, object.size, &object.denied_fields)
            .map_err(|e| refused(format!("its footer cannot be rewritten without them: {e}")))
    })
}

fn tree_error(path: &TreePath, object: &ObjectRef, e: SourceError) -> TreeError {
    match e {
        // The catalog lists the file but the store lost it: ENOENT, as a deleted file.
        SourceError::NotFound { .. } => {
            tracing::warn!(path = %path, key = %object.key, "object missing from the store");
            TreeError::NotFound { path: path.clone() }
        }
        SourceError::Unavailable { reason, .. } => TreeError::Unavailable { path: path.clone(), reason },
        SourceError::Changed { reason, .. } => TreeError::Changed { path: path.clone(), reason },
        SourceError::Io { source, .. } => TreeError::Io { path: path.clone(), source },
    }
}

struct OpenGenerated {
    text: Arc<str>,
}

impl OpenFile for OpenGenerated {
    fn size(&self) -> u64 {
        self.text.len() as u64
    }

    fn read_at(&self, offset: u64, len: u32) -> Result<Vec<u8>, TreeError> {
        let bytes = self.text.as_bytes();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
        let end = start.saturating_add(len as usize).min(bytes.len());
        Ok(bytes[start..end].to_vec())
    }

    fn keep_cache(&self) -> bool {
        // Generated files (lake.sql, status.json) change at the same path on every publish.
        false
    }
}
