//! The demo figure: one cell per (length l, steps T), rows l and columns T with headers; each
//! cell holds the same N samples in a small grid, with each sample's class label under it and,
//! when given, a caption under the cell (its measured quality).
//! White background, black text in the 3×5 font of [`super::font`].

use super::font;
use crate::png::{encode, to_byte};

/// Outer margin and padding around the headers.
pub const PAD: usize = 8;
/// Between the images of a cell.
pub const GAP: usize = 2;
/// Between cells.
pub const CELL_GAP: usize = 12;
/// Font scale of the row and column headers and of the class labels.
pub const HEADER_SCALE: usize = 2;
pub const LABEL_SCALE: usize = 1;
/// Images are magnified by the integer factor that brings their larger side closest to this
/// size from below (28 × 28 Fashion-MNIST: ×2).
pub const TARGET_IMAGE_PX: usize = 56;
/// Height of the label strip under an image: a gap and one line of text.
const LABEL_HEIGHT: usize = GAP + font::HEIGHT * LABEL_SCALE;
/// Height of the caption strip under a cell: a gap and one line of text.
const CAPTION_HEIGHT: usize = 2 * GAP + font::HEIGHT * LABEL_SCALE;
const WHITE: u8 = 255;
const BLACK: u8 = 0;

/// Pixel geometry of a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Integer magnification of each sample.
    pub scale: usize,
    /// One sample on the page: (width, height).
    pub image: (usize, usize),
    /// Samples per cell: (columns, rows).
    pub per_cell: (usize, usize),
    /// One cell: (width, height).
    pub cell: (usize, usize),
    /// Height of the caption strip under each cell (0: no captions).
    pub caption: usize,
    /// Where the first cell starts: (x, y) = (row-header width, column-header height).
    pub origin: (usize, usize),
    /// The whole figure: (width, height).
    pub size: (usize, usize),
}

impl Layout {
    /// `shape` = [N, C, H, W] of one cell's samples; `rows` × `columns` cells; `widest_row`
    /// the widest row header in characters; `captioned`: a caption line under every cell.
    pub fn new(shape: [usize; 4], rows: usize, columns: usize, widest_row: usize, captioned: bool) -> Self {
        let [n, _, h, w] = shape;
        let scale = (TARGET_IMAGE_PX / h.max(w).max(1)).max(1);
        let image = (w * scale, h * scale);
        let cols = if n <= 5 { n.max(1) } else { n.div_ceil(2) };
        let per_cell = (cols, n.div_ceil(cols).max(1));
        let cell = (
            per_cell.0 * image.0 + (per_cell.0 - 1) * GAP,
            per_cell.1 * (image.1 + LABEL_HEIGHT) + (per_cell.1 - 1) * GAP,
        );
        let caption = if captioned { CAPTION_HEIGHT } else { 0 };
        let row_header = font::text_width(&"0".repeat(widest_row), HEADER_SCALE);
        let origin = (PAD + row_header + PAD, PAD + font::HEIGHT * HEADER_SCALE + PAD);
        let span = |count: usize, each: usize| count * each + count.saturating_sub(1) * CELL_GAP;
        let size = (
            origin.0 + span(columns, cell.0) + PAD,
            origin.1 + span(rows, cell.1 + caption) + PAD,
        );
        Self {
            scale,
            image,
            per_cell,
            cell,
            caption,
            origin,
            size,
        }
    }

    /// Top-left corner of cell (row, column).
    fn cell_at(&self, row: usize, column: usize) -> (usize, usize) {
        (
            self.origin.0 + column * (self.cell.0 + CELL_GAP),
            self.origin.1 + row * (self.cell.1 + self.caption + CELL_GAP),
        )
    }

    /// Top-left corner of sample `i` inside a cell.
    fn sample_at(&self, i: usize) -> (usize, usize) {
        let (col, row) = (i % self.per_cell.0, i / self.per_cell.0);
        (
            col * (self.image.0 + GAP),
            row * (self.image.1 + LABEL_HEIGHT + GAP),
        )
    }
}

/// What to draw.
#[derive(Debug, Clone)]
pub struct Figure<'a> {
    pub row_headers: Vec<String>,
    pub column_headers: Vec<String>,
    /// The text under each sample of a cell.
    pub labels: Vec<String>,
    /// [N, C, H, W] of one cell, values in [-1, 1]; C is 1 or 3.
    pub shape: [usize; 4],
    /// Row-major: `cells[row * columns + column]`, N·C·H·W values each.
    pub cells: Vec<&'a [f32]>,
    /// One line under each cell, in the order of `cells`; empty: none.
    pub captions: Vec<String>,
}

