//! A bare-metal EL1 test guest. It reads its device tree, prints a marker on its virtual
//! UART, and runs the tests its command line names:
//!   hl.name=NAME      the name in its marker
//!   hl.smp            start every other vCPU with PSCI CPU_ON and wait for each to stop
//!   hl.smccc          PSCI_VERSION, and SMCCC calls the hypervisor must refuse
//!   hl.probe=A,B,...  read and write each address, printing the syndrome (ESR) and fault
//!                     address (FAR) of the exception each raised (the tests judge them)
//!   hl.wait=MS        wait MS milliseconds (by the generic timer) before finishing
//!   hl.echo           read lines from the UART and print each back, until the line "off"
//!   hl.echo-wait=MS   (before hl.echo) leave the input unread for MS ms first
//!   hl.prompt         print "prompt> " with no newline, then wait 400 ms
//!   hl.flood=N        print N bytes of output as fast as it can
//!   hl.boot           act as a Boot Domain: read the LCM and the config blob ("args ID
//!                     TEXT" sets a paused domain's command line, "affinity ID VCPU CPU"
//!                     pins a vCPU, "prop ID PATH NAME TEXT" adds a device tree string,
//!                     "read ADDR LEN" reads the LCM into ADDR, "after LINE" applies LINE
//!                     once the domains are started; other lines list domain ids to start,
//!                     in order), unpause them, signal done (a domain prints its /chosen
//!                     "hl,note" if it has one)
//!   hl.hyp            try Boot Domain and Recovery hypercalls (they must be refused), HL_SIZE
//!                     and HL_READ included
//!   hl.tick=MS:N      print N numbered lines MS apart, with the time since the first
//!   hl.store          store client: send a line on its ring, ring the store, print the reply
//!   hl.store-irq      the same, taking the store's doorbell as an interrupt
//!   hl.ring=ID        ring DOMID's store doorbell (HL_STORE_NOTIFY)
//!   hl.store-server   the store: answer each client's line on its ring
//!   hl.store-serve    the store, for good: answer every client's lines as they come, and
//!                     say when clients join or leave (it idles in WFI between)
//!   hl.ctl=OPS        domain management: "l" list, "qD"/"pD"/"uD"/"dD"/"rD" query, pause,
//!                     unpause, destroy, restart DOMD, "wMS" wait (comma-separated)
//!   hl.recovery       list the domains whose launch failed
//!   hl.reset-at=MS    PSCI SYSTEM_RESET once, when the virtual counter reaches MS ms
//!   hl.peek=A,B       read the 32-bit registers at A, B... and print their values
//!   hl.canary=A       print the 64-bit word of its RAM at A, then write a canary there
//!   hl.cntp           read, write, read again the physical timer's registers
//!   hl.pmu-debug      read, write, read again PMU and self-hosted debug registers
//!   hl.vnet-hostile   bad descriptors to the network link's device, then a proper ARP request
//!   hl.vtimer=N       take N virtual timer interrupts, each programmed by CNTV_TVAL alone
//!   hl.vtimer-firing=N  take N virtual timer interrupts, each ended with the timer still firing
//!   hl.hostile=S      attack every guest interface (calls, emulated devices of every size
//!                     and form, addresses not given, SGI and doorbell floods) in rounds
//!                     for S seconds, printing what each attack got
//!   hl.psci-race=N    N back-to-back CPU_ONs of vCPU 1, which turns itself off each time
//!   hl.reset-race     vCPU 0 and vCPU 1 call SYSTEM_RESET at once
//!   hl.cow            print a word of its own image's data, then write a canary there
//!   hl.cow-read       print that word only
//!   hl.quiet          print nothing (for a domain without a UART)
//!   hl.off            PSCI SYSTEM_OFF at the end (else it idles in WFI)
#![no_std]
#![no_main]

// The hypervisor's Device Tree reader, shared (the guest uses part of it).
#[path = "../../../src/fdt/mod.rs"]
#[allow(dead_code, unused_imports)]
mod fdt;

mod hostile;
mod races;
mod store;
mod vnet;
mod vtimer;

use core::arch::{asm, global_asm};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use hyperlaunch_abi::*;

/// The virtual UART: Xen's layout until the device tree says otherwise (a direct-mapped
/// domain has it at the host UART's address).
static UART_BASE: AtomicU64 = AtomicU64::new(0x2200_0000);

fn uart_dr() -> *mut u32 {
    UART_BASE.load(Ordering::Relaxed) as *mut u32
}

fn uart_fr() -> *const u32 {
    (UART_BASE.load(Ordering::Relaxed) + 0x18) as *const u32
}
const STACK_SIZE: u64 = 0x4000;

global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    b       1f
    .long   0
    .quad   0                       // text_offset
    .quad   __image_size
    .quad   0x2                     // little-endian, 4 KiB pages
    .quad   0, 0, 0
    .ascii  "ARM\x64"
    .long   0
