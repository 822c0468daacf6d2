//! SplitMix64 (Steele, Lea & Flood 2014): the mixer behind every derived seed and the
//! exporter's test weights. Changing it changes every training run's random draws.

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function.
fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seed for stream `stream` of a run seeded with `seed` (one stream per step, epoch or
/// split), so a resumed run repeats the draws of an uninterrupted one. 63 bits, so it is a
/// non-negative `i64` for libtorch.
pub fn mix_seed(seed: u64, stream: u64) -> u64 {
    finalize(seed.wrapping_add(stream.wrapping_mul(GOLDEN_GAMMA))) >> 1
}

/// The SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        finalize(self.0)
    }

    /// Uniform in the open interval (0, 1) from the top 53 bits (safe for `ln`).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_sequence() {
        // The first outputs of SplitMix64 seeded with 1234567 (Vigna's splitmix64.c).
        let mut rng = SplitMix64::new(1234567);
        assert_eq!(rng.next_u64(), 6457827717110365317);
        assert_eq!(rng.next_u64(), 3203168211198807973);
        assert_eq!(mix_seed(0, 0), 0);
    }
}
