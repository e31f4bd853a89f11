//! Splits master-file text into logical entries, each a list of tokens with
//! the line it came from.
//!
//! **Invariant:** tokens borrow the input unchanged (escapes stay escaped), so
//! a domain name can still tell `a\.b` (one label) from `a.b` (two labels).
//! Character strings are decoded later by [`decode_escapes`].

use std::borrow::Cow;

/// One word of an entry, as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Token<'a> {
    /// The raw text; for a quoted string, what lies between the quotes.
    pub(super) text: &'a str,
    /// Whether the token was written as a `"quoted string"`.
    pub(super) quoted: bool,
    /// The 1-based line the token starts on.
    pub(super) line: usize,
}

impl Token<'_> {
    /// The token as it would be written back, for error messages.
    pub(super) fn display(&self) -> Cow<'_, str> {
        if self.quoted {
            Cow::Owned(format!("\"{}\"", self.text))
        } else {
            Cow::Borrowed(self.text)
        }
    }
}

/// One logical line: everything up to a newline outside parentheses.
#[derive(Debug)]
pub(super) struct Entry<'a> {
    /// The line began with a space or tab, so the record keeps the previous owner.
    pub(super) blank_owner: bool,
    /// Never empty.
    pub(super) tokens: Vec<Token<'a>>,
}

/// A syntax error found while splitting the text.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct LexError {
    pub(super) line: usize,
    pub(super) message: String,
}

/// Yields one [`Entry`] at a time so that errors come out in file order.
pub(super) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Self {
            text,
            pos: 0,
            line: 1,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Returns the next non-empty entry, or `None` at the end of the text.
    pub(super) fn next_entry(&mut self) -> Result<Option<Entry<'a>>, LexError> {
        let mut tokens = Vec::new();
        let mut blank_owner = false;
        // Entries always end after a newline, so each call starts a line.
        let mut at_line_start = true;
        // The line of the "(" that is still open, if any.
        let mut open_paren: Option<usize> = None;

        loop {
            let Some(byte) = self.peek() else {
                if let Some(line) = open_paren {
                    return Err(LexError {
                        line,
                        message: "\"(\" opened here is never closed".to_string(),
                    });
                }
                return Ok((!tokens.is_empty()).then_some(Entry {
                    blank_owner,
                    tokens,
                }));
            };
            let starts_line = std::mem::replace(&mut at_line_start, false);
            match byte {
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    if open_paren.is_none() {
                        if !tokens.is_empty() {
                            return Ok(Some(Entry {
                                blank_owner,
                                tokens,
                            }));
                        }
                        // A blank or comment-only line: start over on the next one.
                        blank_owner = false;
                        at_line_start = true;
                    }
                }
                b' ' | b'\t' | b'\r' => {
                    if starts_line && open_paren.is_none() && tokens.is_empty() {
                        blank_owner = true;
                    }
                    self.pos += 1;
                }
                b';' => self.skip_comment(),
                b'(' => {
                    if let Some(opened) = open_paren {
                        return Err(LexError {
                            line: self.line,
                            message: format!(
                                "\"(\" inside parentheses opened on line {opened} (remove one of them: parentheses do not nest)"
                            ),
                        });
                    }
                    open_paren = Some(self.line);
                    self.pos += 1;
                }
                b')' => {
                    if open_paren.take().is_none() {
                        return Err(LexError {
                            line: self.line,
                            message: "\")\" has no matching \"(\" (remove it or add the \"(\")"
                                .to_string(),
                        });
                    }
                    self.pos += 1;
                }
                b'"' => tokens.push(self.quoted()?),
                _ => tokens.push(self.unquoted()?),
            }
        }
    }

    fn skip_comment(&mut self) {
        while let Some(byte) = self.peek() {
            if byte == b'\n' {
                break;
            }
            self.pos += 1;
        }
    }

    /// Reads `"..."`; the closing quote must be on the same line.
    fn quoted(&mut self) -> Result<Token<'a>, LexError> {
        let line = self.line;
        let start = self.pos + 1;
        self.pos = start;
        self.skip_quoted_body(line)?;
        let text = self.slice(start, self.pos, line)?;
        self.pos += 1; // The closing quote.
        Ok(Token {
            text,
            quoted: true,
            line,
        })
    }

    /// Advances to the closing `"` of a quoted section (without consuming it).
    fn skip_quoted_body(&mut self, opened_on: usize) -> Result<(), LexError> {
        loop {
            match self.peek() {
                Some(b'"') => return Ok(()),
                Some(b'\\') => self.skip_escape(),
                Some(b'\n') | None => {
                    return Err(LexError {
                        line: opened_on,
                        message: "quoted string is not closed on this line (add the closing \")"
                            .to_string(),
                    });
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Skips a backslash and the byte it escapes (an escaped newline still counts as a line).
    fn skip_escape(&mut self) {
        self.pos += 1;
        if let Some(byte) = self.peek() {
            if byte == b'\n' {
                self.line += 1;
            }
            self.pos += 1;
        }
    }

    /// Reads a word up to whitespace, `;`, `(` or `)`. A quoted section inside
    /// a word (`alpn="h2 h3"`) is kept whole, spaces included.
    fn unquoted(&mut self) -> Result<Token<'a>, LexError> {
        let line = self.line;
        let start = self.pos;
        while let Some(byte) = self.peek() {
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' => break,
                b'\\' => self.skip_escape(),
                b'"' => {
                    self.pos += 1;
                    self.skip_quoted_body(self.line)?;
                    self.pos += 1;
                }
                _ => self.pos += 1,
            }
        }
        let text = self.slice(start, self.pos, line)?;
        Ok(Token {
            text,
            quoted: false,
            line,
        })
    }

    fn slice(&self, start: usize, end: usize, line: usize) -> Result<&'a str, LexError> {
        // Token boundaries are ASCII delimiters, so this only fails if a
        // backslash escapes the first byte of a multi-byte character at the
        // very end of a token, which `str::get` reports instead of panicking.
        self.text.get(start..end).ok_or_else(|| LexError {
            line,
            message: "a backslash escapes part of a multi-byte character (escape it as \\DDD bytes instead)"
                .to_string(),
        })
    }
}