1:  // x0 = DTB (primary) or the vCPU index (CPU_ON context).
    mrs     x9, mpidr_el1
    and     x9, x9, #0xff
    adrp    x10, __stacks
    add     x10, x10, :lo12:__stacks
    mov     x11, #{stack}
    add     x12, x9, #1
    mul     x12, x12, x11
    add     sp, x10, x12
    adrp    x10, guest_vectors
    add     x10, x10, :lo12:guest_vectors
    msr     vbar_el1, x10
    isb
    cbnz    x9, 2f
    // Primary: apply the R_AARCH64_RELATIVE relocations (linked at 0), zero BSS, main(dtb).
    adr     x13, _start
    adrp    x10, __rela_start
    add     x10, x10, :lo12:__rela_start
    adrp    x11, __rela_end
    add     x11, x11, :lo12:__rela_end
6:  cmp     x10, x11
    b.hs    7f
    ldp     x14, x15, [x10], #16
    ldr     x12, [x10], #8
    cmp     w15, #1027
    b.ne    6b
    add     x12, x12, x13
    str     x12, [x14, x13]
    b       6b
7:
    adrp    x10, __bss_start
    add     x10, x10, :lo12:__bss_start
    adrp    x11, __bss_end
    add     x11, x11, :lo12:__bss_end
3:  cmp     x10, x11
    b.hs    4f
    str     xzr, [x10], #8
    b       3b
4:  bl      guest_main
2:  mov     x0, x9
    bl      secondary_main
5:  wfi
    b       5b

    .balign 0x800
guest_vectors:
    .rept 5
    .balign 0x80
    b       guest_sync
    .endr
    .balign 0x80                    // IRQ from the current EL with SP_EL1
    b       guest_irq
    .rept 10
    .balign 0x80
    b       guest_sync
    .endr

// An interrupt: acknowledge it (ICC_IAR1_EL1), record its INTID, end it (ICC_EOIR1_EL1).
guest_irq:
    stp     x9, x10, [sp, #-16]!
    mrs     x9, s3_0_c12_c12_0
    adrp    x10, IRQ_TAKEN
    str     x9, [x10, :lo12:IRQ_TAKEN]
    msr     s3_0_c12_c12_1, x9
    isb
    ldp     x9, x10, [sp], #16
    eret

// Any exception: record its syndrome and fault address, skip the faulting instruction,
// return.
guest_sync:
    stp     x9, x10, [sp, #-16]!
    mrs     x9, far_el1
    adrp    x10, FAULT_FAR
    str     x9, [x10, :lo12:FAULT_FAR]
    mrs     x9, esr_el1
    adrp    x10, FAULT_ESR
    str     x9, [x10, :lo12:FAULT_ESR]
    mrs     x9, elr_el1
    add     x9, x9, #4
    msr     elr_el1, x9
    ldp     x9, x10, [sp], #16
    eret
"#,
    stack = const STACK_SIZE,
);

#[unsafe(no_mangle)]
static FAULT_ESR: AtomicU64 = AtomicU64::new(0);
#[unsafe(no_mangle)]
static FAULT_FAR: AtomicU64 = AtomicU64::new(0);
/// The INTID of the last interrupt taken (u64::MAX: none yet).
#[unsafe(no_mangle)]
static IRQ_TAKEN: AtomicU64 = AtomicU64::new(u64::MAX);
static STARTED: AtomicUsize = AtomicUsize::new(0);
/// Secondaries stay on until the primary has tried its second CPU_ON (which must then find
/// them on, whatever the timing).
static RELEASE: AtomicUsize = AtomicUsize::new(0);

struct Uart;

/// hl.quiet: no output at all (a domain without a UART whose probes the hypervisor's
/// notices report).
static QUIET: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if QUIET.load(Ordering::Relaxed) {
            return Ok(());
        }
        for b in s.bytes() {
            // SAFETY: the virtual UART's data register (trapped and emulated).
            unsafe { core::ptr::write_volatile(uart_dr(), u32::from(b)) };
        }
        Ok(())
    }
}

/// The domain's vCPUs share one UART: whole lines under a lock, as an OS console would.
static UART_LOCK: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

macro_rules! println {
    () => {
        $crate::println!("")
    };
    ($($t:tt)*) => {{
        while $crate::UART_LOCK.swap(true, core::sync::atomic::Ordering::Acquire) {
            core::hint::spin_loop();
        }
        let _ = core::fmt::Write::write_fmt(&mut $crate::Uart, format_args!("{}\n", format_args!($($t)*)));
        $crate::UART_LOCK.store(false, core::sync::atomic::Ordering::Release);
    }};
}
pub(crate) use println;

fn hvc(fid: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let mut x0 = u64::from(fid);
    // SAFETY: an SMCCC call through HVC to the hypervisor; x0-x3 in, x0 out.
    unsafe {
        asm!("hvc #0", inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _,
             options(nostack))
    };
    x0 as i64
}

fn smc(fid: u64) -> i64 {
    let mut x0 = fid;
    // SAFETY: an SMC, trapped by the hypervisor.
    unsafe { asm!("smc #0", inout("x0") x0, out("x1") _, out("x2") _, out("x3") _, options(nostack)) };
    x0 as i64
}

fn mpidr() -> u64 {
    let v: u64;
    // SAFETY: reading MPIDR_EL1 (VMPIDR_EL2 as the hypervisor set it).
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) v) };
    v
}

/// The syndrome and fault address of the exception the last probe raised, if it raised one.
fn fault() -> Option<(u64, u64)> {
    match FAULT_ESR.load(Ordering::SeqCst) {
        0 => None,
        esr => Some((esr, FAULT_FAR.load(Ordering::SeqCst))),
    }
}

