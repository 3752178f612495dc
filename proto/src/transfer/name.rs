//! Names from the wire, checked before any of them touches a disk: a
//! relative path becomes a list of plain file names, each valid on
//! Windows, macOS and Linux alike, or a typed error saying what is wrong.
//!
//! Refused: absolute paths, drive letters and UNC paths, `\` (a separator
//! on Windows), `.` and `..`, empty components, control characters,
//! characters that reorder how a name is shown (U+202E makes
//! "rechnung\u{202e}txt.exe" read "rechnungexe.txt"), the
//! characters Windows forbids (`< > : " | ? *`), names Windows reserves
//! (CON, PRN, AUX, NUL, COM1-9, LPT1-9, with or without an extension),
//! names ending in a dot or a space (Windows drops them, so two names
//! would be one), components over 255 bytes, paths over 4096 bytes or 64
//! levels deep.

use crate::file::PATH_MAX;
use crate::text::is_bidi_control;

/// Longest component, in UTF-8 bytes (what common file systems take).
pub const COMPONENT_MAX: usize = 255;
/// Deepest folder nesting accepted.
pub const DEPTH_MAX: usize = 64;

/// What is wrong with a name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty path or an empty component (`a//b`, a trailing `/`).
    #[error("the name is empty or has an empty part")]
    Empty,
    /// Starts at a root, a drive or a network share.
    #[error("the name is an absolute path: {0:?}")]
    Absolute(String),
    /// `.` or `..`.
    #[error("the name climbs out of the folder: {0:?}")]
    Traversal(String),
    /// A character no file name may hold on some system.
    #[error("the name {0:?} contains a character not allowed in file names")]
    Character(String),
    /// A name Windows reserves for devices.
    #[error("{0:?} is a device name on Windows")]
    Reserved(String),
    /// Ends in a dot or a space.
    #[error("the name {0:?} ends in a dot or a space")]
    Trailing(String),
    /// Too long or too deep.
    #[error("the name is too long or too deeply nested")]
    TooLong,
}

/// A checked relative path: plain names, outermost first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SafePath(Vec<String>);

impl SafePath {
    /// The names, outermost first; never empty.
    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// The path with its outermost name replaced (an existing folder's
    /// "Projekt" becoming "Projekt (1)").
    pub fn with_top(&self, top: String) -> SafePath {
        let mut c = self.0.clone();
        c[0] = top;
        SafePath(c)
    }
}

impl std::fmt::Display for SafePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

fn reserved(name: &str) -> bool {
    // Windows ignores what follows the first dot, and trailing spaces before it.
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ').to_ascii_uppercase();
    matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && matches!(stem.as_bytes()[3], b'0'..=b'9' | 0xB9 | 0xB2 | 0xB3))
        || ["COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"].contains(&stem.as_str())
}

/// Checks a `/`-separated relative path from the wire.
pub fn check_path(path: &str) -> Result<SafePath, NameError> {
    if path.is_empty() {
        return Err(NameError::Empty);
    }
    if path.len() > PATH_MAX {
        return Err(NameError::TooLong);
    }
    if path.starts_with('/') || path.starts_with("\\\\") {
        return Err(NameError::Absolute(path.into()));
    }
    let bytes = path.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(NameError::Absolute(path.into()));
    }
    let mut out = Vec::new();
    for name in path.split('/') {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name == "." || name == ".." {
            return Err(NameError::Traversal(path.into()));
        }
        if name.len() > COMPONENT_MAX {
            return Err(NameError::TooLong);
        }
        let forbidden = |c: char| {
            c.is_control()
                || is_bidi_control(c)
                || matches!(c, '\\' | '<' | '>' | ':' | '"' | '|' | '?' | '*')
        };
        if name.chars().any(forbidden) {
            return Err(NameError::Character(name.into()));
        }
        if name.ends_with('.') || name.ends_with(' ') {
            return Err(NameError::Trailing(name.into()));
        }
        if reserved(name) {
            return Err(NameError::Reserved(name.into()));
        }
        out.push(name.to_owned());
    }
    if out.len() > DEPTH_MAX {
        return Err(NameError::TooLong);
    }
    Ok(SafePath(out))
}

/// The `n`-th alternative to `name` when it is taken: "Bericht.pdf" ->
/// "Bericht (1).pdf"; "Projekt" -> "Projekt (2)"; ".bashrc" -> ".bashrc (1)".
pub fn numbered(name: &str, n: u32) -> String {
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_and_folders_pass() {
        let p = check_path("Projekt/Unterordner/Grüße 2026.txt").unwrap();
        assert_eq!(p.components(), ["Projekt", "Unterordner", "Grüße 2026.txt"]);
        assert_eq!(p.to_string(), "Projekt/Unterordner/Grüße 2026.txt");
        assert!(check_path(".bashrc").is_ok());
        assert!(check_path("con.d").is_err(), "CON with an extension is still CON");
        assert!(check_path("console.txt").is_ok());
        assert!(check_path("COM10").is_ok());
    }

    #[test]
    fn the_hostile_corpus_is_refused() {
        let corpus = [
            "",
            "/etc/passwd",
            "\\\\server\\share\\x",
            "C:\\Windows\\system32",
            "c:evil",
            "../outside",
            "a/../../outside",
            "a/./b",
            "./a",
            "a//b",
            "a/",
            "a\\..\\..\\b",
            "CON",
            "nul.txt",
            "Aux",
            "com1",
            "LPT9.log",
            "COM¹",
            "bad\u{0}name",
            "line\nbreak",
            "esc\u{1b}[31m",
            "what?",
            "star*",
            "pipe|x",
            "a:b",
            "trailing.",
            "trailing ",
            "quote\"",
            "rechnung\u{202e}txt.exe",
            "Ordner\u{2067}/x",
            "mark\u{200f}.pdf",
            "arabic\u{061c}mark",
        ];
        for name in corpus {
            assert!(check_path(name).is_err(), "{name:?} was accepted");
        }
        assert_eq!(check_path("a/".repeat(65).trim_end_matches('/')), Err(NameError::TooLong));
        assert_eq!(check_path(&"x".repeat(256)), Err(NameError::TooLong));
    }

    #[test]
    fn numbering_keeps_the_extension() {
        assert_eq!(numbered("Bericht.pdf", 1), "Bericht (1).pdf");
        assert_eq!(numbered("archiv.tar.gz", 2), "archiv.tar (2).gz");
        assert_eq!(numbered("Projekt", 3), "Projekt (3)");
        assert_eq!(numbered(".bashrc", 1), ".bashrc (1)");
    }
}
