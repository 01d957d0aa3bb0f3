//! SHA-256 with the CPU's SHA-256 instructions (FEAT_SHA256), for hashing the launch's
//! images: about ten times the portable code's speed. Chosen at run time only where
//! ID_AA64ISAR0_EL1 says the instructions exist and a known answer comes out right;
//! otherwise the `sha2` crate's portable block function. The image is built without SIMD
//! (guests' vector registers are theirs), so the block function is assembly that saves
//! and restores the vector registers it uses.

use crate::measure::blocks::{Compress, sha256_with};

core::arch::global_asm!(
    r#"
    .arch_extension fp
    .arch_extension simd
    .arch_extension sha2

// Four rounds: v0 (ABCD) and v1 (EFGH) updated with message words \w plus the next four
// constants (x3); v16 and v17 are scratch.
.macro hl_sha256_round w
    ld1     {{v16.4s}}, [x3], #16
    add     v16.4s, v16.4s, \w\().4s
    mov     v17.16b, v0.16b
    sha256h q0, q1, v16.4s
    sha256h2 q1, q17, v16.4s
.endm
// The next four message words, in place of \a.
.macro hl_sha256_schedule a, b, c, d
    sha256su0 \a\().4s, \b\().4s
    sha256su1 \a\().4s, \c\().4s, \d\().4s
.endm

    .pushsection .text.hl_sha256_blocks, "ax"
    .balign 4
    .global hl_sha256_blocks
// hl_sha256_blocks(state: x0, blocks: x1, count: x2)
hl_sha256_blocks:
    cbz     x2, 3f
    sub     sp, sp, #160
    stp     q0, q1, [sp]
    stp     q2, q3, [sp, #32]
    stp     q4, q5, [sp, #64]
    stp     q6, q7, [sp, #96]
    stp     q16, q17, [sp, #128]
    ld1     {{v0.4s, v1.4s}}, [x0]
1:
    adrp    x3, hl_sha256_k
    add     x3, x3, :lo12:hl_sha256_k
    ld1     {{v4.16b, v5.16b, v6.16b, v7.16b}}, [x1], #64
    rev32   v4.16b, v4.16b
    rev32   v5.16b, v5.16b
    rev32   v6.16b, v6.16b
    rev32   v7.16b, v7.16b
    mov     v2.16b, v0.16b
    mov     v3.16b, v1.16b
    // Rounds 0-47, each group also making the message words of a later one; then 48-63.
    .rept 3
    hl_sha256_round v4
    hl_sha256_schedule v4, v5, v6, v7
    hl_sha256_round v5
    hl_sha256_schedule v5, v6, v7, v4
    hl_sha256_round v6
    hl_sha256_schedule v6, v7, v4, v5
    hl_sha256_round v7
    hl_sha256_schedule v7, v4, v5, v6
    .endr
    hl_sha256_round v4
    hl_sha256_round v5
    hl_sha256_round v6
    hl_sha256_round v7
    add     v0.4s, v0.4s, v2.4s
    add     v1.4s, v1.4s, v3.4s
    subs    x2, x2, #1
    b.ne    1b
    st1     {{v0.4s, v1.4s}}, [x0]
    ldp     q0, q1, [sp]
    ldp     q2, q3, [sp, #32]
    ldp     q4, q5, [sp, #64]
    ldp     q6, q7, [sp, #96]
    ldp     q16, q17, [sp, #128]
    add     sp, sp, #160
3:
    ret
    .popsection

    .pushsection .rodata.hl_sha256_k, "a"
    .balign 16
hl_sha256_k:
    .word 0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5
    .word 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174
    .word 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da
    .word 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967
    .word 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85
    .word 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070
    .word 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3
    .word 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
    .popsection
"#
);

unsafe extern "C" {
    fn hl_sha256_blocks(state: *mut u32, blocks: *const u8, n: usize);
}

fn hardware(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    // SAFETY: `hardware` is only chosen where the SHA-256 instructions exist (`compress`);
    // the routine reads `blocks.len()` 64-byte blocks, writes the 8 words of `state`, uses
    // 160 bytes of stack and restores every vector register it uses.
    unsafe { hl_sha256_blocks(state.as_mut_ptr(), blocks.as_ptr().cast(), blocks.len()) }
}

/// The block function to hash with: the CPU's instructions if it has them and they give
/// the portable code's answer for a two-block message.
pub fn compress() -> (Compress, &'static str) {
    let portable: Compress = sha2::block_api::compress256;
    if !super::el2::has_sha256() {
        return (portable, "portable");
    }
    let probe: [u8; 100] = core::array::from_fn(|i| (i * 37 + 11) as u8);
    if sha256_with(&probe, hardware) == sha256_with(&probe, portable) {
        (hardware, "CPU instructions")
    } else {
        log::warn!("SHA-256 instructions gave a wrong answer: hashing with portable code");
        (portable, "portable")
    }
}
