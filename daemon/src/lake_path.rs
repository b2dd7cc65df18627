//! Paths inside the lake, validated once at the edge.
//!
//! Every file a catalog names is resolved to a [`LakeKey`]: a path relative to the lake's data
//! root. Nothing downstream (cache, mount, SQL views) ever sees a raw catalog string, so a
//! hostile or corrupt catalog row such as `../../etc/passwd` or an absolute path outside the
//! lake is refused here, never followed.

use std::fmt;

/// Why a path from the catalog was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LakePathError {
    /// A segment is `..` or `.`, or the path is empty where a file name is needed.
    #[error("path {path:?} has a bad segment {segment:?}")]
    BadSegment { path: String, segment: String },
    /// A control character (NUL, newline, ...) in a path.
    #[error("path {path:?} contains a control character")]
    ControlCharacter { path: String },
    /// An absolute path that does not lie under the lake's data root.
    #[error("path {path:?} lies outside the lake's data root {root:?}")]
    OutsideRoot { path: String, root: String },
}

/// A validated path relative to the data root: `/`-separated segments, none empty, `.` or `..`,
/// no control characters. Directory keys end without a slash; the empty key is the root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct LakeKey(String);

impl LakeKey {
    /// The data root itself.
    pub fn root() -> Self {
        LakeKey(String::new())
    }

    /// Parses a relative path. One trailing `/` is accepted (catalogs write directory paths
    /// as `sales/`); anything else that is not a plain segment is refused.
    pub fn parse(path: &str) -> Result<Self, LakePathError> {
        LakeKey::root().join(path)
    }

    /// Appends a relative path to this key, validating every segment.
    pub fn join(&self, rel: &str) -> Result<Self, LakePathError> {
        if rel.chars().any(char::is_control) {
            return Err(LakePathError::ControlCharacter { path: rel.to_string() });
        }
        let trimmed = rel.strip_suffix('/').unwrap_or(rel);
        let mut out = self.0.clone();
        if trimmed.is_empty() {
            return Ok(LakeKey(out));
        }
        for segment in trimmed.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(LakePathError::BadSegment { path: rel.to_string(), segment: segment.to_string() });
            }
            if !out.is_empty() {
                out.push('/');
            }
            out.push_str(segment);
        }
        Ok(LakeKey(out))
    }

    /// The key as a `/`-separated string (empty for the root).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments of the key.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }

    /// The part of `self` below `dir`, if `self` lies under it.
    pub fn strip_prefix(&self, dir: &LakeKey) -> Option<&str> {
        if dir.0.is_empty() {
            return Some(&self.0);
        }
        self.0.strip_prefix(&dir.0)?.strip_prefix('/')
    }
}

impl fmt::Display for LakeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Resolves one level of the DuckLake path chain (data root → schema → table → file).
///
/// `path_is_relative = true` joins `path` to `parent`; an absolute path must lie under the data
/// root `root` (a local directory or URL ending in `/`) and is turned back into a key, because
/// the cache and the store address every object relative to that root.
pub fn resolve(root: &str, parent: &LakeKey, path: &str, relative: bool) -> Result<LakeKey, LakePathError> {
    if relative {
        return parent.join(path);
    }
    let root_dir = if root.ends_with('/') { root.to_string() } else { format!("{root}/") };
    match path.strip_prefix(&root_dir) {
        Some(rest) => LakeKey::parse(rest),
        None => Err(LakePathError::OutsideRoot { path: path.to_string(), root: root.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_directory_paths() {
        assert_eq!(LakeKey::parse("sales/").map(|k| k.0), Ok("sales".to_string()));
        let k = LakeKey::parse("sales/orders").and_then(|k| k.join("kind=buy/f.parquet"));
        assert_eq!(k.map(|k| k.0), Ok("sales/orders/kind=buy/f.parquet".to_string()));
        assert_eq!(LakeKey::parse("").map(|k| k.0), Ok(String::new()));
    }

    #[test]
    fn refuses_escapes_and_junk() {
        for bad in ["..", "a/../b", "/etc/passwd", "a//b", "./a", "a/.", "a\0b", "a\nb", "../x"] {
            assert!(LakeKey::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn resolves_absolute_paths_only_under_the_root() {
        let parent = LakeKey::parse("s/t").unwrap_or_else(|_| LakeKey::root());
        let under = resolve("s3://b/lake/", &parent, "s3://b/lake/s/t/f.parquet", false);
        assert_eq!(under.map(|k| k.0), Ok("s/t/f.parquet".to_string()));
        assert!(matches!(
            resolve("s3://b/lake/", &parent, "s3://other/f.parquet", false),
            Err(LakePathError::OutsideRoot { .. })
        ));
        assert!(resolve("/data/lake", &parent, "/data/lake/../secret", false).is_err());
        assert!(resolve("/data/lake", &parent, "/data/lakeside/f", false).is_err());
    }

    #[test]
    fn strips_directory_prefixes() {
        let file = LakeKey::parse("sales/orders/kind=a/f.parquet").unwrap_or_else(|_| LakeKey::root());
        let dir = LakeKey::parse("sales/orders").unwrap_or_else(|_| LakeKey::root());
        assert_eq!(file.strip_prefix(&dir), Some("kind=a/f.parquet"));
        let other = LakeKey::parse("sales/order").unwrap_or_else(|_| LakeKey::root());
        assert_eq!(file.strip_prefix(&other), None);
    }
}
