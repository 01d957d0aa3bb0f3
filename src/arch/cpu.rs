//! Secondary CPUs: starting them (PSCI CPU_ON or spin table), their first Rust code, and
//! the idle loop every CPU without work sits in.

use core::sync::atomic::{AtomicU64, Ordering};

use super::{boot, cache, el2, gic, mmu, psci};
use crate::platform::{EnableMethod, Platform};

/// CPUs that have reached their idle loop, the boot CPU included.
/// Bit n: CPU n reached its idle loop (the boot CPU, 0, from the start).
static ONLINE: AtomicU64 = AtomicU64::new(1);

/// Why a CPU did not start.
#[derive(Debug, Clone, Copy)]
pub enum StartError {
    /// PSCI CPU_ON returned this error code.
    Psci(i64),
    /// No PSCI and no spin table for this CPU.
    NoMethod,
    /// The CPU was told to start but never reported in.
    Timeout,
}

/// Records every CPU's MPIDR for the secondary entry code. Runs before the MMU is on, so
/// the values go straight to memory where CPUs with their caches off read them.
pub fn publish_mpidrs(p: &Platform) {
    for (i, c) in p.cpus().iter().enumerate() {
        boot::CPU_MPIDRS[i].store(c.mpidr, Ordering::Relaxed);
    }
}

/// Starts CPU `index` and waits (up to 100 ms) for it to reach its idle loop.
pub fn start(p: &Platform, index: usize) -> Result<(), StartError> {
    let cpu = p.cpus()[index];
    // Everything a starting CPU reads with its caches off must be in memory.
    let table = &boot::CPU_MPIDRS;
    cache::clean_invalidate_range(table.as_ptr() as u64, core::mem::size_of_val(table) as u64);
    for (addr, len) in mmu::secondary_boot_data() {
        cache::clean_invalidate_range(addr, len);
    }
    let entry = boot::secondary_entry_pa();
    match cpu.method {
        EnableMethod::Psci => {
            let conduit = p.psci.ok_or(StartError::NoMethod)?;
            let r = psci::cpu_on(conduit, cpu.mpidr, entry, index as u64);
            if r != 0 {
                return Err(StartError::Psci(r));
            }
        }
        EnableMethod::SpinTable { release_addr } => {
            // SAFETY: the DTB names release_addr as this CPU's spin-table mailbox, a RAM
            // location the hypervisor does not otherwise use (it lies in a /memreserve/ area),
            // identity mapped; the waiting CPU reads it with its caches off, hence the
            // clean to the point of coherency before the event.
            unsafe { core::ptr::write_volatile(release_addr as *mut u64, entry) };
            cache::clean_invalidate_range(release_addr, 8);
            // SAFETY: SEV only wakes CPUs waiting in WFE.
            unsafe { core::arch::asm!("sev", options(nomem, nostack, preserves_flags)) };
        }
        EnableMethod::None => return Err(StartError::NoMethod),
    }
    if super::timer::wait_until(100_000, || ONLINE.load(Ordering::Acquire) & (1 << index) != 0) {
        Ok(())
    } else {
        Err(StartError::Timeout)
    }
}

/// CPUs online now.
pub fn online() -> usize {
    ONLINE.load(Ordering::Acquire).count_ones() as usize
}

/// Which CPUs are online (bit n: CPU n). A CPU that did not start in time is never placed
/// a vCPU, even if it comes up later.
pub fn online_mask() -> u64 {
    ONLINE.load(Ordering::Acquire)
}

#[unsafe(no_mangle)]
extern "C" fn secondary_main(index: usize) -> ! {
    el2::init_cpu_registers(index);
    mmu::enable_secondary();
    super::exceptions::mitigate(None);
    gic::init_secondary(index);
    ONLINE.fetch_or(1 << (index & 63), Ordering::AcqRel);
    log::debug!("CPU {index} online (MPIDR {:#x})", el2::mpidr());
    super::vcpu::schedule()
}
