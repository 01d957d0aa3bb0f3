//! Measured launch: before any domain runs, the host device tree and every boot module
//! are hashed (SHA-256), each hash recorded as one event of a TCG crypto-agile event log
//! ([`log`]) and, when the host has a TPM 2.0 ([`tis`], [`tpm`]), extended into its PCRs.
//! Which PCR gets what is fixed here and in `docs/measured-launch.md`.

pub mod blocks;
pub mod log;
pub mod tis;
pub mod tpm;

#[cfg(test)]
mod tests;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use sha2::{Digest as _, Sha256};

use crate::config::{DomainConfig, Functions, LaunchConfig, ModuleKind, Permissions};
use crate::fdt::Fdt;
use crate::guest_dtb::DtAddition;
use crate::memmap::Range;

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// The launch configuration: the host device tree (with its LCM), partial device trees and
/// configuration blobs.
pub const PCR_CONFIG: u32 = 12;
/// The domains' images: kernels and ramdisks.
pub const PCR_IMAGES: u32 = 13;
/// The PCRs the hypervisor extends, in order.
pub const PCRS: [u32; 2] = [PCR_CONFIG, PCR_IMAGES];

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Digest {
    Sha256::digest(data).into()
}

/// A SHA-256 computed over pieces.
#[derive(Clone, Default)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn new() -> Self {
        Hasher(Sha256::new())
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> Digest {
        self.0.finalize().into()
    }
}

/// A PCR extended with `digest`: SHA-256(old || digest).
pub fn extend(pcr: &Digest, digest: &Digest) -> Digest {
    let mut h = Sha256::new();
    h.update(pcr);
    h.update(digest);
    h.finalize().into()
}

/// What one event measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The host device tree, as the loader handed it over (its header's `totalsize`).
    HostDtb,
    /// A boot module's range, as the configuration declares it.
    Module(Range),
}

/// One item to measure, in launch order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub pcr: u32,
    /// The event's description (its event data): `hyperlaunch DOM2 kernel`.
    pub what: String,
    pub source: Source,
}

fn pcr_of(kind: ModuleKind) -> u32 {
    match kind {
        ModuleKind::Kernel | ModuleKind::Ramdisk => PCR_IMAGES,
        ModuleKind::DeviceTree | ModuleKind::Config => PCR_CONFIG,
    }
}

/// Everything measured, in order: the host device tree; then each domain's modules in
/// configuration order (kernel, ramdisk, device tree, config); then the hypervisor's own
/// configuration modules. A module shared by several domains is one event per domain.
pub fn items(cfg: &LaunchConfig) -> Vec<Item> {
    let mut out = Vec::new();
    out.push(Item { pcr: PCR_CONFIG, what: "hyperlaunch host-dtb".into(), source: Source::HostDtb });
    for d in &cfg.domains {
        for m in d.modules() {
            out.push(Item {
                pcr: pcr_of(m.kind),
                what: format!("hyperlaunch DOM{} {}", d.domid, m.kind),
                source: Source::Module(m.range),
            });
        }
    }
    for m in &cfg.hypervisor_modules {
        out.push(Item {
            pcr: PCR_CONFIG,
            what: format!("hyperlaunch hypervisor {}", m.kind),
            source: Source::Module(m.range),
        });
    }
    out
}

/// The event log of a launch: each item hashed by `hash` (the same range is hashed once).
pub fn measure(items: &[Item], hash: &mut dyn FnMut(&Source) -> Digest) -> log::EventLog {
    let mut seen: Vec<(Source, Digest)> = Vec::new();
    let mut out = log::EventLog::new();
    for it in items {
        let digest = match seen.iter().find(|(s, _)| *s == it.source) {
            Some((_, d)) => *d,
            None => {
                let d = hash(&it.source);
                seen.push((it.source.clone(), d));
                d
            }
        };
        out.push(log::Event { pcr: it.pcr, kind: log::EV_IPL, digest, data: it.what.as_bytes().to_vec() });
    }
    out
}

/// The host device tree as measured: its first `totalsize` bytes.
pub fn host_dtb(blob: &[u8]) -> &[u8] {
    match Fdt::new(blob) {
        Ok(f) => &blob[..f.total_size().min(blob.len())],
        Err(_) => blob,
    }
}

/// The final value of each of [`PCRS`] after replaying `events` from all-zero PCRs.
pub fn replay(events: &[log::Event]) -> [(u32, Digest); 2] {
    let mut out = PCRS.map(|p| (p, [0u8; 32]));
    for e in events {
        if let Some(slot) = out.iter_mut().find(|(p, _)| *p == e.pcr) {
            slot.1 = extend(&slot.1, &e.digest);
        }
    }
    out
}

