//! User text in messages. A name, value or key a user wrote can hold a newline, a carriage
//! return, an escape sequence, a Unicode line separator or a bidirectional override: printed as
//! is, it forges log lines that look like the agent's own, or hides what it says. Everything a
//! user wrote goes through [`escaped`] before it reaches an error, a log line or a status.

use std::borrow::Cow;

/// `text` with every character that could break or disguise a line written as an escape
/// (`\n`, `\u{2028}`); text without such characters is borrowed as is.
pub fn escaped(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` cut to at most `max` bytes on a character boundary, ending in `…` when cut: a message
/// quoting a megabyte regex must not make the status or Event that carries it too large to write.
pub fn clipped(text: &str, max: usize) -> Cow<'_, str> {
    const MORE: &str = "…";
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let more = if max >= MORE.len() { MORE } else { "" };
    let mut cut = max - more.len();
    while !text.is_char_boundary(cut) {
        cut -= 1; // 0 is a boundary: never below it
    }
    Cow::Owned(format!("{}{more}", &text[..cut]))
}

/// Control characters (C0, DEL, C1 with NEL), line and paragraph separators, and the invisible
/// format characters that reorder or hide text (bidirectional marks, embeddings, overrides and
/// isolates; zero-width characters; the byte-order mark).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

#[cfg(test)]
mod tests {
    use super::escaped;

    #[test]
    fn clipped_cuts_on_a_character_boundary() {
        use super::clipped;
        assert_eq!(clipped("short", 10), "short");
        assert_eq!(clipped("0123456789abc", 10), "0123456…");
        assert_eq!(clipped("ééééé", 6), "é…");
        assert_eq!(clipped("ééééé", 2), "é");
        assert_eq!(clipped("ééééé", 1), "");
        assert!(clipped(&"x".repeat(100_000), 1000).len() <= 1000);
    }

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            escaped("quote-backend.default"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn what_breaks_or_disguises_a_line_is_escaped() {
        assert_eq!(escaped("a\nb"), "a\\nb");
        assert_eq!(escaped("a\r\tb"), "a\\r\\tb");
        assert_eq!(escaped("a\u{2028}b\u{85}c"), "a\\u{2028}b\\u{85}c");
        assert_eq!(escaped("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escaped("admin\u{202E}gpj.exe"), "admin\\u{202e}gpj.exe");
        assert_eq!(escaped("ünïcödé ✓"), "ünïcödé ✓");
    }
}
