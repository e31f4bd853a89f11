//! Aligned columns for the list commands.

use std::io::{self, Write};

/// Writes `header` and `rows` with each column as wide as its widest cell, two spaces
/// apart; the last column is not padded, so long record data does not push trailing
/// blanks.
pub fn write_table<const N: usize>(
    out: &mut dyn Write,
    header: [&str; N],
    rows: &[[String; N]],
) -> io::Result<()> {
    let mut widths = header.map(|cell| cell.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    write_row(out, &widths, header.iter().copied())?;
    for row in rows {
        write_row(out, &widths, row.iter().map(String::as_str))?;
    }
    Ok(())
}

fn write_row<'a>(
    out: &mut dyn Write,
    widths: &[usize],
    cells: impl Iterator<Item = &'a str>,
) -> io::Result<()> {
    let mut line = String::new();
    let mut cells = cells.zip(widths).peekable();
    while let Some((cell, width)) = cells.next() {
        line.push_str(cell);
        if cells.peek().is_some() {
            let padding = width.saturating_sub(cell.chars().count()) + 2;
            line.extend(std::iter::repeat_n(' ', padding));
        }
    }
    writeln!(out, "{line}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned() {
        let mut out = Vec::new();
        let rows = [
            [
                "site.internal.".to_string(),
                "12".to_string(),
                "7".to_string(),
            ],
            ["a.".to_string(), "3".to_string(), "2024010101".to_string()],
        ];
        write_table(&mut out, ["ORIGIN", "RECORDS", "SERIAL"], &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "ORIGIN          RECORDS  SERIAL\n\
             site.internal.  12       7\n\
             a.              3        2024010101\n"
        );
    }
}
