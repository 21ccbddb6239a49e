//! TOML parse errors as konvert prints them: where and what, never the offending line.
//!
//! The toml crate's own message quotes the line it stopped at. A config's line may hold a
//! secret (`records_url = "postgresql://user:password@…"` with its closing quote missing),
//! and a file named by a symlink may be any file on the machine (its first line then shows
//! up in the error), so konvert gives the line and column and the parser's reason only,
//! with control characters escaped so a hostile file cannot drive the terminal.

/// Where and why `text` did not parse as TOML: "line L, column C: reason".
pub fn toml_error(e: &toml::de::Error, text: &str) -> String {
    let reason: String = e.message().chars().flat_map(char::escape_debug).collect();
    match e.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            format!("line {line}, column {column}: {reason}")
        }
        None => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_place_and_never_quotes_the_line() {
        let text = "region = 77\nrecords_url = \"postgresql://u:S3cretPW@db/ris\nsync_timeout_secs = 5\n";
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        let said = toml_error(&e, text);
        assert!(said.starts_with("line 2, column "), "{said}");
        assert!(!said.contains("S3cretPW"), "{said}");
        // The toml crate's own message does quote it: the reason this function exists.
        assert!(e.to_string().contains("S3cretPW"));
    }

    #[test]
    fn escapes_control_characters() {
        let text = "a = 1\n\u{1b}[2J = 2\n";
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        assert!(!toml_error(&e, text).contains('\u{1b}'));
    }
}
