//! The EL2 exception vector table. Until guests run, every exception is unexpected: the
//! handler prints the cause and a register dump, then stops the machine.

use core::fmt;

use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::registers::*;

/// Registers saved on exception entry.
#[repr(C)]
pub struct TrapFrame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    pub esr: u64,
    pub far: u64,
    _pad: u64,
}

const FRAME_SIZE: usize = core::mem::size_of::<TrapFrame>();
const _: () = assert!(FRAME_SIZE.is_multiple_of(16));

core::arch::global_asm!(
    r#"
    .macro ventry kind
    .balign 0x80
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       el2_trap_common
    .endm

    // From a guest: back to the run loop (see vcpu.rs) with the vector number in x1.
    // First, on cores that need it, what the guest trained is made harmless before any
    // indirect branch: the branch history overwritten by a loop of taken branches
    // (Spectre-BHB), then the firmware's branch-predictor invalidation (Spectre-v2,
    // SMCCC_ARCH_WORKAROUND_1, which may clobber x0-x3).
    .macro gentry kind
    .balign 0x80
    sub     sp, sp, #32
    stp     x0, x1, [sp]
    adrp    x0, {bhb}
    ldr     x0, [x0, :lo12:{bhb}]
    cbz     x0, 3f
1:  b       2f
2:  subs    x0, x0, #1
    b.ne    1b
    dsb     nsh
    isb
3:  adrp    x0, {wa1}
    ldr     x0, [x0, :lo12:{wa1}]
    cbz     x0, 4f
    stp     x2, x3, [sp, #16]
    mov     w0, #0x8000
    movk    w0, #0x8000, lsl #16
    smc     #0
    ldp     x2, x3, [sp, #16]
4:  mov     x1, #\kind
    b       guest_exit
    .endm

    // SError at EL2 (SP_ELx): one taken in guest_exit's window is the exiting guest's. Its
    // exit becomes that SError (x1, the vector number, 11) and EL2 goes on, SError masked
    // again. Any other is unexpected.
    .macro serror_entry
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mrs     x0, elr_el2
    adrp    x1, guest_serror_window
    add     x1, x1, :lo12:guest_serror_window
    cmp     x0, x1
    b.eq    5f
    adrp    x1, guest_serror_window_end
    add     x1, x1, :lo12:guest_serror_window_end
    cmp     x0, x1
    b.eq    5f
    ldp     x0, x1, [sp], #16
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    mov     x0, #7
    b       el2_trap_common
5:  ldp     x0, x1, [sp], #16
    mrs     x1, spsr_el2
    orr     x1, x1, #(1 << 8)
    msr     spsr_el2, x1
    mov     x1, #11
    eret
    .endm

    .section .text.vectors, "ax"
    .balign 0x800
    .global el2_vectors
el2_vectors:
    ventry 0    // current EL, SP_EL0: sync
    ventry 1    //   irq
    ventry 2    //   fiq
    ventry 3    //   serror
    ventry 4    // current EL, SP_ELx: sync
    ventry 5    //   irq
    ventry 6    //   fiq
    serror_entry // serror
    gentry 8    // lower EL, AArch64: sync
    gentry 9    //   irq
    gentry 10   //   fiq
    gentry 11   //   serror
    gentry 12   // lower EL, AArch32: sync
    gentry 13   //   irq
    gentry 14   //   fiq
    gentry 15   //   serror

el2_trap_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x1, elr_el2
    stp     x30, x1, [sp, #240]
    mrs     x1, spsr_el2
    mrs     x2, esr_el2
    stp     x1, x2, [sp, #256]
    mrs     x1, far_el2
    str     x1, [sp, #272]
    mov     x1, sp
    bl      el2_exception
1:  wfe
    b       1b
"#,
    frame = const FRAME_SIZE,
    bhb = sym BHB_LOOP,
    wa1 = sym BP_FIRMWARE,
);

/// Taken branches the guest-exit vectors run to overwrite the branch history (0: none),
/// the largest any CPU needs.
static BHB_LOOP: AtomicU64 = AtomicU64::new(0);
/// 1: the guest-exit vectors call the firmware's SMCCC_ARCH_WORKAROUND_1.
static BP_FIRMWARE: AtomicU64 = AtomicU64::new(0);

/// The firmware offers SMCCC_ARCH_WORKAROUND_1 (learnt by the boot CPU).
static FIRMWARE_WA1: AtomicU64 = AtomicU64::new(0);

/// Applies this CPU's Spectre mitigations to the guest-exit vectors (with the MMU on). The
/// boot CPU says whether the firmware offers SMCCC_ARCH_WORKAROUND_1 (`Some`); the others
/// reuse its answer. Returns what this CPU needs.
pub fn mitigate(firmware_wa1: Option<bool>) -> crate::spectre::Mitigation {
    if let Some(f) = firmware_wa1 {
        FIRMWARE_WA1.store(u64::from(f), Ordering::Release);
    }
    let m = crate::spectre::for_cpu(MIDR_EL1.get(), ID_AA64MMFR1_EL1.get(), ID_AA64PFR0_EL1.get());
    BHB_LOOP.fetch_max(u64::from(m.bhb_loop), Ordering::AcqRel);
    if m.bp_firmware && FIRMWARE_WA1.load(Ordering::Acquire) != 0 {
        BP_FIRMWARE.store(1, Ordering::Release);
    }
    m
}

const KINDS: [&str; 4] = ["synchronous", "IRQ", "FIQ", "SError"];
const ORIGINS: [&str; 4] = ["EL2 (SP_EL0)", "EL2", "EL1 (AArch64)", "EL1 (AArch32)"];

/// Name of an ESR_EL2 exception class.
fn ec_name(ec: u64) -> &'static str {
    match ec {
        0x00 => "unknown reason",
        0x01 => "WFI/WFE",
        0x07 => "FP/SIMD access",
        0x0e => "illegal execution state",
        0x15 => "SVC (AArch64)",
        0x16 => "HVC (AArch64)",
        0x17 => "SMC (AArch64)",
        0x18 => "system register access",
        0x20 => "instruction abort from a lower EL",
        0x21 => "instruction abort at EL2",
        0x22 => "PC alignment fault",
        0x24 => "data abort from a lower EL",
        0x25 => "data abort at EL2",
        0x26 => "SP alignment fault",
        0x2f => "SError",
        0x3c => "BRK instruction",
        _ => "other",
    }
}

struct Dump<'a>(u64, &'a TrapFrame);

impl fmt::Display for Dump<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, t) = (self.0 as usize, self.1);
        let ec = t.esr >> 26;
        writeln!(
            f,
            "(HL) FATAL: unexpected {} exception from {} on CPU {}",
            KINDS[kind & 3],
            ORIGINS[(kind >> 2) & 3],
            TPIDR_EL2.get()
        )?;
        writeln!(f, "(HL)   ESR_EL2 {:#018x} (EC {:#04x}: {})", t.esr, ec, ec_name(ec))?;
        writeln!(f, "(HL)   ELR_EL2 {:#018x}  FAR_EL2 {:#018x}  SPSR_EL2 {:#018x}", t.elr, t.far, t.spsr)?;
        for row in 0..8 {
            write!(f, "(HL)  ")?;
            for col in 0..4 {
                let i = row * 4 + col;
                if i < 31 {
                    write!(f, " x{:<2} {:#018x}", i, t.x[i])?;
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[unsafe(no_mangle)]
extern "C" fn el2_exception(kind: u64, frame: &TrapFrame) -> ! {
    super::console::emergency_write(format_args!("{}", Dump(kind, frame)));
    super::power::halt("unexpected exception")
}
