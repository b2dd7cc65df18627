//! Paths inside the mounted tree, validated once at the edge.
//!
//! The kernel hands the adapter single names (`lookup(parent, "x.parquet")`) and the tree hands
//! it names in listings; both become a [`TreePath`] through [`TreePath::join`], which refuses
//! anything that is not one plain segment. A [`Tree`](crate::Tree) implementation therefore
//! never sees `..`, an absolute path, an empty segment or a control character, and can use the
//! path as a key without re-checking it.

use std::fmt;
use std::str::FromStr;

/// The longest name one segment may have, in bytes: Linux's `NAME_MAX`. Longer names cannot be
/// listed through `getdents` by most tools, so the tree may not contain them.
pub const MAX_SEGMENT_LEN: usize = 255;

/// Why a string was refused as a [`TreePath`] or as a name to join onto one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path starts with `/`. Tree paths are relative to the mount root; the root itself is
    /// the empty path.
    #[error("path {path:?} is absolute; tree paths are relative to the mount root")]
    Absolute { path: String },
    /// Two slashes in a row, or a trailing slash.
    #[error("path {path:?} has an empty segment")]
    EmptySegment { path: String },
    /// A `.` or `..` segment: the tree has no links, so these never name a node.
    #[error("path {path:?} has a {segment:?} segment")]
    DotSegment { path: String, segment: String },
    /// NUL, newline or another control character, which no lake file name contains and which
    /// would corrupt log lines and listings.
    #[error("path {path:?} contains a control character")]
    ControlCharacter { path: String },
    /// A segment longer than [`MAX_SEGMENT_LEN`] bytes.
    #[error("path {path:?} has a segment of {len} bytes; the limit is {MAX_SEGMENT_LEN}")]
    SegmentTooLong { path: String, len: usize },
    /// A name passed to [`TreePath::join`] is empty or contains `/`: join takes exactly one
    /// segment.
    #[error("{name:?} is not a single path segment")]
    NotASegment { name: String },
}

/// A validated path relative to the mount root: `/`-separated segments, none of them empty,
/// `.`, `..`, longer than [`MAX_SEGMENT_LEN`] bytes or containing a control character.
/// The empty path is the root.
///
/// [`Display`](fmt::Display) shows the path as seen from the mount root (`/a/b`, and `/` for the
/// root) because that is what a reader of a log line can find under the mountpoint;
/// [`TreePath::as_str`] gives the relative form (`a/b`, and `""` for the root) that
/// [`TreePath::new`] parses.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TreePath(String);

impl TreePath {
    /// The root of the tree (the mountpoint itself).
    pub fn root() -> Self {
        TreePath(String::new())
    }

    /// Parses a relative path such as `sales/2024/part-0.parquet`. The empty string is the
    /// root; anything that is not a sequence of plain segments is refused.
    pub fn new(path: &str) -> Result<Self, PathError> {
        if path.is_empty() {
            return Ok(TreePath::root());
        }
        if path.starts_with('/') {
            return Err(PathError::Absolute { path: path.to_string() });
        }
        for segment in path.split('/') {
            check_segment(path, segment)?;
        }
        Ok(TreePath(path.to_string()))
    }

    /// The child `name` of this path. `name` must be a single segment (no `/`).
    pub fn join(&self, name: &str) -> Result<TreePath, PathError> {
        if name.is_empty() || name.contains('/') {
            return Err(PathError::NotASegment { name: name.to_string() });
        }
        check_segment(name, name)?;
        if self.0.is_empty() { Ok(TreePath(name.to_string())) } else { Ok(TreePath(format!("{}/{name}", self.0))) }
    }

    /// The parent directory, or `None` for the root.
    pub fn parent(&self) -> Option<TreePath> {
        if self.0.is_empty() {
            return None;
        }
        match self.0.rfind('/') {
            Some(slash) => Some(TreePath(self.0[..slash].to_string())),
            None => Some(TreePath::root()),
        }
    }

    /// The last segment, or `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        if self.0.is_empty() {
            return None;
        }
        match self.0.rfind('/') {
            Some(slash) => Some(&self.0[slash + 1..]),
            None => Some(&self.0),
        }
    }

    /// Whether this is the root of the tree.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The relative form: `a/b`, or `""` for the root.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments from the root down (none for the root).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }
}

/// Checks one segment of `path` (the whole input, used only in the error).
fn check_segment(path: &str, segment: &str) -> Result<(), PathError> {
    if segment.is_empty() {
        return Err(PathError::EmptySegment { path: path.to_string() });
    }
    if segment == "." || segment == ".." {
        return Err(PathError::DotSegment { path: path.to_string(), segment: segment.to_string() });
    }
    if segment.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter { path: path.to_string() });
    }
    if segment.len() > MAX_SEGMENT_LEN {
        return Err(PathError::SegmentTooLong { path: path.to_string(), len: segment.len() });
    }
    Ok(())
}

impl fmt::Display for TreePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0)
    }
}

