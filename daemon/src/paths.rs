//! Where warmlake keeps its files when the config does not say: each platform's convention.
//!
//! Linux (and other Unix): the XDG base directories, `~/.config/warmlake`,
//! `~/.local/state/warmlake`, `~/.cache/warmlake`. macOS: `~/Library/Application Support/warmlake`
//! for the config and state (as Apple's guidelines place an app's own files) and
//! `~/Library/Caches/warmlake` for the cache (which backup tools skip). On every platform an
//! `XDG_*_HOME` variable the user set wins, as it does for git and most command-line tools, so
//! a dotfiles setup that moves them keeps working on a Mac.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The platforms whose conventions differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// XDG base directories.
    Xdg,
    /// `~/Library/...`.
    MacOs,
}

impl Platform {
    /// The platform this binary runs on.
    pub fn current() -> Platform {
        if cfg!(target_os = "macos") { Platform::MacOs } else { Platform::Xdg }
    }
}

/// The default folders, all named for warmlake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    /// `config.toml` and the local `policy.toml`.
    pub config: PathBuf,
    /// The mirror, sockets and the daemon's own records.
    pub state: PathBuf,
    /// Cached lake bytes.
    pub cache: PathBuf,
}

impl Dirs {
    /// The folders for this user on this machine.
    pub fn current() -> Dirs {
        Dirs::for_platform(Platform::current(), &home(), |v| std::env::var_os(v))
    }

    /// The folders for `platform`, given the home folder and a way to read the environment.
    pub fn for_platform(platform: Platform, home: &Path, env: impl Fn(&str) -> Option<OsString>) -> Dirs {
        let base = |var: &str, xdg_default: &str, mac_default: &str| -> PathBuf {
            match env(var).filter(|v| !v.is_empty()) {
                Some(dir) => PathBuf::from(dir).join("warmlake"),
                None => home.join(match platform {
                    Platform::Xdg => xdg_default,
                    Platform::MacOs => mac_default,
                }),
            }
        };
        let app_support = "Library/Application Support/warmlake";
        Dirs {
            config: base("XDG_CONFIG_HOME", ".config/warmlake", app_support),
            state: base("XDG_STATE_HOME", ".local/state/warmlake", &format!("{app_support}/state")),
            cache: base("XDG_CACHE_HOME", ".cache/warmlake", "Library/Caches/warmlake"),
        }
    }
}

/// The user's home folder (`$HOME`).
pub fn home() -> PathBuf {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(platform: Platform, vars: &[(&str, &str)]) -> Dirs {
        Dirs::for_platform(platform, Path::new("/home/ada"), |v| {
            vars.iter().find(|(k, _)| *k == v).map(|(_, value)| OsString::from(value))
        })
    }

    #[test]
    fn linux_follows_xdg() {
        let d = dirs(Platform::Xdg, &[]);
        assert_eq!(d.config, Path::new("/home/ada/.config/warmlake"));
        assert_eq!(d.state, Path::new("/home/ada/.local/state/warmlake"));
        assert_eq!(d.cache, Path::new("/home/ada/.cache/warmlake"));
        let moved = dirs(Platform::Xdg, &[("XDG_CONFIG_HOME", "/cfg"), ("XDG_CACHE_HOME", "/big/cache")]);
        assert_eq!(moved.config, Path::new("/cfg/warmlake"));
        assert_eq!(moved.cache, Path::new("/big/cache/warmlake"));
        assert_eq!(moved.state, Path::new("/home/ada/.local/state/warmlake"));
    }

    #[test]
    fn macos_uses_library_unless_xdg_is_set() {
        let d = dirs(Platform::MacOs, &[("XDG_STATE_HOME", "")]);
        assert_eq!(d.config, Path::new("/home/ada/Library/Application Support/warmlake"));
        assert_eq!(d.state, Path::new("/home/ada/Library/Application Support/warmlake/state"));
        assert_eq!(d.cache, Path::new("/home/ada/Library/Caches/warmlake"));
        let moved = dirs(Platform::MacOs, &[("XDG_CONFIG_HOME", "/home/ada/.config")]);
        assert_eq!(moved.config, Path::new("/home/ada/.config/warmlake"));
    }
}
