//! The image-folder decoder: one encoded image, resized and cropped to the model's side, grey
//! or RGB (the first byte picks which).
use std::path::Path;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Some((&mode, image)) = data.split_first() {
            let channels = if mode & 1 == 0 { 1 } else { 3 };
            let _ = odelt::data::folder::decode_image(image, Path::new("x.png"), 8, channels);
        }
    });
}