/// Reads `addr`; Err((ESR, FAR)) if that raised an exception.
fn probe_read(addr: u64) -> Result<u64, (u64, u64)> {
    FAULT_ESR.store(0, Ordering::SeqCst);
    FAULT_FAR.store(0, Ordering::SeqCst);
    let mut v: u64 = 0xdead_beef;
    // SAFETY: a deliberate access that may fault; the vector records the fault and skips
    // the instruction, leaving `v` as it was.
    unsafe { asm!("ldr {v}, [{a}]", a = in(reg) addr, v = inout(reg) v, options(nostack)) };
    fault().map_or(Ok(v), Err)
}

fn probe_write(addr: u64) -> Result<(), (u64, u64)> {
    FAULT_ESR.store(0, Ordering::SeqCst);
    FAULT_FAR.store(0, Ordering::SeqCst);
    // SAFETY: as above, for a store of a marker value.
    unsafe { asm!("str {v}, [{a}]", a = in(reg) addr, v = in(reg) 0x5a5a_5a5a_u64, options(nostack)) };
    fault().map_or(Ok(()), Err)
}

/// CNTP_CTL_EL0, CNTP_CVAL_EL0 and CNTP_TVAL_EL0 as "CTL CVAL TVAL" (hex).
fn cntp() -> CntpRegs {
    let (ctl, cval, tval): (u64, u64, u64);
    // SAFETY: reads of the EL1 physical timer's registers (trapped by the hypervisor).
    unsafe {
        asm!("mrs {a}, cntp_ctl_el0", "mrs {b}, cntp_cval_el0", "mrs {c}, cntp_tval_el0",
             a = out(reg) ctl, b = out(reg) cval, c = out(reg) tval, options(nostack))
    };
    CntpRegs(ctl, cval, tval)
}

struct CntpRegs(u64, u64, u64);

impl fmt::Display for CntpRegs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x} {:#x} {:#x}", self.0, self.1, self.2)
    }
}

fn counter() -> u64 {
    let v: u64;
    // SAFETY: reading the virtual counter, which EL1 may always do.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) v) };
    v
}

fn frequency() -> u64 {
    let v: u64;
    // SAFETY: reading the counter frequency.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) v) };
    v.max(1)
}

/// Room for the LCM (the host device tree) and the config blob.
static mut LCM_BUF: [u8; 256 * 1024] = [0; 256 * 1024];
static mut CONFIG_BUF: [u8; 4096] = [0; 4096];

fn hvc5(fid: u32, a1: u64, a2: u64, a3: u64, a4: u64) -> i64 {
    let mut x0 = u64::from(fid);
    // SAFETY: an SMCCC call through HVC to the hypervisor; x0-x4 in, x0 out.
    unsafe {
        asm!("hvc #0", inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _,
             inout("x4") a4 => _, options(nostack))
    };
    x0 as i64
}

/// The reference Boot Domain's work: read the LCM and the config blob, start the
/// domains the blob lists in that order, then signal done.
fn boot_domain() {
    let size = hvc(HL_SIZE, 0, 0, 0);
    let buf = &raw mut LCM_BUF;
    // SAFETY: the buffer is this guest's own; the hypervisor writes at most `size` bytes.
    let lcm = unsafe { &mut *buf };
    let n = hvc5(HL_READ, 0, lcm.as_mut_ptr() as u64, 0, lcm.len() as u64);
    println!("boot: LCM is {size} bytes, read {n}");
    let tree = fdt::Fdt::new(&lcm[..n.max(0) as usize]).ok();
    if let Some(hv) = tree.as_ref().and_then(|t| t.find("/chosen/hypervisor")) {
        for d in hv.children().filter(|c| c.is_compatible("xen,domain")) {
            let domid = d.property("domid").and_then(|p| p.u32());
            println!("boot: LCM names {} (domid {:?})", d.name(), domid);
        }
    }
    let mut i = 0u64;
    loop {
        let mut r = [0u64; 4];
        // SAFETY: an SMCCC call through HVC; x0-x3 out.
        unsafe {
            asm!("hvc #0", inout("x0") u64::from(HL_DOMAIN_INFO) => r[0], inout("x1") i => r[1], out("x2") r[2], out("x3") r[3],
                 options(nostack))
        };
        if r[0] != 0 {
            break;
        }
        println!("boot: DOM{} state {} functions {:#x}", r[1], r[2], r[3]);
        i += 1;
    }
    let cbuf = &raw mut CONFIG_BUF;
    // SAFETY: as above, for the config buffer.
    let config = unsafe { &mut *cbuf };
    let len = hvc5(HL_READ, 1, config.as_mut_ptr() as u64, 0, config.len() as u64);
    let text = core::str::from_utf8(&config[..len.max(0) as usize]).unwrap_or("");
    println!("boot: config \"{}\"", text.trim());
    // Extended configuration of paused domains: "args ID TEXT" sets a command line,
    // "affinity ID VCPU CPU" pins a vCPU, "prop ID PATH NAME TEXT" adds a string property
    // to the device tree; "read ADDR LEN" reads the LCM into guest address ADDR. Lines
    // starting "after " are applied once the domains are started. Other lines list the
    // domains to start, in order.
    for line in text.lines().filter(|l| !l.starts_with("after ")) {
        boot_line(line);
    }
    let extended =
        |l: &&str| ["args ", "affinity ", "prop ", "read ", "after "].iter().any(|p| l.starts_with(p));
    let order = text.lines().filter(|l| !extended(l)).flat_map(|l| l.split_whitespace());
    for id in order.filter_map(parse_u64) {
        println!("boot: unpause DOM{id} -> {}", hvc(HL_UNPAUSE, id, 0, 0));
        wait_ms(300);
    }
    for line in text.lines().filter_map(|l| l.strip_prefix("after ")) {
        boot_line(line);
    }
    println!("boot: unpause itself -> {}", hvc(HL_UNPAUSE, 0x7ff5, 0, 0));
    println!("boot: done");
    let r = hvc(HL_DONE, 0, 0, 0);
    println!("boot: STILL RUNNING after done ({r})");
}

