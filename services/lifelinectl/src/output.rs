//! Writing to stdout without panicking when the reader goes away, and plain-text tables.

use std::io::{ErrorKind, Write};

use crate::CtlError;

/// Writes one line to stdout. `println!` panics on a closed pipe (`lifelinectl … | head`); this
/// reports [`CtlError::StdoutClosed`] instead, which the CLI treats as a normal exit.
pub fn line(text: &str) -> Result<(), CtlError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").and_then(|()| out.flush()).map_err(|e| match e.kind() {
        ErrorKind::BrokenPipe => CtlError::StdoutClosed,
        _ => CtlError::Stdout(e),
    })
}

/// Makes a value safe for one table cell or one `key=value` token: control characters (newlines,
/// terminal escapes from a platform's error text) become spaces, and long text is cut.
pub fn cell(text: &str, max_chars: usize) -> String {
    let clean: String =
        text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>();
    let clean = clean.trim();
    if clean.chars().count() <= max_chars {
        return clean.to_owned();
    }
    let mut cut: String = clean.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A table with left-aligned columns, sized to the widest cell; `-` stands for an empty cell so
/// columns stay readable with `awk`.
#[derive(Debug)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Table { headers: headers.to_vec(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let cells = |row: &[String]| -> Vec<String> {
            (0..self.headers.len())
                .map(|i| match row.get(i).map(|c| cell(c, usize::MAX)) {
                    Some(c) if !c.is_empty() => c,
                    _ => "-".to_owned(),
                })
                .collect()
        };
        let rows: Vec<Vec<String>> = self.rows.iter().map(|r| cells(r)).collect();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let header: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&rows) {
            let mut text = String::new();
            for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
                if i + 1 == row.len() {
                    text.push_str(c);
                } else {
                    text.push_str(c);
                    text.extend(std::iter::repeat_n(' ', w - c.chars().count() + 2));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out.pop();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_fill_empty_cells() {
        let mut t = Table::new(&["ID", "STATUS", "CAUSE"]);
        t.row(vec!["a".into(), "needs_reconnect".into(), "revoked".into()]);
        t.row(vec!["bbbb".into(), "ok".into(), String::new()]);
        assert_eq!(
            t.render(),
            "ID    STATUS           CAUSE\na     needs_reconnect  revoked\nbbbb  ok               -"
        );
    }

    #[test]
    fn cells_lose_control_characters_and_excess_length() {
        assert_eq!(cell("line1\nline2\x1b[31m", 100), "line1 line2 [31m");
        assert_eq!(cell("abcdef", 4), "abc…");
        assert_eq!(cell("abc", 3), "abc");
    }
}
