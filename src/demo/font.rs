//! A 3×5 bitmap font for the few characters the demo figure writes: digits, the headers
//! (`l=12`, `T=128`), Fashion-MNIST's class names in capitals and the cells' quality captions
//! (`FD 1.59 (1.52-1.66)`).

/// Glyph width and height in font pixels; one blank column separates characters.
pub const WIDTH: usize = 3;
pub const HEIGHT: usize = 5;

/// Rows top to bottom, three bits each, the most significant bit on the left.
const GLYPHS: [(char, u16); 40] = [
    ('0', 0b111_101_101_101_111),
    ('1', 0b010_110_010_010_111),
    ('2', 0b111_001_111_100_111),
    ('3', 0b111_001_011_001_111),
    ('4', 0b101_101_111_001_001),
    ('5', 0b111_100_111_001_111),
    ('6', 0b111_100_111_101_111),
    ('7', 0b111_001_010_010_010),
    ('8', 0b111_101_111_101_111),
    ('9', 0b111_101_111_001_111),
    ('A', 0b010_101_111_101_101),
    ('B', 0b110_101_110_101_110),
    ('C', 0b011_100_100_100_011),
    ('D', 0b110_101_101_101_110),
    ('E', 0b111_100_110_100_111),
    ('F', 0b111_100_110_100_100),
    ('G', 0b011_100_101_101_011),
    ('H', 0b101_101_111_101_101),
    ('I', 0b111_010_010_010_111),
    ('K', 0b101_101_110_101_101),
    ('L', 0b100_100_100_100_111),
    ('M', 0b101_111_111_101_101),
    ('N', 0b110_101_101_101_101),
    ('O', 0b010_101_101_101_010),
    ('P', 0b110_101_110_100_100),
    ('R', 0b110_101_110_101_101),
    ('S', 0b011_100_010_001_110),
    ('T', 0b111_010_010_010_010),
    ('U', 0b101_101_101_101_111),
    ('V', 0b101_101_101_101_010),
    ('W', 0b101_101_111_111_101),
    ('l', 0b010_010_010_010_001),
    ('=', 0b000_111_000_111_000),
    ('-', 0b000_000_111_000_000),
    ('/', 0b001_001_010_100_100),
    ('.', 0b000_000_000_000_010),
    ('(', 0b001_010_010_010_001),
    (')', 0b100_010_010_010_100),
    ('?', 0b111_001_010_000_010),
    (' ', 0),
];

/// The glyph of `c` (lower-case letters other than `l` as capitals; unknown characters as `?`).
fn glyph(c: char) -> u16 {
    let find = |c: char| GLYPHS.iter().find(|(g, _)| *g == c).map(|(_, bits)| *bits);
    find(c)
        .or_else(|| find(c.to_ascii_uppercase()))
        .or_else(|| find('?'))
        .unwrap_or(0)
}

/// Width in pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: usize) -> usize {
    let n = text.chars().count();
    (n * (WIDTH + 1)).saturating_sub(1) * scale
}

/// Calls `set(x, y)` for every lit pixel of `text` drawn at `scale` with its top-left at (x, y).
pub fn draw(text: &str, x: usize, y: usize, scale: usize, mut set: impl FnMut(usize, usize)) {
    for (i, c) in text.chars().enumerate() {
        let bits = glyph(c);
        let left = x + i * (WIDTH + 1) * scale;
        for row in 0..HEIGHT {
            for col in 0..WIDTH {
                if bits >> ((HEIGHT - 1 - row) * WIDTH + (WIDTH - 1 - col)) & 1 == 1 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            set(left + col * scale + dx, y + row * scale + dy);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &str) -> Vec<String> {
        let mut rows = vec![vec![b'.'; text_width(text, 1)]; HEIGHT];
        draw(text, 0, 0, 1, |x, y| rows[y][x] = b'#');
        rows.into_iter()
            .map(|r| String::from_utf8(r).expect("ascii"))
            .collect()
    }

    #[test]
    fn glyphs_are_drawn_left_to_right_top_to_bottom() {
        assert_eq!(
            render("T=1"),
            [
                "###......#.",
                ".#..###.##.",
                ".#.......#.",
                ".#..###..#.",
                ".#......###"
            ]
        );
        assert_eq!(text_width("l=12", 2), 30);
        assert_eq!(text_width("", 2), 0);
    }

    #[test]
    fn unknown_and_lower_case_characters() {
        assert_eq!(glyph('a'), glyph('A'));
        assert_eq!(glyph('~'), glyph('?'));
        assert_ne!(glyph('l'), glyph('L'));
        assert_ne!(glyph('l'), glyph('1'));
    }
}
