//! Column alignment as docker does it: Go's `text/tabwriter` elastic tabstops (docker's fork,
//! which measures cells in terminal columns), configured as
//! `NewWriter(out, 10 /*minwidth*/, 1 /*tabwidth*/, 3 /*padding*/, ' ', 0)`.
//!
//! Cells are terminated by `\t`; consecutive lines with a cell in the same column form a
//! block whose width is `max(minwidth, widest cell + padding)`. The text after a line's last
//! tab belongs to no column and is never padded. A line without tabs ends all blocks.

use std::io::{self, Write};

/// One tab- or line-terminated piece of text.
#[derive(Clone, Copy, Default)]
struct Cell {
    /// Bytes in `buf`.
    size: usize,
    /// Display width in terminal columns.
    width: usize,
    /// Terminated by a hard tab (as opposed to a line end).
    htab: bool,
}

/// Layout parameters of [`TabWriter`].
#[derive(Debug, Clone, Copy)]
pub struct TabConfig {
    pub min_width: usize,
    pub tab_width: usize,
    pub padding: usize,
    pub pad_char: u8,
    /// Right-align cell contents (Go's `AlignRight`).
    pub align_right: bool,
    /// Drop columns made only of empty cells (Go's `DiscardEmptyColumns`).
    pub discard_empty_columns: bool,
}

impl TabConfig {
    /// The parameters every docker table uses.
    pub const DOCKER: TabConfig = TabConfig {
        min_width: 10,
        tab_width: 1,
        padding: 3,
        pad_char: b' ',
        align_right: false,
        discard_empty_columns: false,
    };
}

impl Default for TabConfig {
    fn default() -> Self {
        TabConfig::DOCKER
    }
}

/// A writer that buffers tab-separated text and writes it aligned on [`flush`](Write::flush)
/// (and whenever a line without tabs lets it finish a block early).
pub struct TabWriter<W: Write> {
    out: W,
    config: TabConfig,
    /// Text of all buffered cells, tabs and newlines removed.
    buf: Vec<u8>,
    /// The cell being filled.
    cell: Cell,
    /// Finished cells per line; the last line is the one being filled.
    lines: Vec<Vec<Cell>>,
    /// Column widths of the enclosing blocks while formatting.
    widths: Vec<usize>,
}

impl<W: Write> TabWriter<W> {
    /// A writer with docker's table parameters.
    pub fn new(out: W) -> TabWriter<W> {
        TabWriter::with_config(out, TabConfig::DOCKER)
    }

    pub fn with_config(out: W, config: TabConfig) -> TabWriter<W> {
        TabWriter {
            out,
            config,
            buf: Vec::new(),
            cell: Cell::default(),
            lines: vec![Vec::new()],
            widths: Vec::new(),
        }
    }