impl Figure<'_> {
    pub fn layout(&self) -> Layout {
        let widest = self
            .row_headers
            .iter()
            .map(|h| h.chars().count())
            .max()
            .unwrap_or(0);
        Layout::new(
            self.shape,
            self.row_headers.len(),
            self.column_headers.len(),
            widest,
            !self.captions.is_empty(),
        )
    }

    /// The figure as interleaved 8-bit pixels with C channels: (pixels, width, height).
    pub fn render(&self) -> (Vec<u8>, usize, usize) {
        let [n, c, h, w] = self.shape;
        let layout = self.layout();
        let (width, height) = layout.size;
        let mut pixels = vec![WHITE; width * height * c];
        let mut text = |s: &str, x: usize, y: usize, scale: usize| {
            font::draw(s, x, y, scale, |px, py| {
                if px < width && py < height {
                    pixels[(py * width + px) * c..][..c].fill(BLACK);
                }
            })
        };
        let header_h = font::HEIGHT * HEADER_SCALE;
        for (j, header) in self.column_headers.iter().enumerate() {
            let (x, _) = layout.cell_at(0, j);
            let indent = layout
                .cell
                .0
                .saturating_sub(font::text_width(header, HEADER_SCALE))
                / 2;
            text(header, x + indent, PAD, HEADER_SCALE);
        }
        for (i, header) in self.row_headers.iter().enumerate() {
            let (_, y) = layout.cell_at(i, 0);
            text(
                header,
                PAD,
                y + layout.cell.1.saturating_sub(header_h) / 2,
                HEADER_SCALE,
            );
        }
        let fits = (layout.image.0 + 1) / ((font::WIDTH + 1) * LABEL_SCALE);
        for (i, label) in self.labels.iter().enumerate().take(n) {
            let label: String = label.chars().take(fits).collect();
            let indent = layout
                .image
                .0
                .saturating_sub(font::text_width(&label, LABEL_SCALE))
                / 2;
            for row in 0..self.row_headers.len() {
                for col in 0..self.column_headers.len() {
                    let ((cx, cy), (sx, sy)) = (layout.cell_at(row, col), layout.sample_at(i));
                    let y = cy + sy + layout.image.1 + GAP;
                    text(&label, cx + sx + indent, y, LABEL_SCALE);
                }
            }
        }
        let columns = self.column_headers.len();
        for (index, caption) in self.captions.iter().enumerate() {
            let (cx, cy) = layout.cell_at(index / columns, index % columns);
            let indent = layout
                .cell
                .0
                .saturating_sub(font::text_width(caption, LABEL_SCALE))
                / 2;
            text(caption, cx + indent, cy + layout.cell.1 + 2 * GAP, LABEL_SCALE);
        }
        for (index, data) in self.cells.iter().enumerate() {
            let (cx, cy) = layout.cell_at(index / columns, index % columns);
            for i in 0..n {
                let (sx, sy) = layout.sample_at(i);
                for ch in 0..c {
                    for y in 0..h * layout.scale {
                        for x in 0..w * layout.scale {
                            let v = data[((i * c + ch) * h + y / layout.scale) * w + x / layout.scale];
                            let (px, py) = (cx + sx + x, cy + sy + y);
                            pixels[(py * width + px) * c + ch] = to_byte(v);
                        }
                    }
                }
            }
        }
        (pixels, width, height)
    }

    pub fn png(&self) -> anyhow::Result<Vec<u8>> {
        let (pixels, width, height) = self.render();
        encode(&pixels, width, height, self.shape[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fashion_mnist_layout() {
        // 10 samples of 28×28 in 2 rows of 5, magnified ×2; 3 × 3 cells; headers like "l=12".
        let l = Layout::new([10, 1, 28, 28], 3, 3, 4, false);
        assert_eq!(l.scale, 2);
        assert_eq!(l.per_cell, (5, 2));
        assert_eq!(l.cell, (5 * 56 + 4 * 2, 2 * (56 + 7) + 2));
        assert_eq!(l.origin, (8 + 30 + 8, 8 + 10 + 8));
        assert_eq!(l.size, (46 + 3 * 288 + 2 * 12 + 8, 26 + 3 * 128 + 2 * 12 + 8));
        // Captions add a strip of a line and two gaps under every row of cells.
        let c = Layout::new([10, 1, 28, 28], 3, 3, 4, true);
        assert_eq!(c.size.1, l.size.1 + 3 * (5 + 2 * 2));
    }

    #[test]
    fn samples_and_text_land_where_the_layout_says() {
        // One cell of two 1×1 samples (magnified to 56×56): black and white.
        let data = [-1.0f32, 1.0];
        let figure = Figure {
            row_headers: vec!["l=1".into()],
            column_headers: vec!["T=1".into()],
            labels: vec!["0".into(), "1".into()],
            shape: [2, 1, 1, 1],
            cells: vec![&data],
            captions: vec!["FD 1.0".into()],
        };
        let layout = figure.layout();
        let (pixels, width, height) = figure.render();
        assert_eq!((width, height), layout.size);
        let at = |x: usize, y: usize| pixels[y * width + x];
        let (x0, y0) = layout.origin;
        assert_eq!((at(x0, y0), at(x0 + 55, y0 + 55)), (0, 0), "first sample black");
        assert_eq!(at(x0 + 56 + GAP, y0), 255, "second sample white");
        assert_eq!(at(x0 + 56, y0), 255, "gap is background");
        // The label "0" is drawn centred under the first sample: its top row is lit.
        let label_y = y0 + 56 + GAP;
        assert!((x0..x0 + 56).any(|x| at(x, label_y) == 0), "label drawn");
        // The caption's top row under the cell.
        let caption_y = y0 + layout.cell.1 + 2 * GAP;
        assert!(
            (x0..x0 + layout.cell.0).any(|x| at(x, caption_y) == 0),
            "caption drawn"
        );
        // Column header "T=1" above the cell, row header "l=1" left of it.
        assert!((x0..x0 + layout.cell.0).any(|x| at(x, PAD) == 0));
        assert!(
            (0..width * height)
                .filter(|i| i % width < x0 && pixels[*i] == 0)
                .count()
                > 0
        );
        assert!(figure.png().expect("png").starts_with(b"\x89PNG"));
    }
}