/// One line of extended configuration of the Boot Domain's config blob (other lines are
/// ignored here).
fn boot_line(line: &str) {
    if let Some((id, args)) = line.strip_prefix("args ").and_then(|r| r.split_once(' ')) {
        let id = parse_u64(id).unwrap_or(u64::MAX);
        let r = hvc(HL_SET_BOOTARGS, id, args.as_ptr() as u64, args.len() as u64);
        println!("boot: bootargs of DOM{id} -> {r}");
    } else if let Some(rest) = line.strip_prefix("affinity ") {
        let mut n = rest.split_whitespace().map(|w| parse_u64(w).unwrap_or(u64::MAX));
        let (id, vcpu, cpu) = (n.next().unwrap_or(0), n.next().unwrap_or(0), n.next().unwrap_or(0));
        let r = hvc(HL_SET_AFFINITY, id, vcpu, cpu);
        println!("boot: affinity of DOM{id} vCPU {vcpu} -> CPU {cpu}: {r}");
    } else if let Some(rest) = line.strip_prefix("prop ") {
        let mut prop = [0u8; 256];
        let mut w = rest.splitn(4, ' ');
        let (id, path, name, value) = (
            w.next().and_then(parse_u64).unwrap_or(0),
            w.next().unwrap_or(""),
            w.next().unwrap_or(""),
            w.next().unwrap_or(""),
        );
        // "PATH\0NAME\0VALUE\0": a string property.
        let mut len = 0;
        for part in [path.as_bytes(), b"\0", name.as_bytes(), b"\0", value.as_bytes(), b"\0"] {
            let end = (len + part.len()).min(prop.len());
            prop[len..end].copy_from_slice(&part[..end - len]);
            len = end;
        }
        let r = hvc(HL_SET_DT_PROPERTY, id, prop.as_ptr() as u64, len as u64);
        println!("boot: property {path}/{name} of DOM{id} -> {r}");
    } else if let Some(rest) = line.strip_prefix("read ") {
        // HL_READ of the LCM into an address the test names (outside this domain's RAM:
        // it must be refused).
        let mut n = rest.split_whitespace().map(|w| parse_u64(w).unwrap_or(0));
        let (at, len) = (n.next().unwrap_or(0), n.next().unwrap_or(0));
        println!("boot: read LCM into {at:#x} ({len} bytes) -> {}", hvc5(HL_READ, 0, at, 0, len));
    }
}

/// Domain management (a Control domain, or a domain showing it may not): comma-separated
/// operations "qD" query, "pD" pause, "uD" unpause, "dD" destroy, "rD" restart DOMD, "l" list,
/// "wMS" wait.
fn control(ops: &str) {
    for op in ops.split(',') {
        let (kind, n) = op.split_at(op.len().min(1));
        let n = parse_u64(n).unwrap_or(0);
        match kind {
            "q" => {
                let mut r = [0u64; 4];
                // SAFETY: an SMCCC call through HVC; x0-x3 out.
                unsafe {
                    asm!("hvc #0", inout("x0") u64::from(HL_DOMCTL_QUERY) => r[0], inout("x1") n => r[1], out("x2") r[2],
                         out("x3") r[3], options(nostack))
                };
                if r[0] == 0 {
                    println!(
                        "ctl: query DOM{n}: state {}, {} vCPU(s), {} MiB, permissions {:#x} functions {:#x}",
                        r[1] & 0xff,
                        r[1] >> 8,
                        r[2] >> 20,
                        r[3] >> 32,
                        r[3] & 0xffff_ffff
                    );
                } else {
                    println!("ctl: query DOM{n} -> {}", r[0] as i64);
                }
            }
            "p" => println!("ctl: pause DOM{n} -> {}", hvc(HL_DOMCTL_PAUSE, n, 0, 0)),
            "u" => println!("ctl: unpause DOM{n} -> {}", hvc(HL_DOMCTL_UNPAUSE, n, 0, 0)),
            "d" => println!("ctl: destroy DOM{n} -> {}", hvc(HL_DOMCTL_DESTROY, n, 0, 0)),
            "r" => println!("ctl: restart DOM{n} -> {}", hvc(HL_DOMCTL_RESTART, n, 0, 0)),
            "l" => {
                let mut i = 0u64;
                loop {
                    let mut r = [0u64; 4];
                    // SAFETY: an SMCCC call through HVC; x0-x3 out.
                    unsafe {
                        asm!("hvc #0", inout("x0") u64::from(HL_DOMAIN_INFO) => r[0], inout("x1") i => r[1], out("x2") r[2],
                             out("x3") r[3], options(nostack))
                    };
                    if r[0] != 0 {
                        println!("ctl: list -> {} after {i} domain(s)", r[0] as i64);
                        break;
                    }
                    println!("ctl: list: DOM{} state {}", r[1], r[2]);
                    i += 1;
                }
            }
            "w" => wait_ms(n),
            _ => println!("ctl: unknown operation {op}"),
        }
    }
}