/// Lower-case hex of a digest.
pub fn hex(d: &[u8]) -> String {
    use core::fmt::Write;
    let mut s = String::with_capacity(d.len() * 2);
    for b in d {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The `/chosen` property of a domain's device tree that holds the event log.
pub const EVENT_LOG_PROPERTY: &str = "hyperlaunch,event-log";

/// The event log as the domain's `/chosen/hyperlaunch,event-log`, for the domains that
/// verify the launch: the Boot Domain, and domains with the Control or Hardware permission.
pub fn for_domain(cfg: &DomainConfig, log: &[u8]) -> Option<DtAddition> {
    (verifies(cfg.permissions, cfg.functions) && !log.is_empty()).then(|| addition(log.to_vec()))
}

/// A domain with these permissions and functions verifies the launch: it gets the log.
pub fn verifies(permissions: Permissions, functions: Functions) -> bool {
    functions.has(Functions::BOOT)
        || permissions.has(Permissions::CONTROL)
        || permissions.has(Permissions::HARDWARE)
}

/// `log` as the `/chosen` property.
pub fn addition(log: Vec<u8>) -> DtAddition {
    DtAddition { path: "/chosen".into(), name: EVENT_LOG_PROPERTY.into(), value: log }
}

/// An event log of the size `items` make, every digest zero: domains are built with it in
/// their device tree (so that it has room for the log), and get the real one once the
/// launch is measured, before any of them runs.
pub fn placeholder(items: &[Item]) -> Vec<u8> {
    measure(items, &mut |_| [0u8; 32]).encode()
}

/// Whether the launch must stop when the TPM cannot be used (`measured-launch =
/// "required"` in the LCM), or go on with a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    #[default]
    Optional,
    Required,
}

/// Why the TPM could not take the measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TpmFailure {
    /// The command that failed: `TPM2_Startup`, `TPM2_PCR_Extend`, `TPM2_PCR_Read`.
    pub command: &'static str,
    pub cause: Cause,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Transport(tis::TisError),
    Tpm(tpm::TpmError),
}

impl core::fmt::Display for TpmFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.cause {
            Cause::Transport(e) => write!(f, "{}: {e}", self.command),
            Cause::Tpm(e) => write!(f, "{}: {e}", self.command),
        }
    }
}

/// Extends every event of `log` into the TPM behind `bus` (after `TPM2_Startup(CLEAR)`,
/// unless the firmware sent it already) and reads [`PCRS`] back.
pub fn to_tpm<B: tis::Bus + ?Sized>(
    bus: &mut B,
    log: &log::EventLog,
) -> Result<[(u32, Digest); 2], TpmFailure> {
    let run = |bus: &mut B, command: &'static str, cmd: &[u8]| {
        tis::transact(bus, cmd).map_err(|e| TpmFailure { command, cause: Cause::Transport(e) })
    };
    let fail = |command: &'static str| move |e| TpmFailure { command, cause: Cause::Tpm(e) };
    let resp = run(bus, "TPM2_Startup", &tpm::startup())?;
    match tpm::response_code(&resp).map_err(fail("TPM2_Startup"))? {
        0 | tpm::RC_INITIALIZE => {}
        rc => return Err(fail("TPM2_Startup")(tpm::TpmError::Rc(rc))),
    }
    for e in &log.events {
        let resp = run(bus, "TPM2_PCR_Extend", &tpm::pcr_extend(e.pcr, &e.digest))?;
        tpm::check(&resp).map_err(fail("TPM2_PCR_Extend"))?;
    }
    let resp = run(bus, "TPM2_PCR_Read", &tpm::pcr_read(&PCRS))?;
    let d = tpm::parse_pcr_read(&resp, &PCRS).map_err(fail("TPM2_PCR_Read"))?;
    Ok([(PCRS[0], d[0]), (PCRS[1], d[1])])
}

/// The TPM the hypervisor drives: the first enabled `tcg,tpm-tis-mmio` node of the host
/// device tree with a page-aligned register window of at least one locality (4 KiB).
/// `Err` names a node that is there but unusable.
pub fn find_tpm(fdt: &Fdt<'_>) -> Result<Option<Range>, String> {
    match tpm_window(fdt) {
        None => Ok(None),
        Some(Ok(r)) => Ok(Some(r)),
        Some(Err((node, None))) => Err(format!("{}: no usable reg", fdt.path(&node))),
        Some(Err((node, Some((base, size))))) => Err(format!(
            "{}: registers at {base:#x} size {size:#x}: not a page-aligned 4 KiB window",
            fdt.path(&node)
        )),
    }
}

/// What [`find_tpm`] finds, without allocating (for the EL2 map, made before the heap):
/// the window, or the node and its (base, size) when unusable.
#[allow(clippy::type_complexity)]
pub fn tpm_window<'a>(fdt: &Fdt<'a>) -> Option<Result<Range, (crate::fdt::Node<'a>, Option<(u64, u64)>)>> {
    let node = fdt.all_nodes().find(|n| n.is_compatible("tcg,tpm-tis-mmio") && n.is_enabled())?;
    let Some((base, size)) = fdt.reg(&node).and_then(|mut r| r.next()) else {
        return Some(Err((node, None)));
    };
    if base % 0x1000 != 0 || size < 0x1000 {
        return Some(Err((node, Some((base, size)))));
    }
    Some(Range::at(base, 0x1000).ok_or((node, Some((base, size)))))
}
