//! Aligned text tables; widths are measured before colour is added.

use crate::style::{Paint, Style};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// One cell: its text and, optionally, how to paint it.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub text: String,
    pub paint: Option<Paint>,
}

impl Cell {
    pub fn new(text: impl Into<String>) -> Cell {
        Cell { text: text.into(), paint: None }
    }

    pub fn painted(text: impl Into<String>, paint: Option<Paint>) -> Cell {
        Cell { text: text.into(), paint }
    }
}

pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(columns: &[(&'static str, Align)]) -> Table {
        Table { columns: columns.to_vec(), rows: Vec::new() }
    }

    pub fn push(&mut self, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// Columns two spaces apart, a bold header, no trailing whitespace.
    pub fn render(&self, style: &Style) -> String {
        let mut widths: Vec<usize> = self.columns.iter().map(|(name, _)| name.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.text.chars().count());
            }
        }
        let header: Vec<Cell> =
            self.columns.iter().map(|(name, _)| Cell::painted(*name, Some(Paint::Bold))).collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (index, ((cell, width), (_, align))) in row.iter().zip(&widths).zip(&self.columns).enumerate()
            {
                let last = index + 1 == self.columns.len();
                let pad = " ".repeat(width - cell.text.chars().count());
                let text = match cell.paint {
                    Some(paint) => style.paint(&cell.text, paint),
                    None => cell.text.clone(),
                };
                match align {
                    Align::Right => line.push_str(&format!("{pad}{text}")),
                    Align::Left if last => line.push_str(&text),
                    Align::Left => line.push_str(&format!("{text}{pad}")),
                }
                if !last {
                    line.push_str("  ");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_by_visible_width() {
        let mut table = Table::new(&[("NAME", Align::Left), ("N", Align::Right), ("NOTE", Align::Left)]);
        table.push(vec![Cell::new("a"), Cell::new("100"), Cell::new("x")]);
        table.push(vec![Cell::new("longer"), Cell::painted("7", Some(Paint::Red)), Cell::new("")]);
        assert_eq!(table.render(&Style::PLAIN), "NAME      N  NOTE\na       100  x\nlonger    7\n");
        let colored = table.render(&Style::COLOR);
        assert!(colored.contains("longer    \x1b[31m7\x1b[0m"), "{colored:?}");
    }
}