    /// Flushes and returns the inner writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.out)
    }

    fn terminate_cell(&mut self, htab: bool) -> usize {
        let start = self.buf.len() - self.cell.size;
        self.cell.width = display_width(&String::from_utf8_lossy(&self.buf[start..]));
        self.cell.htab = htab;
        let line = self.lines.last_mut().expect("a current line");
        line.push(self.cell);
        self.cell = Cell::default();
        line.len()
    }

    /// Formats and writes everything buffered, then starts afresh.
    fn flush_buffered(&mut self) -> io::Result<()> {
        if self.cell.size > 0 {
            self.terminate_cell(false);
        }
        let line_count = self.lines.len();
        let result = self.format(0, 0, line_count).map(|_| ());
        self.buf.clear();
        self.cell = Cell::default();
        self.lines = vec![Vec::new()];
        self.widths.clear();
        result
    }

    /// Go's recursive block formatter: finds runs of lines that have a cell in the next
    /// column, sizes that column over the run, and recurses for the columns to its right.
    fn format(&mut self, mut pos: usize, line0: usize, line1: usize) -> io::Result<usize> {
        let column = self.widths.len();
        let mut start = line0;
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            // This line has a cell in `column`: print what precedes the block, then size it.
            pos = self.write_lines(pos, start, this)?;
            start = this;
            let mut width = self.config.min_width;
            let mut discardable = true;
            while this < line1 && column + 1 < self.lines[this].len() {
                let c = self.lines[this][column];
                width = width.max(c.width + self.config.padding);
                discardable &= c.width == 0 && !c.htab;
                this += 1;
            }
            if discardable && self.config.discard_empty_columns {
                width = 0;
            }
            self.widths.push(width);
            pos = self.format(pos, start, this)?;
            self.widths.pop();
            start = this;
        }
        self.write_lines(pos, start, line1)
    }

    fn write_lines(&mut self, mut pos: usize, line0: usize, line1: usize) -> io::Result<usize> {
        for i in line0..line1 {
            for j in 0..self.lines[i].len() {
                let c = self.lines[i][j];
                let column_width = self.widths.get(j).copied();
                if self.config.align_right {
                    if let Some(w) = column_width {
                        self.write_padding(c.width, w)?;
                    }
                    self.out.write_all(&self.buf[pos..pos + c.size])?;
                } else {
                    self.out.write_all(&self.buf[pos..pos + c.size])?;
                    if let Some(w) = column_width {
                        self.write_padding(c.width, w)?;
                    }
                }
                pos += c.size;
            }
            if i + 1 == self.lines.len() {
                // The unfinished last line: write its pending text without a newline.
                self.out.write_all(&self.buf[pos..pos + self.cell.size])?;
                pos += self.cell.size;
            } else {
                self.out.write_all(b"\n")?;
            }
        }
        Ok(pos)
    }

    fn write_padding(&mut self, text_width: usize, cell_width: usize) -> io::Result<()> {
        if self.config.pad_char == b'\t' {
            // Padding with tabs: round the cell up to a tab stop and emit tabs.
            let tw = self.config.tab_width;
            if tw == 0 {
                return Ok(());
            }
            let cell_width = cell_width.div_ceil(tw) * tw;
            let n = cell_width.saturating_sub(text_width);
            return self.out.write_all(&vec![b'\t'; n.div_ceil(tw)]);
        }
        let n = cell_width.saturating_sub(text_width);
        self.out.write_all(&vec![self.config.pad_char; n])
    }
}

impl<W: Write> Write for TabWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut start = 0;
        for (i, &b) in data.iter().enumerate() {
            if !matches!(b, b'\t' | b'\x0b' | b'\n' | b'\x0c') {
                continue;
            }
            self.buf.extend_from_slice(&data[start..i]);
            self.cell.size += i - start;
            start = i + 1;
            let cells = self.terminate_cell(b == b'\t');
            if b == b'\n' || b == b'\x0c' {
                self.lines.push(Vec::new());
                // A line with a single cell cannot affect later columns: flush early, as Go
                // does; a form feed always flushes.
                if b == b'\x0c' || cells == 1 {
                    self.flush_buffered()?;
                }
            }
        }
        self.buf.extend_from_slice(&data[start..]);
        self.cell.size += data.len() - start;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buffered()?;
        self.out.flush()
    }
}

/// Aligns `text` (tab-separated cells, newline-terminated lines) with docker's parameters.
pub fn align(text: &str) -> String {
    let mut w = TabWriter::new(Vec::new());
    w.write_all(text.as_bytes()).expect("writing to memory");
    String::from_utf8(w.into_inner().expect("writing to memory")).expect("input was UTF-8")
}

/// Terminal columns taken by `s`, like go-runewidth's `StringWidth` with East Asian
/// ambiguous characters counted as narrow: wide and fullwidth characters (CJK, Hangul,
/// most emoji) take 2, combining marks and zero-width characters take 0.
pub fn display_width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

fn char_width(c: char) -> usize {
    let cp = c as u32;
    if cp < 0x20 || (0x7f..0xa0).contains(&cp) {
        return 0;
    }
    if cp < 0x300 {
        return 1;
    }
    if ZERO_WIDTH.iter().any(|&(lo, hi)| (lo..=hi).contains(&cp)) {
        return 0;
    }
    if WIDE.iter().any(|&(lo, hi)| (lo..=hi).contains(&cp)) {
        return 2;
    }
    1
}

