//! Reading `/proc/self/mountinfo` to see whether a directory is a FUSE mountpoint.
//!
//! Used before mounting, to refuse a mountpoint another live session still serves. The format
//! (proc(5)): `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw`, where the fifth
//! field is the mount point with space, tab, newline and backslash escaped as `\ooo`, and the
//! field after the lone `-` is the filesystem type (`fuse`, `fuse.<subtype>` or `fuseblk`).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// The mount points of all FUSE filesystems listed in `mountinfo` text.
pub(crate) fn fuse_mountpoints(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let mount_point = fields.get(4)?;
            let separator = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(separator + 1)?;
            let is_fuse = *fstype == "fuse" || *fstype == "fuseblk" || fstype.starts_with("fuse.");
            is_fuse.then(|| unescape(mount_point))
        })
        .collect()
}

/// Whether `path` (absolute, canonical) is a FUSE mount point of this process's mount
/// namespace. False if `/proc/self/mountinfo` cannot be read: the check is a courtesy, and
/// mounting over a live mount fails loudly anyway.
pub(crate) fn is_fuse_mountpoint(path: &Path) -> bool {
    match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => fuse_mountpoints(&text).iter().any(|p| p == path),
        Err(e) => {
            tracing::debug!(error = %e, "cannot read /proc/self/mountinfo");
            false
        }
    }
}

/// Undoes the kernel's `\ooo` octal escapes.
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(octal) = bytes.get(i + 1..i + 4)
            && octal.iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let value = octal.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
36 22 0:35 / /tmp/a\\040dir rw,nosuid,nodev,relatime shared:2 - fuse warmlake rw,user_id=0,group_id=0
37 22 0:36 / /mnt/s3 rw,nosuid,nodev - fuse.mountpoint-s3 bucket rw,user_id=1000
38 22 0:37 / /mnt/usb rw - fuseblk /dev/sdb1 rw
39 22 0:38 / /proc rw - proc proc rw
40 22 0:39 / /tmp/back\\134slash rw shared:3 master:4 - fuse x rw
";

    #[test]
    fn finds_fuse_mounts_and_unescapes_their_paths() {
        assert_eq!(
            fuse_mountpoints(SAMPLE),
            [
                PathBuf::from("/tmp/a dir"),
                PathBuf::from("/mnt/s3"),
                PathBuf::from("/mnt/usb"),
                PathBuf::from("/tmp/back\\slash"),
            ]
        );
    }

    #[test]
    fn malformed_lines_are_ignored() {
        assert!(fuse_mountpoints("garbage\n1 2 3\n\n").is_empty());
    }

    #[test]
    fn unescape_leaves_non_escapes_alone() {
        assert_eq!(unescape("/a\\b"), PathBuf::from("/a\\b"));
        assert_eq!(unescape("/a\\12"), PathBuf::from("/a\\12"));
        assert_eq!(unescape("/a\\011b"), PathBuf::from("/a\tb"));
        assert_eq!(unescape("/a\\777"), PathBuf::from("/a\\777"));
    }
}
