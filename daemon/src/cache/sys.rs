//! The system calls the cache needs that `std` does not wrap: punching a hole in a sparse file
//! (to free an evicted piece's blocks without rewriting the file), asking how much space the
//! cache's filesystem has left (for `min_free_disk`), and the page size (the unit of buffered
//! reads through the mount). This is the only `unsafe` in the cache; each call passes plain
//! integers or a pointer to a local it owns.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::path::Path;

/// Frees the blocks of `len` bytes at `offset` of `file`; reads of them return zeros.
#[cfg(target_os = "linux")]
pub fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return Ok(());
    }
    let (Ok(off), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "range beyond off_t"));
    };
    // SAFETY: fallocate takes a valid open descriptor (borrowed from `file` for the call) and
    // integer arguments; it touches no memory of ours.
    let rc =
        unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, off, len) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Without hole punching, overwrite with zeros: the bytes are gone, though the blocks stay
/// allocated until the object's file is deleted.
#[cfg(not(target_os = "linux"))]
pub fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let zeros = vec![0u8; len.min(1 << 20) as usize];
    let mut at = offset;
    while at < offset + len {
        let n = (offset + len - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// The kernel's page size (4 KiB on most Linux machines, 16 KiB on Apple silicon).
pub fn page_size() -> u64 {
    // SAFETY: sysconf takes an integer and touches no memory of ours.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|n| *n > 0).unwrap_or(4096)
}

/// Bytes available to an unprivileged user on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated string that outlives the call and `st` points to a
    // zeroed statvfs owned by this frame, which statvfs fills in.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised the struct (and it was zeroed before).
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileExt, MetadataExt};

    #[test]
    fn punched_bytes_read_as_zeros_and_free_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let f = File::options().read(true).write(true).create(true).truncate(true).open(&path).expect("open");
        f.write_all_at(&vec![7u8; 1 << 20], 0).expect("write");
        f.sync_all().expect("sync");
        let before = f.metadata().expect("meta").blocks();
        punch_hole(&f, 0, 1 << 20).expect("punch");
        let mut buf = vec![1u8; 4096];
        f.read_exact_at(&mut buf, 4096).expect("read");
        assert!(buf.iter().all(|b| *b == 0));
        assert_eq!(f.metadata().expect("meta").len(), 1 << 20, "size is kept");
        if cfg!(target_os = "linux") {
            assert!(f.metadata().expect("meta").blocks() < before, "blocks were freed");
        }
        assert!(free_bytes(dir.path()).expect("statvfs") > 0);
    }
}
