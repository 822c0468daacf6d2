//! The IDX reader (Fashion-MNIST's gzipped files). An input starting with 0x1f is read as it
//! is (gzip); any other is gzipped first, so the IDX parser behind the decompressor is
//! reached directly.
use std::io::Write;
use std::path::Path;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let path = Path::new("t10k-labels-idx1-ubyte.gz");
        if data.first() == Some(&0x1f) {
            let _ = odelt::data::idx::parse_gz(data, path);
        } else {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            if gz.write_all(data).is_ok() {
                if let Ok(bytes) = gz.finish() {
                    let _ = odelt::data::idx::parse_gz(&bytes, path);
                }
            }
        }
    });
}
