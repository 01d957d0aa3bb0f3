//! Image header and entry code: the first instructions the loader jumps to, on the boot
//! CPU and on secondary CPUs, up to the first Rust function.

use core::sync::atomic::AtomicU64;

use crate::platform::MAX_CPUS;

/// Bytes of stack per CPU (`STACK_SIZE` in link.ld must match).
pub const STACK_SIZE: usize = 0x10000;

/// SCTLR_EL2 with only its RES1 bits: MMU, caches and alignment checks off, little-endian.
pub const SCTLR_EL2_RES1: u64 = 0x30c5_0830;

/// MPIDR affinity of each CPU index, read by the secondary entry code to find its index
/// (and so its stack). `u64::MAX` marks an unused slot.
#[unsafe(no_mangle)]
pub static CPU_MPIDRS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(u64::MAX) }; MAX_CPUS];

core::arch::global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    // arm64 Image header (Documentation/arch/arm64/booting.rst).
    b       primary_entry           // code0
    .long   0                       // code1
    .quad   0x200000                // text_offset
    .quad   __image_size            // image_size: file, BSS and stacks
    .quad   0x2                     // flags: little-endian, 4 KiB pages, base 2 MiB aligned
    .quad   0                       // res2
    .quad   0                       // res3
    .quad   0                       // res4
    .ascii  "ARM\x64"               // magic
    .long   0                       // res5

    .section .text.boot, "ax"
primary_entry:
    // x0 = physical address of the DTB. MMU and D-cache are off (booting.rst).
    mov     x19, x0
    mrs     x9, CurrentEL
    cmp     x9, #(2 << 2)
    b.ne    .Lpark
    ldr     x9, ={sctlr}
    msr     sctlr_el2, x9
    isb
    // Apply R_AARCH64_RELATIVE relocations: the image is linked at 0.
    adr     x20, _start
    adrp    x1, __rela_start
    add     x1, x1, :lo12:__rela_start
    adrp    x2, __rela_end
    add     x2, x2, :lo12:__rela_end
1:  cmp     x1, x2
    b.hs    2f
    ldp     x3, x4, [x1], #16
    ldr     x5, [x1], #8
    cmp     w4, #1027               // R_AARCH64_RELATIVE
    b.ne    1b
    add     x5, x5, x20
    str     x5, [x3, x20]
    b       1b
2:  // Zero BSS.
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
3:  cmp     x1, x2
    b.hs    4f
    stp     xzr, xzr, [x1], #16
    b       3b
4:  // Stack of CPU 0 (stacks grow down from the end of each slot).
    adrp    x1, __stacks_start
    add     x1, x1, :lo12:__stacks_start
    ldr     x2, ={stack}
    add     sp, x1, x2
    adrp    x1, el2_vectors
    add     x1, x1, :lo12:el2_vectors
    msr     vbar_el2, x1
    isb
    mov     x0, x19
    mov     x1, x20
    bl      primary_main
.Lpark:
    wfe
    b       .Lpark

    .global secondary_entry
secondary_entry:
    // Started by PSCI CPU_ON or released from a spin table; MMU off.
    ldr     x9, ={sctlr}
    msr     sctlr_el2, x9
    isb
    mrs     x1, mpidr_el1
    ldr     x2, ={aff_mask}
    and     x1, x1, x2
    adrp    x2, CPU_MPIDRS
    add     x2, x2, :lo12:CPU_MPIDRS
    mov     x3, #0
5:  cmp     x3, #{max_cpus}
    b.hs    .Lpark
    ldr     x4, [x2, x3, lsl #3]
    cmp     x4, x1
    b.eq    6f
    add     x3, x3, #1
    b       5b
6:  ldr     x5, ={stack}
    add     x6, x3, #1
    mul     x6, x6, x5
    adrp    x1, __stacks_start
    add     x1, x1, :lo12:__stacks_start
    add     sp, x1, x6
    adrp    x1, el2_vectors
    add     x1, x1, :lo12:el2_vectors
    msr     vbar_el2, x1
    isb
    mov     x0, x3
    bl      secondary_main
    b       .Lpark
"#,
    sctlr = const SCTLR_EL2_RES1,
    stack = const STACK_SIZE,
    max_cpus = const MAX_CPUS,
    aff_mask = const crate::platform::MPIDR_AFF_MASK,
);

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
    static __stacks_start: u8;
    static __stacks_end: u8;
    fn secondary_entry();
}

/// Where the image lies in physical memory (identity mapped).
#[derive(Debug, Clone, Copy)]
pub struct ImageLayout {
    pub start: u64,
    /// End of the executable part.
    pub text_end: u64,
    /// End of constants and relocated read-only data.
    pub rodata_end: u64,
    /// End of data, BSS and stacks.
    pub end: u64,
    pub stacks_start: u64,
    pub stacks_end: u64,
}

/// The image's own layout, from linker symbols.
pub fn image_layout() -> ImageLayout {
    ImageLayout {
        start: core::ptr::addr_of!(__image_start) as u64,
        text_end: core::ptr::addr_of!(__text_end) as u64,
        rodata_end: core::ptr::addr_of!(__rodata_end) as u64,
        end: core::ptr::addr_of!(__image_end) as u64,
        stacks_start: core::ptr::addr_of!(__stacks_start) as u64,
        stacks_end: core::ptr::addr_of!(__stacks_end) as u64,
    }
}

/// Physical address secondary CPUs start at.
pub fn secondary_entry_pa() -> u64 {
    secondary_entry as *const () as u64
}
