//! SHA-256 over a whole buffer with a chosen block function: the `sha2` crate's portable
//! one, or the CPU's SHA-256 instructions where the arch layer finds them (the crate picks
//! its hardware path only where an operating system reports CPU features, or when the
//! whole image is built for them, which would not run on CPUs without them).

use super::Digest;

/// SHA-256's block function: updates `state` with each 64-byte block.
pub type Compress = fn(&mut [u32; 8], &[[u8; 64]]);

/// The initial hash value (FIPS 180-4, 5.3.3).
const H0: [u32; 8] =
    [0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19];

/// SHA-256 of `data`, its blocks given to `compress`.
pub fn sha256_with(data: &[u8], compress: Compress) -> Digest {
    let mut state = H0;
    let (blocks, rest) = data.as_chunks::<64>();
    compress(&mut state, blocks);
    // The padding: 0x80, zeros, and the length in bits, in one block or two.
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let n = if rest.len() < 56 { 64 } else { 128 };
    tail[n - 8..n].copy_from_slice(&((data.len() as u64).wrapping_mul(8)).to_be_bytes());
    compress(&mut state, tail[..n].as_chunks::<64>().0);
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_crate_at_every_padding_boundary() {
        let data: alloc::vec::Vec<u8> = (0..1200u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 1200] {
            assert_eq!(
                sha256_with(&data[..len], sha2::block_api::compress256),
                super::super::sha256(&data[..len]),
                "{len}"
            );
        }
        // FIPS 180-4's "abc".
        assert_eq!(
            super::super::hex(&sha256_with(b"abc", sha2::block_api::compress256)),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
