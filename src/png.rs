//! PNG output: a grid of samples, and the encoder the demo's figure uses too.

use anyhow::Context;

/// [N, C, H, W] in [-1, 1] → a PNG of a near-square grid (⌈√N⌉ columns, 2-pixel gaps).
pub fn grid(data: &[f32], shape: [usize; 4]) -> anyhow::Result<Vec<u8>> {
    let [n, c, h, w] = shape;
    const GAP: usize = 2;
    let cols = (n as f64).sqrt().ceil().max(1.0) as usize;
    let rows = n.div_ceil(cols);
    let (width, height) = (cols * w + (cols - 1) * GAP, rows * h + (rows - 1) * GAP);
    let mut pixels = vec![0u8; width * height * c];
    for i in 0..n {
        let (gy, gx) = ((i / cols) * (h + GAP), (i % cols) * (w + GAP));
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let v = data[((i * c + ch) * h + y) * w + x];
                    pixels[((gy + y) * width + gx + x) * c + ch] = to_byte(v);
                }
            }
        }
    }
    encode(&pixels, width, height, c)
}

/// A value in [-1, 1] (clamped) → 0…255.
pub fn to_byte(v: f32) -> u8 {
    ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8
}

/// Interleaved 8-bit pixels, 1 (grey) or 3 (RGB) channels → PNG bytes.
pub fn encode(pixels: &[u8], width: usize, height: usize, channels: usize) -> anyhow::Result<Vec<u8>> {
    let color = if channels == 1 {
        image::ExtendedColorType::L8
    } else {
        image::ExtendedColorType::Rgb8
    };
    let mut bytes = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut bytes),
        pixels,
        width as u32,
        height as u32,
        color,
    )
    .context("encoding PNG")?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_is_near_square_and_scaled() {
        let data = [-1.0, 1.0, 0.0, 2.0, -3.0];
        let png = grid(&data[..5], [5, 1, 1, 1]).expect("png");
        let img = image::load_from_memory(&png).expect("decode").to_luma8();
        // 5 images of 1×1: 3 columns, 2 rows, 2-pixel gaps.
        assert_eq!((img.width(), img.height()), (7, 4));
        assert_eq!(img.get_pixel(0, 0).0[0], 0);
        assert_eq!(img.get_pixel(3, 0).0[0], 255);
        assert_eq!(img.get_pixel(6, 0).0[0], 128);
        assert_eq!(img.get_pixel(0, 3).0[0], 255, "clamped");
        assert_eq!(img.get_pixel(3, 3).0[0], 0, "clamped");
    }
}
