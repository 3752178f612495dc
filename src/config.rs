//! Where lifebuoy keeps its files: the OS config directory, unless
//! `LIFEBUOY_CONFIG_DIR` or `--config-dir` says otherwise.

use std::path::PathBuf;

/// Environment variable that overrides the config directory.
pub const CONFIG_DIR_ENV: &str = "LIFEBUOY_CONFIG_DIR";

/// The config directory: `explicit`, else `$LIFEBUOY_CONFIG_DIR`, else the
/// OS default (`~/.config/lifebuoy` on Linux, `%APPDATA%\lifebuoy` on Windows).
pub fn config_dir(explicit: Option<PathBuf>) -> Option<PathBuf> {
    explicit
        .or_else(|| std::env::var_os(CONFIG_DIR_ENV).map(PathBuf::from))
        .or_else(|| directories::ProjectDirs::from("", "", "lifebuoy").map(|d| d.config_dir().to_owned()))
}

/// File name of the technician's key in the config directory.
pub const TECHNICIAN_KEY: &str = "technician.pem";
/// File name of the rendezvous server's key in the config directory.
pub const RENDEZVOUS_KEY: &str = "rendezvous.pem";