impl fmt::Debug for TreePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TreePath({:?})", self.0)
    }
}

impl FromStr for TreePath {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TreePath::new(s)
    }
}

impl TryFrom<&str> for TreePath {
    type Error = PathError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        TreePath::new(s)
    }
}

impl AsRef<str> for TreePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn root_is_the_empty_path() {
        let root = TreePath::new("").unwrap();
        assert!(root.is_root());
        assert_eq!(root, TreePath::root());
        assert_eq!(root.as_str(), "");
        assert_eq!(root.to_string(), "/");
        assert_eq!(root.parent(), None);
        assert_eq!(root.file_name(), None);
        assert_eq!(root.segments().count(), 0);
    }

    #[test]
    fn plain_paths_parse_and_decompose() {
        let p = TreePath::new("sales/2024/part 0.parquet").unwrap();
        assert!(!p.is_root());
        assert_eq!(p.as_str(), "sales/2024/part 0.parquet");
        assert_eq!(p.to_string(), "/sales/2024/part 0.parquet");
        assert_eq!(p.file_name(), Some("part 0.parquet"));
        assert_eq!(p.parent().unwrap().as_str(), "sales/2024");
        assert_eq!(p.parent().unwrap().parent().unwrap().as_str(), "sales");
        assert_eq!(p.parent().unwrap().parent().unwrap().parent(), Some(TreePath::root()));
        assert_eq!(p.segments().collect::<Vec<_>>(), ["sales", "2024", "part 0.parquet"]);
        let single = TreePath::new("a").unwrap();
        assert_eq!(single.parent(), Some(TreePath::root()));
        assert_eq!(single.file_name(), Some("a"));
    }

    #[test]
    fn join_builds_children() {
        let root = TreePath::root();
        let a = root.join("a").unwrap();
        assert_eq!(a.as_str(), "a");
        let ab = a.join("b.parquet").unwrap();
        assert_eq!(ab.as_str(), "a/b.parquet");
        assert_eq!(ab, TreePath::new("a/b.parquet").unwrap());
        assert_eq!(ab.parent(), Some(a));
    }

    #[test]
    fn hostile_paths_are_refused() {
        type Expect = fn(&PathError) -> bool;
        let cases: &[(&str, Expect)] = &[
            ("..", |e| matches!(e, PathError::DotSegment { .. })),
            (".", |e| matches!(e, PathError::DotSegment { .. })),
            ("a/../b", |e| matches!(e, PathError::DotSegment { .. })),
            ("./a", |e| matches!(e, PathError::DotSegment { .. })),
            ("a/.", |e| matches!(e, PathError::DotSegment { .. })),
            ("../../etc/passwd", |e| matches!(e, PathError::DotSegment { .. })),
            ("/abs", |e| matches!(e, PathError::Absolute { .. })),
            ("/", |e| matches!(e, PathError::Absolute { .. })),
            ("a//b", |e| matches!(e, PathError::EmptySegment { .. })),
            ("a/", |e| matches!(e, PathError::EmptySegment { .. })),
            ("a\0b", |e| matches!(e, PathError::ControlCharacter { .. })),
            ("a\nb", |e| matches!(e, PathError::ControlCharacter { .. })),
            ("a/\u{7f}", |e| matches!(e, PathError::ControlCharacter { .. })),
        ];
        for (input, expected) in cases {
            let err = TreePath::new(input).expect_err(input);
            assert!(expected(&err), "{input:?} gave {err:?}");
        }
    }

    #[test]
    fn overlong_segments_are_refused() {
        let ok = "x".repeat(MAX_SEGMENT_LEN);
        assert!(TreePath::new(&ok).is_ok());
        let long = "x".repeat(MAX_SEGMENT_LEN + 1);
        assert!(matches!(
            TreePath::new(&format!("a/{long}")),
            Err(PathError::SegmentTooLong { len, .. }) if len == MAX_SEGMENT_LEN + 1
        ));
        assert!(matches!(TreePath::root().join(&long), Err(PathError::SegmentTooLong { .. })));
    }

    #[test]
    fn join_takes_exactly_one_plain_segment() {
        let root = TreePath::root();
        for bad in ["", "a/b", "/a", "a/"] {
            assert!(matches!(root.join(bad), Err(PathError::NotASegment { .. })), "{bad:?}");
        }
        for bad in [".", ".."] {
            assert!(matches!(root.join(bad), Err(PathError::DotSegment { .. })), "{bad:?}");
        }
        assert!(matches!(root.join("a\0"), Err(PathError::ControlCharacter { .. })));
    }

    #[test]
    fn conversions_agree_with_new() {
        let p: TreePath = "a/b".parse().unwrap();
        assert_eq!(p, TreePath::try_from("a/b").unwrap());
        assert_eq!(AsRef::<str>::as_ref(&p), "a/b");
        assert!("a//b".parse::<TreePath>().is_err());
        assert_eq!(format!("{p:?}"), "TreePath(\"a/b\")");
    }
}
