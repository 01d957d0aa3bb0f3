//! A reproducible random source for the randomized host tests.

/// A reproducible random number below `n` at each call (xorshift32 from `seed`).
pub fn xorshift(mut seed: u32) -> impl FnMut(u32) -> u32 {
    move |n: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed % n
    }
}
