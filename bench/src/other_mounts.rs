//! The tools a user would mount a bucket with instead of warmlake, each started as a child
//! process against the lake's data files in `s3s-fs` through the same proxy as the daemon (so
//! at the same round-trip time; the flat copy of
//! [`RemoteLake::flat_copy`](crate::remote::RemoteLake::flat_copy), mounted at the bucket's
//! root), each with its own local cache in a new temporary folder: a new [`OtherMount`] is a
//! cold one.
//!
//! - **rclone** (`rclone mount --vfs-cache-mode full`): reads are served from a sparse local
//!   copy of each file, filled by ranged GETs that stream ahead of the reader.
//! - **s3fs-fuse** (`-o use_cache`): reads are served from a local copy of each file, filled
//!   by ranged GETs (in the `compare` runs, of whole files).
//!
//! Both as Debian packages them (bookworm: rclone 1.60, s3fs 1.90), with their defaults apart
//! from what the issue names (the cache mode) and what a read-only mount of this bucket needs.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::remote::S3Access;

/// How long a tool may take to mount, or to exit after its mount is gone.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(60);
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A FUSE client of S3 other than warmlake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Rclone,
    S3fs,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Rclone => "rclone",
            Tool::S3fs => "s3fs",
        }
    }

    /// The command mounting the bucket of `s3` at `mnt` in the foreground, with its cache and
    /// configuration in `dir`.
    fn command(self, s3: &S3Access, dir: &Path, mnt: &Path) -> anyhow::Result<Command> {
        let cache = dir.join("cache");
        std::fs::create_dir(&cache)?;
        let mut cmd;
        match self {
            Tool::Rclone => {
                let config = dir.join("rclone.conf");
                std::fs::write(
                    &config,
                    format!(
                        "[lake]\ntype = s3\nprovider = Other\nendpoint = http://{}\nregion = {}\n\
                         access_key_id = {}\nsecret_access_key = {}\nforce_path_style = true\n",
                        s3.endpoint, s3.region, s3.access_key, s3.secret_key
                    ),
                )?;
                cmd = Command::new("rclone");
                cmd.arg("mount")
                    .arg(format!("lake:{}", s3.bucket))
                    .arg(mnt)
                    .arg("--config")
                    .arg(&config)
                    .args(["--vfs-cache-mode", "full", "--read-only"])
                    .arg("--cache-dir")
                    .arg(&cache);
            }
            Tool::S3fs => {
                // s3fs refuses a password file others can read.
                let passwd = dir.join("passwd");
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&passwd)?
                    .write_all(format!("{}:{}\n", s3.access_key, s3.secret_key).as_bytes())?;
                cmd = Command::new("s3fs");
                cmd.arg(s3.bucket).arg(mnt).arg("-f").arg("-o").arg(format!(
                    "ro,url=http://{},endpoint={},use_path_request_style,passwd_file={},use_cache={}",
                    s3.endpoint,
                    s3.region,
                    passwd.display(),
                    cache.display()
                ));
            }
        }
        // The bucket is reached as configured here only: a user's `AWS_*` settings (a profile,
        // a CA bundle, which rclone 1.60 rejects for its own HTTP transport) stay out of it.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("AWS_") {
                cmd.env_remove(key);
            }
        }
        Ok(cmd)
    }
}

/// A running mount of a bucket by another tool: unmounted, its process ended and its cache
/// deleted on drop.
pub struct OtherMount {
    child: Child,
    mnt: PathBuf,
    // Last: removed after the mount is gone.
    dir: tempfile::TempDir,
}

impl OtherMount {
    /// Starts `tool` with an empty cache and waits until its mount is live.
    pub fn start(tool: Tool, s3: &S3Access) -> anyhow::Result<OtherMount> {
        let dir = tempfile::Builder::new().prefix(&format!("warmlake-bench-{}-", tool.name())).tempdir()?;
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt)?;
        let log = std::fs::File::create(dir.path().join("log"))?;
        let child = tool
            .command(s3, dir.path(), &mnt)?
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} (apt-get install {})", tool.name(), tool.name()))?;
        let mut mount = OtherMount { child, mnt, dir };
        let deadline = Instant::now() + MOUNT_TIMEOUT;
        while !mount.is_live()? {
            if let Some(status) = mount.child.try_wait()? {
                bail!("{} exited ({status}) before mounting: {}", tool.name(), mount.log());
            }
            if Instant::now() > deadline {
                bail!("{} did not mount within {MOUNT_TIMEOUT:?}: {}", tool.name(), mount.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(mount)
    }

    /// The mount point: the bucket's root.
    pub fn root(&self) -> &Path {
        &self.mnt
    }

    /// Whether a file system is mounted at the mount point (in this process's mount namespace).
    fn is_live(&self) -> anyhow::Result<bool> {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
        let mnt = self.mnt.to_string_lossy();
        // The fifth field is the mount point (our temporary paths have no spaces to escape).
        Ok(mounts.lines().any(|l| l.split(' ').nth(4) == Some(&*mnt)))
    }

    /// What the tool said, for an error message.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for OtherMount {
    fn drop(&mut self) {
        // Lazy: a reader still holding a file must not keep the mount (and its process) alive.
        let _ = Command::new("fusermount3").arg("-uz").arg(&self.mnt).stderr(Stdio::null()).status();
        let deadline = Instant::now() + EXIT_TIMEOUT;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
