//! Checks for text that comes off the wire: names, labels, clipboard.
//!
//! Text from a peer ends up on someone's screen or in a log. Control
//! characters could forge log lines or reorder what a person reads (bidi
//! overrides), so labels refuse them; clipboard text may hold newlines and
//! tabs but nothing else below U+0020.

/// A message field broke a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {problem}")]
pub struct InvalidField {
    /// Which field.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl InvalidField {
    /// Shorthand for building the error.
    pub const fn new(field: &'static str, problem: &'static str) -> Self {
        InvalidField { field, problem }
    }
}

/// Whether `c` changes the order in which text around it is shown (the
/// bidirectional marks, embeddings, overrides and isolates): with U+202E,
/// "rechnung\u{202e}txt.exe" reads as "rechnungexe.txt".
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A one-line label shown to a person: at most `max_bytes` of UTF-8, no
/// control or bidi-override characters. Empty is allowed.
pub fn check_label(field: &'static str, s: &str, max_bytes: usize) -> Result<(), InvalidField> {
    if s.len() > max_bytes {
        return Err(InvalidField::new(field, "too long"));
    }
    if s.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(InvalidField::new(field, "contains control characters"));
    }
    Ok(())
}

/// Multi-line text (clipboard): at most `max_bytes`, control characters only
/// as newline, carriage return or tab.
pub fn check_text(field: &'static str, s: &str, max_bytes: usize) -> Result<(), InvalidField> {
    if s.len() > max_bytes {
        return Err(InvalidField::new(field, "too long"));
    }
    if s.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(InvalidField::new(field, "contains control characters"));
    }
    Ok(())
}

/// A list of at most `max` items.
pub fn check_count<T>(field: &'static str, items: &[T], max: usize) -> Result<(), InvalidField> {
    if items.len() > max {
        Err(InvalidField::new(field, "too many entries"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_refuse_control_and_bidi_characters() {
        assert!(check_label("name", "Jürgen Müller (Kd.-Nr. 4711)", 64).is_ok());
        assert!(check_label("name", "a\nb", 64).is_err());
        assert!(check_label("name", "evil\u{202e}txt.exe", 64).is_err());
        assert!(check_label("name", "evil\u{061c}txt.exe", 64).is_err());
        assert!(check_label("name", &"x".repeat(65), 64).is_err());
    }

    #[test]
    fn text_allows_line_breaks_and_tabs_only() {
        assert!(check_text("clipboard", "a\r\n\tb", 16).is_ok());
        assert!(check_text("clipboard", "a\u{1b}[2J", 16).is_err());
    }
}