fn rd32(a: u64) -> u32 {
    // SAFETY: a word of a store ring page, the virtual GIC or a device given to this
    // guest, mapped for it.
    unsafe { core::ptr::read_volatile(a as *const u32) }
}

fn wr32(a: u64, v: u32) {
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(a as *mut u32, v) }
}

/// Whether INTID `id` is pending at this domain's virtual distributor (GICD_ISPENDR).
fn irq_pending(id: u32) -> bool {
    rd32(GICD + 0x200 + u64::from(id / 32) * 4) & (1 << (id % 32)) != 0
}

/// Makes SPI `id` an enabled group-1 interrupt routed to vCPU 0 and unmasks interrupts on
/// this vCPU (distributor, redistributor wake-up, CPU interface), so that it is taken.
fn irq_enable(id: u32) {
    let route = GICD + 0x6000 + u64::from(id) * 8;
    wr32(route, 0); // IROUTER: affinity 0.0.0.0 (vCPU 0)
    wr32(route + 4, 0);
    gic_enable(GICD, id);
    // SAFETY: unmasking IRQs at this vCPU: the vector records and ends them.
    unsafe { asm!("msr daifclr, #2", options(nostack)) };
}

/// PSCI function IDs (SMC64 where the call takes an address or an affinity).
const CPU_OFF: u32 = 0x8400_0002;
const CPU_ON: u32 = 0xc400_0003;
const AFFINITY_INFO: u32 = 0xc400_0004;
const SYSTEM_OFF: u32 = 0x8400_0008;
const SYSTEM_RESET: u32 = 0x8400_0009;

/// The virtual GICv3's distributor and vCPU 0's redistributor frames.
const GICD: u64 = 0x0300_1000;
const GICR: u64 = 0x0302_0000;

/// Turns the GIC on for vCPU 0 (distributor, redistributor awake, CPU interface) and makes
/// INTID `id` an enabled group-1 interrupt at priority 0xa0 in `frame`: the distributor
/// (SPIs) or vCPU 0's redistributor SGI frame (SGIs and PPIs), whose registers for them lie
/// at the same offsets.
fn gic_enable(frame: u64, id: u32) {
    let (word, bit) = (u64::from(id / 32) * 4, 1u32 << (id % 32));
    wr32(GICD, (1 << 4) | (1 << 1)); // GICD_CTLR: ARE_NS, EnableGrp1NS
    wr32(GICR + 0x14, 0); // GICR_WAKER: awake
    wr32(frame + 0x80 + word, rd32(frame + 0x80 + word) | bit); // IGROUPR: group 1
    let prio = frame + 0x400 + u64::from(id & !3);
    wr32(prio, (rd32(prio) & !(0xff << ((id & 3) * 8))) | (0xa0 << ((id & 3) * 8)));
    wr32(frame + 0x100 + word, bit); // ISENABLER
    cpu_interface_on();
}

/// The GICv3 CPU interface's system registers: ICC_SRE_EL1.SRE, ICC_PMR_EL1 (all
/// priorities), ICC_IGRPEN1_EL1 (group 1 on).
fn cpu_interface_on() {
    // SAFETY: as the comment says; these change only this vCPU's virtual CPU interface.
    unsafe {
        asm!(
            "mrs {t}, s3_0_c12_c12_5", "orr {t}, {t}, #1", "msr s3_0_c12_c12_5, {t}", "isb",
            "mov {t}, #0xff", "msr s3_0_c4_c6_0, {t}",
            "mov {t}, #1", "msr s3_0_c12_c12_7, {t}", "isb",
            t = out(reg) _, options(nostack)
        )
    };
}

/// Waits up to `ms` for an interrupt to be taken; its INTID.
fn wait_taken(ms: u64) -> Option<u64> {
    let (start, freq) = (counter(), frequency());
    loop {
        let id = IRQ_TAKEN.load(Ordering::SeqCst);
        if id != u64::MAX {
            return Some(id);
        }
        if counter() - start > ms * freq / 1000 {
            return None;
        }
        core::hint::spin_loop();
    }
}