/// Combining marks and invisible format characters (main ranges).
const ZERO_WIDTH: &[(u32, u32)] = &[
    (0x0300, 0x036f),
    (0x0483, 0x0489),
    (0x0591, 0x05bd),
    (0x0610, 0x061a),
    (0x064b, 0x065f),
    (0x0e31, 0x0e31),
    (0x0e34, 0x0e3a),
    (0x0e47, 0x0e4e),
    (0x1ab0, 0x1aff),
    (0x1dc0, 0x1dff),
    (0x200b, 0x200f),
    (0x2028, 0x202e),
    (0x2060, 0x2064),
    (0x20d0, 0x20ff),
    (0xfe00, 0xfe0f),
    (0xfe20, 0xfe2f),
    (0xfeff, 0xfeff),
    (0x1f3fb, 0x1f3ff),
    (0xe0100, 0xe01ef),
];

/// East Asian Wide and Fullwidth blocks, and emoji presented wide (main ranges).
const WIDE: &[(u32, u32)] = &[
    (0x1100, 0x115f),
    (0x231a, 0x231b),
    (0x2329, 0x232a),
    (0x23e9, 0x23ec),
    (0x23f0, 0x23f0),
    (0x23f3, 0x23f3),
    (0x25fd, 0x25fe),
    (0x2614, 0x2615),
    (0x2648, 0x2653),
    (0x267f, 0x267f),
    (0x2693, 0x2693),
    (0x26a1, 0x26a1),
    (0x26aa, 0x26ab),
    (0x26bd, 0x26be),
    (0x26c4, 0x26c5),
    (0x26ce, 0x26ce),
    (0x26d4, 0x26d4),
    (0x26ea, 0x26ea),
    (0x26f2, 0x26f3),
    (0x26f5, 0x26f5),
    (0x26fa, 0x26fa),
    (0x26fd, 0x26fd),
    (0x2705, 0x2705),
    (0x270a, 0x270b),
    (0x2728, 0x2728),
    (0x274c, 0x274c),
    (0x274e, 0x274e),
    (0x2753, 0x2755),
    (0x2757, 0x2757),
    (0x2795, 0x2797),
    (0x27b0, 0x27b0),
    (0x27bf, 0x27bf),
    (0x2b1b, 0x2b1c),
    (0x2b50, 0x2b50),
    (0x2b55, 0x2b55),
    (0x2e80, 0x303e),
    (0x3041, 0x33ff),
    (0x3400, 0x4dbf),
    (0x4e00, 0x9fff),
    (0xa000, 0xa4cf),
    (0xa960, 0xa97f),
    (0xac00, 0xd7a3),
    (0xf900, 0xfaff),
    (0xfe10, 0xfe19),
    (0xfe30, 0xfe6f),
    (0xff00, 0xff60),
    (0xffe0, 0xffe6),
    (0x16fe0, 0x16fe4),
    (0x17000, 0x18cff),
    (0x1b000, 0x1b2ff),
    (0x1f004, 0x1f004),
    (0x1f0cf, 0x1f0cf),
    (0x1f18e, 0x1f18e),
    (0x1f191, 0x1f19a),
    (0x1f200, 0x1f251),
    (0x1f300, 0x1f320),
    (0x1f32d, 0x1f335),
    (0x1f337, 0x1f37c),
    (0x1f37e, 0x1f393),
    (0x1f3a0, 0x1f3ca),
    (0x1f3cf, 0x1f3d3),
    (0x1f3e0, 0x1f3f0),
    (0x1f3f4, 0x1f3f4),
    (0x1f3f8, 0x1f43e),
    (0x1f440, 0x1f440),
    (0x1f442, 0x1f4fc),
    (0x1f4ff, 0x1f53d),
    (0x1f54b, 0x1f54e),
    (0x1f550, 0x1f567),
    (0x1f57a, 0x1f57a),
    (0x1f595, 0x1f596),
    (0x1f5a4, 0x1f5a4),
    (0x1f5fb, 0x1f64f),
    (0x1f680, 0x1f6c5),
    (0x1f6cc, 0x1f6cc),
    (0x1f6d0, 0x1f6d2),
    (0x1f6d5, 0x1f6d7),
    (0x1f6eb, 0x1f6ec),
    (0x1f6f4, 0x1f6fc),
    (0x1f7e0, 0x1f7eb),
    (0x1f90c, 0x1f93a),
    (0x1f93c, 0x1f945),
    (0x1f947, 0x1f9ff),
    (0x1fa70, 0x1faff),
    (0x20000, 0x2fffd),
    (0x30000, 0x3fffd),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_images_table() {
        let input = "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\n\
                     busybox\tlatest\t6fd955f66c23\t2 weeks ago\t4.26MB\n\
                     registry.example.com/team/app\tv1.2.3\tb2c3d4e5f6a7\t3 months ago\t212MB\n";
        let want = "REPOSITORY                      TAG       IMAGE ID       CREATED        SIZE\n\
                    busybox                         latest    6fd955f66c23   2 weeks ago    4.26MB\n\
                    registry.example.com/team/app   v1.2.3    b2c3d4e5f6a7   3 months ago   212MB\n";
        assert_eq!(align(input), want);
    }

    #[test]
    fn header_only_table() {
        assert_eq!(
            align("REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\n"),
            "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"
        );
    }

    #[test]
    fn minimum_width_and_padding() {
        assert_eq!(align("a\tb\n"), "a         b\n");
        assert_eq!(align("0123456789\tb\n"), "0123456789   b\n");
        // Trailing text after the last tab is not padded; an empty last cell adds nothing.
        assert_eq!(align("a\t\n"), "a         \n");
    }

    #[test]
    fn lines_with_fewer_cells_split_blocks() {
        // Go's example: b and c are in distinct columns because the b column is interrupted.
        let input = "aaaa\tbbb\td\naa\tb\tdd\na\t\naa\tcccc\teee\n";
        let cfg = TabConfig {
            min_width: 0,
            tab_width: 8,
            padding: 1,
            pad_char: b'.',
            align_right: false,
            discard_empty_columns: false,
        };
        let mut w = TabWriter::with_config(Vec::new(), cfg);
        w.write_all(input.as_bytes()).unwrap();
        let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(out, "aaaa.bbb.d\naa...b...dd\na....\naa...cccc.eee\n");
    }

    #[test]
    fn line_without_tabs_ends_the_block() {
        let input = "x\ty\nplain line\nlong-cell-here\tz\n";
        assert_eq!(
            align(input),
            "x         y\nplain line\nlong-cell-here   z\n"
        );
    }

    #[test]
    fn split_writes_and_unterminated_last_line() {
        let mut w = TabWriter::new(Vec::new());
        w.write_all(b"NAME\tDRI").unwrap();
        w.write_all(b"VER\nvol1\tlocal\nvol2\tloc").unwrap();
        w.write_all(b"al").unwrap();
        let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(out, "NAME      DRIVER\nvol1      local\nvol2      local");
    }

    #[test]
    fn wide_characters_count_two_columns() {
        assert_eq!(display_width("日本"), 4);
        assert_eq!(display_width("e\u{301}"), 1);
        assert_eq!(display_width("🐳"), 2);
        assert_eq!(
            align("日本語の名前\tx\nab\ty\n"),
            "日本語の名前   x\nab             y\n"
        );
    }

    #[test]
    fn right_alignment_and_tab_padding() {
        let cfg = TabConfig {
            align_right: true,
            ..TabConfig::DOCKER
        };
        let mut w = TabWriter::with_config(Vec::new(), cfg);
        w.write_all(b"a\tb\nccc\td\n").unwrap();
        let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(out, "         ab\n       cccd\n");
        let cfg = TabConfig {
            min_width: 0,
            tab_width: 8,
            padding: 1,
            pad_char: b'\t',
            ..TabConfig::DOCKER
        };
        let mut w = TabWriter::with_config(Vec::new(), cfg);
        w.write_all(b"a\tb\nccccccccc\td\n").unwrap();
        let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(out, "a\t\tb\nccccccccc\td\n");
    }
}
