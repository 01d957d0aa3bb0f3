//! The machine the run-time core is given, on this hardware: kicks, interrupt routing, the
//! clock, power off, the console and physical memory; and the one `System` every CPU
//! calls into once domains exist.

use spin::Once;

use super::{cache, console, el2, gic, power, stage2, timer};
use crate::hv::machine::{ConsoleEvent, HostMem, Machine};
use crate::hv::system::System;

/// The machine; it holds no state of its own.
pub struct ArchMachine;

static MACHINE: ArchMachine = ArchMachine;
static SYSTEM: Once<System> = Once::new();

/// The machine.
pub fn machine() -> &'static ArchMachine {
    &MACHINE
}

/// The run-time core, once domains exist.
pub fn system() -> Option<&'static System> {
    SYSTEM.get()
}

/// Publishes the run-time core (once: a second one is never built, so it is not dropped
/// either, and no code is kept to drop one).
pub fn publish(s: System) -> &'static System {
    let mut s = Some(s);
    let published = SYSTEM.call_once(|| s.take().unwrap_or_else(|| unreachable!()));
    core::mem::forget(s);
    published
}

impl Machine for ArchMachine {
    fn cpu(&self) -> usize {
        el2::cpu_index()
    }

    fn cpu_online(&self, cpu: usize) -> bool {
        super::cpu::online_mask() & (1u64 << (cpu & 63)) != 0 && cpu < 64
    }

    fn kick(&self, cpu: usize) {
        gic::kick(cpu);
    }

    fn route_spi(&self, intid: u32, cpu: usize) {
        gic::route_spi(intid, cpu);
    }

    fn deactivate_spi(&self, intid: u32) {
        gic::deactivate_spi(intid);
    }

    fn now_us(&self) -> u64 {
        timer::uptime_us()
    }

    fn relax(&self) {
        core::hint::spin_loop();
    }

    fn rng_seed(&self, domid: u16) -> Option<[u8; crate::entropy::SEED_BYTES]> {
        super::entropy::seed(domid)
    }

    fn counter(&self) -> u64 {
        timer::ticks()
    }

    fn power_off(&self, why: &str) {
        power::halt(why)
    }

    fn console_output(&self, domid: u16, byte: u8) {
        console::domain_output(domid, byte);
    }

    fn console_event(&self, e: ConsoleEvent) {
        match e {
            ConsoleEvent::Stopped(d) => console::domain_stopped(d),
            ConsoleEvent::Restarted(d) | ConsoleEvent::Added(d) => console::domain_restarted(d),
            ConsoleEvent::Input(d) => console::set_input(d),
        }
    }

    fn launch_deadline_changed(&self, deadline_us: Option<u64>) {
        timer::set_deadline(timer::Deadline::Launch, deadline_us);
    }

    fn read(&self, src: HostMem, buf: &mut [u8]) {
        let n = buf.len().min(src.len() as usize);
        // What memory holds, whoever wrote it and however: a guest with its MMU off, or one
        // writing through a device-memory mapping (a Control domain's window), writes past
        // the caches, where a stale line of ours would hide it.
        cache::clean_invalidate_range(src.start(), n as u64);
        // SAFETY: `src` is memory the hypervisor owns, identity mapped (HostMem's
        // obligation); `n` bytes stay inside it and inside `buf`.
        unsafe { core::ptr::copy_nonoverlapping(src.start() as *const u8, buf.as_mut_ptr(), n) };
    }

    fn write(&self, dst: HostMem, data: &[u8]) {
        let n = data.len().min(dst.len() as usize) as u64;
        // SAFETY: as for `read`: `dst` is owned and mapped, `n` bytes stay inside both.
        unsafe { cache::copy(dst.start(), data.as_ptr() as u64, n) };
        cache::clean_range(dst.start(), n);
    }

    fn zero(&self, dst: HostMem) {
        // SAFETY: `dst` is memory the hypervisor owns, identity mapped (HostMem's obligation).
        unsafe { cache::zero(dst.start(), dst.len()) };
        cache::clean_range(dst.start(), dst.len());
    }

    fn copy(&self, dst: HostMem, src: HostMem) {
        // The source as memory holds it (see `read`).
        cache::clean_invalidate_range(src.start(), dst.len().min(src.len()));
        // SAFETY: both are owned and mapped; the length is the shorter one's.
        unsafe { cache::copy(dst.start(), src.start(), dst.len().min(src.len())) };
        cache::clean_range(dst.start(), dst.len().min(src.len()));
    }

    fn with_slices(&self, src: HostMem, dst: HostMem, f: &mut dyn FnMut(&[u8], &mut [u8])) {
        if src.start() < dst.end() && dst.start() < src.end() {
            return;
        }
        // SAFETY: both are memory the hypervisor owns, identity mapped (HostMem's
        // obligation), and they do not overlap (checked above); the slices live only for
        // the call.
        let (s, d) = unsafe {
            (
                core::slice::from_raw_parts(src.start() as *const u8, src.len() as usize),
                core::slice::from_raw_parts_mut(dst.start() as *mut u8, dst.len() as usize),
            )
        };
        f(s, d);
        cache::clean_range(dst.start(), dst.len());
    }

    fn read_entry(&self, entry: HostMem) -> u64 {
        if entry.len() < 8 {
            return 0;
        }
        // SAFETY: the core hands in a descriptor inside one of a domain's table pages it
        // owns (a HostMem of 8 bytes there).
        unsafe { stage2::read_entry(entry.start()) }
    }

    fn replace_entry(&self, entry: HostMem, new: u64, ipa: u64, local: bool) {
        if entry.len() < 8 {
            return;
        }
        // SAFETY: a page descriptor of the domain whose vCPU runs here (the core calls it
        // from that vCPU's exit or hypercall), under the domain's copy-on-write lock.
        unsafe { stage2::replace_entry(entry.start(), new, ipa, local) };
    }

    fn flush_vmid(&self, vmid: u16) {
        stage2::flush_vmid(vmid);
    }
}