/// Waits up to `ms` for INTID `id` to be pending (a doorbell: the peer writes its ring
/// first and rings after, so the data can be seen before the doorbell).
fn wait_pending(id: u32, ms: u64) -> bool {
    let (start, freq) = (counter(), frequency());
    while !irq_pending(id) {
        if counter() - start > ms * freq / 1000 {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

fn wait_ms(ms: u64) {
    let (start, freq) = (counter(), frequency());
    while counter() - start < ms * freq / 1000 {
        core::hint::spin_loop();
    }
}

/// hl.echo-wait=MS: how long `echo` leaves its input unread first.
static ECHO_WAIT: AtomicU64 = AtomicU64::new(0);

/// Reads lines (polling the UART) and prints each back until "off".
fn echo(name: &str) {
    let mut line = [0u8; 64];
    let mut n = 0;
    println!("{name}: echo ready");
    let wait = ECHO_WAIT.load(Ordering::Relaxed);
    if wait > 0 {
        // Input arrives meanwhile and is not read: the receive FIFO fills up.
        wait_ms(wait);
        // SAFETY: the virtual UART's flag register.
        let fr = unsafe { core::ptr::read_volatile(uart_fr()) };
        println!("{name}: receive FIFO full after {wait} ms: {}", fr & (1 << 6) != 0);
    }
    loop {
        // SAFETY: the virtual UART's flag and data registers.
        let byte = unsafe {
            if core::ptr::read_volatile(uart_fr()) & (1 << 4) != 0 {
                core::hint::spin_loop();
                continue;
            }
            core::ptr::read_volatile(uart_dr() as *const u32) as u8
        };
        match byte {
            b'\r' | b'\n' => {
                let text = core::str::from_utf8(&line[..n]).unwrap_or("?");
                println!("{name}: echo: {text}");
                if text == "off" {
                    return;
                }
                n = 0;
            }
            b if n < line.len() => {
                line[n] = b;
                n += 1;
            }
            _ => {}
        }
    }
}

/// What `hl.canary` writes into RAM that must be scrubbed before anyone reads it again.
const CANARY: u64 = 0x5ca1_ab1e_c0ff_ee00;

/// A word of this image's initialised data ("kernel!!"): its page belongs to the kernel
/// module that domains share, copied for a domain only when that domain writes it.
static KERNEL_WORD: AtomicU64 = AtomicU64::new(0x6b65_726e_656c_2121);

fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

#[unsafe(no_mangle)]
extern "C" fn guest_main(dtb: u64) -> ! {
    // SAFETY: x0 at entry is the device tree the hypervisor placed in this guest's RAM; its
    // header gives its size.
    let blob = unsafe {
        let head = core::slice::from_raw_parts(dtb as *const u8, 8);
        let len = fdt::Fdt::peek_total_size(head).unwrap_or(0);
        core::slice::from_raw_parts(dtb as *const u8, len)
    };
    let Ok(tree) = fdt::Fdt::new(blob) else {
        println!("testguest: no device tree at {dtb:#x}");
        halt(true)
    };
    let stdout = tree.find("/chosen").and_then(|c| c.property("stdout-path")).and_then(|p| p.as_str());
    if let Some(base) =
        stdout.and_then(|p| tree.find(p)).and_then(|n| tree.reg(&n)).and_then(|mut r| r.next())
    {
        UART_BASE.store(base.0, Ordering::Relaxed);
    }
    let args =
        tree.find("/chosen").and_then(|c| c.property("bootargs")).and_then(|p| p.as_str()).unwrap_or("");
    let name = args.split_whitespace().find_map(|a| a.strip_prefix("hl.name=")).unwrap_or("testguest");
    QUIET.store(args.split_whitespace().any(|a| a == "hl.quiet"), Ordering::Relaxed);
    let domid =
        tree.find("/hypervisor").and_then(|h| h.property("domid")).and_then(|p| p.u32()).unwrap_or(u32::MAX);
    let cpus = tree.find("/cpus").map_or(0, |c| c.children().count());
    let (base, mem) =
        tree.find("/memory").and_then(|m| tree.reg(&m)).and_then(|mut r| r.next()).unwrap_or((0, 0));
    let here = _start as *const () as u64;
    println!(
        "hello from {name}: domid {domid}, {cpus} vCPU(s), {} MiB at {base:#x}, MPIDR {:#x}, running at {here:#x}",
        mem >> 20,
        mpidr()
    );

    let role =
        |p: &str| tree.find("/hypervisor").and_then(|h| h.property(p)).and_then(|p| p.u32()).unwrap_or(0);
    println!("{name}: permissions {:#x} functions {:#x}", role("permissions"), role("functions"));
    if let Some(note) = tree.find("/chosen").and_then(|c| c.property("hl,note")).and_then(|p| p.as_str()) {
        println!("{name}: note: {note}");
    }

    // The interrupt controller the device tree describes.
    let gic = if tree
        .find("/interrupt-controller@3001000")
        .and_then(|g| g.property("compatible"))
        .is_some_and(|p| p.strings().any(|c| c == "arm,gic-400"))
    {
        vtimer::Gic::V2
    } else {
        vtimer::Gic::V3
    };
    for arg in args.split_whitespace() {
        if arg == "hl.smccc" {
            let v = hvc(0x8400_0000, 0, 0, 0);
            println!("smccc: PSCI_VERSION {}.{}", v >> 16, v & 0xffff);
            println!("smccc: TRNG_VERSION -> {}", hvc(0x8400_0050, 0, 0, 0));
            println!("smccc: vendor hypervisor UID -> {}", hvc(0x8600_ff01, 0, 0, 0));
            println!("smccc: PSCI_VERSION by SMC -> {:#x}", smc(0x8400_0000));
        } else if arg == "hl.smp" {
            for i in 1..cpus as u64 {
                let r = hvc(CPU_ON, (1 << 31) | i, _start as *const () as u64, i);
                println!("smp: CPU_ON vCPU {i} -> {r}");
                let again = hvc(CPU_ON, (1 << 31) | i, _start as *const () as u64, i);
                println!("smp: second CPU_ON vCPU {i} -> {again}");
            }
            RELEASE.store(1, Ordering::SeqCst);
            for i in 1..cpus as u64 {
                // Wait until it reported and turned itself off (AFFINITY_INFO = 1).
                while hvc(AFFINITY_INFO, (1 << 31) | i, 0, 0) != 1 {
                    core::hint::spin_loop();
                }
            }
            println!("smp: {} secondary vCPU(s) ran and stopped", STARTED.load(Ordering::SeqCst));
            println!("smp: CPU_ON of a vCPU that does not exist -> {}", hvc(CPU_ON, (1 << 31) | 99, 0, 0));
        } else if let Some(ms) = arg.strip_prefix("hl.wait=").and_then(parse_u64) {
            wait_ms(ms);
            println!("{name}: still running after {ms} ms");
        } else if arg == "hl.prompt" {
            while UART_LOCK.swap(true, Ordering::Acquire) {}
            let _ = Uart.write_str("prompt> ");
            UART_LOCK.store(false, Ordering::Release);
            wait_ms(400);
            println!();
        } else if let Some(n) = arg.strip_prefix("hl.flood=").and_then(parse_u64) {
            for i in 0..n {
                let b = if i % 100 == 99 { b'\n' } else { b'x' };
                // SAFETY: the virtual UART's data register.
                unsafe { core::ptr::write_volatile(uart_dr(), u32::from(b)) };
            }
            println!("{name}: flooded {n} bytes");
        } else if let Some(spec) = arg.strip_prefix("hl.tick=") {
            // "MS:N": N lines "NAME: tick I at T ms" (T from the virtual counter), MS apart.
            let (ms, n) = spec.split_once(':').unwrap_or((spec, "10"));
            let (ms, n) = (parse_u64(ms).unwrap_or(100), parse_u64(n).unwrap_or(10));
            let (start, freq) = (counter(), frequency());
            for i in 0..n {
                wait_ms(ms);
                println!("{name}: tick {i} at {} ms", (counter() - start) * 1000 / freq);
            }
        } else if let Some(ms) = arg.strip_prefix("hl.reset-at=").and_then(parse_u64) {
            // Once: PSCI SYSTEM_RESET when the domain's virtual counter reaches MS ms; after
            // the restart the counter is past it and the guest goes on.
            let now = counter() * 1000 / frequency();
            if now < ms {
                wait_ms(ms - now);
                println!("{name}: SYSTEM_RESET at {ms} ms");
                hvc(SYSTEM_RESET, 0, 0, 0);
                println!("{name}: STILL RUNNING after SYSTEM_RESET");
            } else {
                println!("{name}: up again after the reset ({now} ms)");
            }
        } else if let Some(a) = arg.strip_prefix("hl.canary=").and_then(parse_u64) {
            // What a word of this domain's RAM holds at start (the tests judge it: a domain's
            // fresh or restarted RAM must read 0), then a canary written there.
            // SAFETY: an aligned word of this guest's own RAM, outside its image and device
            // tree (the LCM of the test places it).
            let v = unsafe { core::ptr::read_volatile(a as *const u64) };
            println!("{name}: canary at {a:#x} reads {v:#x}");
            // SAFETY: as above.
            unsafe { core::ptr::write_volatile(a as *mut u64, CANARY) };
            // SAFETY: as above.
            let back = unsafe { core::ptr::read_volatile(a as *const u64) };
            println!("{name}: canary at {a:#x} set to {back:#x}");
        } else if arg == "hl.cntp" {
            // The physical timer is the hypervisor's: the tests require reads of 0 before and
            // after writes.
            println!("{name}: CNTP CTL/CVAL/TVAL read {}", cntp());
            // SAFETY: writes to the EL1 physical timer (trapped; they must be ignored).
            unsafe {
                asm!(
                    "msr cntp_cval_el0, {c}", "msr cntp_tval_el0, {t}", "msr cntp_ctl_el0, {e}", "isb",
                    c = in(reg) 0x1234_5678_u64, t = in(reg) 100_000_u64, e = in(reg) 1_u64, options(nostack)
                )
            };
            println!("{name}: CNTP CTL/CVAL/TVAL after writing 1/0x12345678/100000 read {}", cntp());
        } else if arg == "hl.vnet-hostile" {
            vnet::hostile(name, (base, mem));
        } else if let Some(n) = arg.strip_prefix("hl.vtimer=").and_then(parse_u64) {
            vtimer::run(name, n, gic, false);
        } else if let Some(n) = arg.strip_prefix("hl.vtimer-firing=").and_then(parse_u64) {
            vtimer::run(name, n, gic, true);
        } else if arg == "hl.pmu-debug" {
            hostile::pmu_debug(name);
        } else if let Some(n) = arg.strip_prefix("hl.psci-race=").and_then(parse_u64) {
            races::cpu_on_off(name, n, _start as *const () as u64);
        } else if arg == "hl.reset-race" {
            races::reset(name, _start as *const () as u64);
        } else if let Some(s) = arg.strip_prefix("hl.hostile=").and_then(parse_u64) {
            hostile::attack(name, s, (base, mem), cpus);
        } else if arg == "hl.cow" || arg == "hl.cow-read" {
            // The kernel's data word as this domain sees it (the tests judge it: it must be
            // the image's own value, whatever a sibling or an earlier run wrote); hl.cow then
            // writes a canary over it.
            let at = &KERNEL_WORD as *const AtomicU64 as u64;
            println!("{name}: kernel word at {at:#x} reads {:#x}", KERNEL_WORD.load(Ordering::SeqCst));
            if arg == "hl.cow" {
                KERNEL_WORD.store(CANARY, Ordering::SeqCst);
                println!("{name}: kernel word at {at:#x} set to {:#x}", KERNEL_WORD.load(Ordering::SeqCst));
            }
        } else if let Some(list) = arg.strip_prefix("hl.peek=") {
            // Reads of registers of a device this domain was given (they must work).
            for a in list.split(',').filter_map(parse_u64) {
                println!("{name}: peek {a:#x} = {:#x}", rd32(a));
            }
        } else if let Some(ops) = arg.strip_prefix("hl.ctl=") {
            control(ops);
        } else if arg == "hl.store" || arg == "hl.store-irq" {
            store::client(name, &tree, arg == "hl.store-irq");
        } else if let Some(id) = arg.strip_prefix("hl.ring=").and_then(parse_u64) {
            println!("{name}: ring DOM{id} -> {}", hvc(HL_STORE_NOTIFY, id, 0, 0));
        } else if arg == "hl.store-server" {
            store::server(&tree);
        } else if arg == "hl.store-serve" {
            store::serve(&tree);
        } else if let Some(ms) = arg.strip_prefix("hl.echo-wait=").and_then(parse_u64) {
            ECHO_WAIT.store(ms, Ordering::Relaxed);
        } else if arg == "hl.echo" {
            echo(name);
        } else if arg == "hl.boot" {
            boot_domain();
        } else if arg == "hl.hyp" {
            println!("hyp: HL_VERSION -> {:#x}", hvc(HL_VERSION, 0, 0, 0));
            println!("hyp: HL_SIZE -> {}", hvc(HL_SIZE, 0, 0, 0));
            let buf = &raw mut CONFIG_BUF;
            // SAFETY: this guest's own buffer; the call must be refused.
            let at = unsafe { (*buf).as_mut_ptr() } as u64;
            println!("hyp: HL_READ -> {}", hvc5(HL_READ, 0, at, 0, 64));
            println!("hyp: HL_UNPAUSE DOM2 -> {}", hvc(HL_UNPAUSE, 2, 0, 0));
            println!("hyp: HL_DONE -> {}", hvc(HL_DONE, 0, 0, 0));
            println!("hyp: HL_FAILURE_INFO -> {}", hvc(HL_FAILURE_INFO, 0, 0, 0));
        } else if arg == "hl.recovery" {
            let mut i = 0u64;
            loop {
                let x1: u64;
                let mut x0 = u64::from(HL_FAILURE_INFO);
                // SAFETY: an SMCCC call through HVC; x0/x1 out.
                unsafe {
                    asm!("hvc #0", inout("x0") x0, inout("x1") i => x1, out("x2") _, out("x3") _, options(nostack))
                };
                if x0 != 0 {
                    break;
                }
                println!("recovery: launch failed for DOM{x1}");
                i += 1;
            }
            println!("recovery: {i} failure(s) reported");
        } else if let Some(list) = arg.strip_prefix("hl.probe=") {
            for a in list.split(',').filter_map(parse_u64) {
                match probe_read(a) {
                    Err((esr, far)) => println!("probe: read {a:#x} refused (ESR {esr:#x}, FAR {far:#x})"),
                    Ok(v) => println!("probe: read {a:#x} LEAKED {v:#x}"),
                }
                match probe_write(a) {
                    Err((esr, far)) => println!("probe: write {a:#x} refused (ESR {esr:#x}, FAR {far:#x})"),
                    Ok(()) => println!("probe: write {a:#x} WENT THROUGH"),
                }
            }
        }
    }
    println!("{name}: tests done");
    halt(args.split_whitespace().any(|a| a == "hl.off"))
}

#[unsafe(no_mangle)]
extern "C" fn secondary_main(index: u64) -> ! {
    if races::MODE.load(Ordering::SeqCst) != 0 {
        races::secondary();
    }
    STARTED.fetch_add(1, Ordering::SeqCst);
    println!("smp: vCPU {index} up, MPIDR {:#x}", mpidr());
    while RELEASE.load(Ordering::SeqCst) == 0 {
        core::hint::spin_loop();
    }
    hvc(CPU_OFF, 0, 0, 0);
    loop {
        // SAFETY: WFI only waits.
        unsafe { asm!("wfi") };
    }
}

unsafe extern "C" {
    fn _start();
}

fn halt(off: bool) -> ! {
    if off {
        hvc(SYSTEM_OFF, 0, 0, 0);
    }
    loop {
        // SAFETY: WFI only waits.
        unsafe { asm!("wfi") };
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("testguest panic: {info}");
    halt(true)
}