/// Decodes RFC 1035 escapes (`\X` and `\DDD`) into bytes, as used for
/// character strings such as TXT data.
pub(super) fn decode_escapes(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte != b'\\' {
            out.push(byte);
            index += 1;
            continue;
        }
        match bytes.get(index + 1) {
            None => {
                return Err(format!(
                    "\"{text}\" ends with a lone backslash (write \\\\ for a backslash)"
                ));
            }
            Some(digit) if digit.is_ascii_digit() => {
                let (value, used) = decimal_escape(bytes, index).ok_or_else(|| {
                    format!("escape in \"{text}\" needs three digits (like \\065)")
                })?;
                let value = u8::try_from(value)
                    .map_err(|_| format!("escape \\{value} in \"{text}\" is above 255"))?;
                out.push(value);
                index += used;
            }
            Some(&escaped) => {
                out.push(escaped);
                index += 2;
            }
        }
    }
    Ok(out)
}

/// Reads `\DDD` at `index`; returns its value and the bytes it spans.
pub(super) fn decimal_escape(bytes: &[u8], index: usize) -> Option<(u16, usize)> {
    let digits = bytes.get(index + 1..index + 4)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = digits
        .iter()
        .fold(0u16, |value, digit| value * 10 + u16::from(digit - b'0'));
    Some((value, 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each entry as (blank owner, [(text, quoted, line)]).
    type Flat<'a> = Vec<(bool, Vec<(&'a str, bool, usize)>)>;

    fn entries(text: &str) -> Result<Flat<'_>, LexError> {
        let mut lexer = Lexer::new(text);
        let mut out = Vec::new();
        while let Some(entry) = lexer.next_entry()? {
            let tokens = entry
                .tokens
                .iter()
                .map(|t| (t.text, t.quoted, t.line))
                .collect();
            out.push((entry.blank_owner, tokens));
        }
        Ok(out)
    }

    #[test]
    fn splits_entries_with_lines() {
        let text = "a 1 ; comment\n\n  b \"c d\" (e\n ; inside\n f) g\n";
        assert_eq!(
            entries(text).expect(text),
            vec![
                (false, vec![("a", false, 1), ("1", false, 1)]),
                (
                    true,
                    vec![
                        ("b", false, 3),
                        ("c d", true, 3),
                        ("e", false, 3),
                        ("f", false, 5),
                        ("g", false, 5)
                    ]
                ),
            ]
        );
    }

    #[test]
    fn keeps_escapes_and_inner_quotes() {
        let text = "a\\ b x\\\"y \"q\\\"r;s\" alpn=\"h2 h3\"";
        assert_eq!(
            entries(text).expect(text),
            vec![(
                false,
                vec![
                    ("a\\ b", false, 1),
                    ("x\\\"y", false, 1),
                    ("q\\\"r;s", true, 1),
                    ("alpn=\"h2 h3\"", false, 1),
                ]
            )]
        );
    }

    #[test]
    fn blank_lines_do_not_make_blank_owners() {
        let text = "   \n\t; only a comment\nwww A 1.2.3.4";
        assert!(!entries(text).expect(text)[0].0);
    }

    #[test]
    fn reports_syntax_errors_on_their_line() {
        let cases = [
            ("a\nb (\nc\n", 2, "\"(\" opened here is never closed"),
            ("a\nb ( (\n)", 2, "parentheses do not nest"),
            ("a\nb )", 2, "\")\" has no matching \"(\""),
            (
                "a\nb \"open\nc\"",
                2,
                "quoted string is not closed on this line",
            ),
            (
                "a\nb x\"open",
                2,
                "quoted string is not closed on this line",
            ),
        ];
        for (text, line, message) in cases {
            let err = entries(text).expect_err(text);
            assert_eq!(err.line, line, "{text:?}");
            assert!(err.message.contains(message), "{text:?}: {}", err.message);
        }
    }

    #[test]
    fn decodes_escapes() {
        assert_eq!(
            decode_escapes("a\\\"b\\;c").expect("the escapes are valid"),
            b"a\"b;c"
        );
        assert_eq!(
            decode_escapes("\\065\\255\\000").expect("the escapes are valid"),
            [65, 255, 0]
        );
        assert!(
            decode_escapes("\\256")
                .expect_err("the escape is invalid")
                .contains("above 255")
        );
        assert!(
            decode_escapes("\\12")
                .expect_err("the escape is invalid")
                .contains("three digits")
        );
        assert!(
            decode_escapes("ab\\")
                .expect_err("the escape is invalid")
                .contains("lone backslash")
        );
    }
}
