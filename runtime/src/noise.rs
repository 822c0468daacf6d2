//! The initial noise x0 from a seed: one definition for the CLI, the Rust API and the C ABI.
//!
//! # Definition (odelt noise v1)
//!
//! 1. Key: ChaCha with 8 rounds (`rand_chacha::ChaCha8Rng`, rand_core 0.6 word order), created
//!    with `ChaCha8Rng::from_seed(key)` where `key` is 32 bytes: the u64 seed in little-endian
//!    order followed by 24 zero bytes. Stream 0, word position 0.
//! 2. Uniforms: `u = (next_u64() >> 11) · 2⁻⁵³`, in [0, 1), where `next_u64` joins two
//!    consecutive 32-bit output words, the first as the low half.
//! 3. Normals (Box–Muller, in f64): for each pair of uniforms (u1, u2),
//!    `r = sqrt(−2 ln(1 − u1))`, `z0 = r cos(2π u2)`, `z1 = r sin(2π u2)`; z0 then z1, each
//!    rounded to f32.
//! 4. x0 is filled in row-major [N, C, H, W] order from that sequence; an odd count drops the
//!    last z1.
//!
//! `runtime/tests/data/odelt_noise.py` implements this in plain Python (NumPy only for the
//! final rounding to float32).
//!
//! So the first `m` values do not depend on how many are drawn: sample i of a batch of N gets
//! the same noise as sample i of any larger batch with the same seed.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The 32-byte ChaCha key for `seed` (step 1 of the definition).
pub fn key(seed: u64) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key
}

/// Fills `out` with standard normal noise from `seed` (see the module docs).
pub fn fill_normal(seed: u64, out: &mut [f32]) {
    let mut rng = ChaCha8Rng::from_seed(key(seed));
    let mut uniform = || (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    for pair in out.chunks_mut(2) {
        let (u1, u2) = (uniform(), uniform());
        let r = (-2.0 * (1.0 - u1).ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        pair[0] = (r * angle.cos()) as f32;
        if let Some(second) = pair.get_mut(1) {
            *second = (r * angle.sin()) as f32;
        }
    }
}

/// `len` standard normal values from `seed`.
pub fn normal(seed: u64, len: usize) -> Vec<f32> {
    let mut out = vec![0.0; len];
    fill_normal(seed, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_pinned() {
        // Changing these breaks "same seed, same noise" across releases: don't, or bump the
        // definition's version.
        let x = normal(0, 4);
        let y = normal(42, 3);
        eprintln!("seed 0: {x:?}; seed 42: {y:?}");
        assert_eq!(x, PINNED_0);
        assert_eq!(y, PINNED_42);
    }

    // Also what runtime/tests/data/odelt_noise.py, an independent Python implementation of the
    // definition, prints.
    const PINNED_0: [f32; 4] = [-1.2912251, -1.3999156, 0.5376786, 0.48981225];
    const PINNED_42: [f32; 3] = [-0.2058122, 0.90213275, -0.78708655];

    #[test]
    fn prefix_property_and_moments() {
        let long = normal(7, 100_001);
        let short = normal(7, 33);
        assert_eq!(&long[..33], &short[..]);
        let n = long.len() as f64;
        let mean = long.iter().map(|v| *v as f64).sum::<f64>() / n;
        let var = long.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
        assert_ne!(normal(8, 4), normal(7, 4));
    }
}
