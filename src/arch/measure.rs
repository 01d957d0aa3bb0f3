//! Measured launch, from the arch side: the bytes of the host device tree and boot modules
//! handed to the core's hashing, and the TPM's registers as the core's [`tis::Bus`].

use alloc::vec::Vec;

use log::{debug, error, info, warn};

use super::power::halt;
use super::timer;
use crate::config::LaunchConfig;
use crate::measure::{self, Policy, Source, tis};
use crate::memmap::Range;

/// The TPM's locality-0 registers.
struct Mmio {
    base: u64,
}

impl tis::Bus for Mmio {
    fn read8(&mut self, off: usize) -> u8 {
        // SAFETY: `base` is the TPM's page-aligned 4 KiB register window, mapped as device
        // memory at EL2 (start.rs), and every offset the TIS driver uses is below 0x1000.
        unsafe { core::ptr::read_volatile((self.base + (off & 0xfff) as u64) as *const u8) }
    }

    fn write8(&mut self, off: usize, v: u8) {
        // SAFETY: as in `read8`.
        unsafe { core::ptr::write_volatile((self.base + (off & 0xfff) as u64) as *mut u8, v) }
    }

    fn read32(&mut self, off: usize) -> u32 {
        // SAFETY: as in `read8`; the offsets read as words are 4-byte aligned.
        unsafe { core::ptr::read_volatile((self.base + (off & 0xffc) as u64) as *const u32) }
    }

    fn now_us(&mut self) -> u64 {
        timer::uptime_us()
    }
}

/// The bytes of a boot module.
fn module_bytes(r: Range) -> &'static [u8] {
    // SAFETY: every module range of the configuration was checked to lie in RAM and was
    // reserved at boot (never given to the frame allocator or the heap); RAM is identity
    // mapped at EL2, and nothing writes a module before finalization gives it back, which
    // comes after measuring (building domains and copying their images only read them;
    // no domain runs before then).
    unsafe { core::slice::from_raw_parts(r.start as *const u8, r.size() as usize) }
}

/// Hashes the host device tree and every boot module into an event log, extends it into
/// the TPM at `tpm` (mapped at EL2) if there is one, and returns the log's binary form.
/// Halts when the configuration requires a TPM-backed measurement that could not be made.
/// Also returns the microseconds spent hashing and talking to the TPM.
pub fn launch(
    cfg: &LaunchConfig,
    dtb: &[u8],
    tpm: Result<Option<Range>, alloc::string::String>,
) -> (Vec<u8>, u64) {
    let t0 = timer::uptime_us();
    let (compress, how) = super::sha256::compress();
    let items = measure::items(cfg);
    let mut bytes = 0u64;
    let log = measure::measure(&items, &mut |s| match s {
        Source::HostDtb => {
            let d = measure::host_dtb(dtb);
            bytes += d.len() as u64;
            measure::blocks::sha256_with(d, compress)
        }
        Source::Module(r) => {
            bytes += r.size();
            measure::blocks::sha256_with(module_bytes(*r), compress)
        }
    });
    let hash_us = timer::uptime_us() - t0;
    for e in &log.events {
        debug!(
            "measure: PCR{} sha256:{} {}",
            e.pcr,
            measure::hex(&e.digest),
            core::str::from_utf8(&e.data).unwrap_or("?")
        );
    }
    info!(
        "measure: {} event(s), {} KiB hashed in {} us ({} us/MiB, {how})",
        log.events.len(),
        bytes >> 10,
        hash_us,
        (hash_us << 20).checked_div(bytes.max(1)).unwrap_or(0)
    );
    let expected = measure::replay(&log.events);
    let required = cfg.measure == Policy::Required;
    let absent = matches!(tpm, Ok(None));
    let failure = match tpm {
        Err(why) => Some(alloc::format!("host device tree: {why}")),
        Ok(None) => Some(alloc::string::String::from("the host device tree has no TPM (tcg,tpm-tis-mmio)")),
        Ok(Some(r)) => {
            let t1 = timer::uptime_us();
            match measure::to_tpm(&mut Mmio { base: r.start }, &log) {
                Ok(read) => {
                    let tpm_us = timer::uptime_us() - t1;
                    for ((pcr, got), (_, want)) in read.iter().zip(expected.iter()) {
                        let how = if got == want {
                            "as the event log replays"
                        } else {
                            "NOT what the event log replays"
                        };
                        info!("measure: TPM at {:#x}: PCR{pcr} = {} ({how})", r.start, measure::hex(got));
                    }
                    info!("measure: TPM took {tpm_us} us for {} extend(s)", log.events.len());
                    None
                }
                Err(e) => Some(alloc::format!("TPM at {:#x}: {e}", r.start)),
            }
        }
    };
    if let Some(why) = failure {
        for (pcr, v) in &expected {
            info!("measure: event log: PCR{pcr} = {}", measure::hex(v));
        }
        if required {
            error!("error: measured launch is required (measured-launch = \"required\"), but {why}");
            halt("measured launch failed");
        }
        if absent {
            info!("measure: {why}: the launch is measured in the event log only");
        } else {
            warn!("measure: {why}: the launch goes on, measured in the event log only");
        }
    }
    (log.encode(), timer::uptime_us() - t0)
}
