//! The devices partial device trees give away, checked against the host before any domain
//! is built: `xen,reg` may only name device memory the hypervisor does not keep (not RAM:
//! the hypervisor's, a domain's or a module's; not the GIC; not the console UART), no two
//! domains may claim the same page or SPI, `xen,path` must name a host node that is not the
//! console UART or the GIC, and, since the hypervisor programs no IOMMU, a device given to
//! a domain must say `xen,force-assign-without-iommu` (its DMA is not confined). A domain
//! whose claims break a rule is not built; the others are.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::devices::Passthrough;
use crate::fdt::Fdt;
use crate::memmap::Range;
use crate::platform::{Gic, Platform};

/// What the checks decided.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Host MMIO ranges given, by domain (the hardware domain does not get them).
    pub assigned: Vec<(u16, Range)>,
    /// Domains whose partial device tree is refused, and why (the first rule broken).
    pub refused: Vec<(u16, String)>,
    /// Devices given without an IOMMU: (domain, node), for a loud warning.
    pub unprotected: Vec<(u16, String)>,
    /// SPIs (INTIDs) given, by domain.
    pub spis: Vec<(u32, u16)>,
}

/// The host ranges no `xen,reg` may touch, with what they are.
fn kept(p: &Platform) -> Vec<(Range, &'static str)> {
    let mut out: Vec<(Range, &'static str)> = p.memory.ram.iter().map(|r| (r, "RAM")).collect();
    const GIC: &str = "the interrupt controller";
    out.extend(p.gic.iter().flat_map(|g| g.frames()).map(|r| (r, GIC)));
    if let Some(Gic::V2 { gicv: Some(v), .. }) = p.gic {
        out.extend(Range::at(v, 0x2000).map(|r| (r, GIC)));
    }
    if let Some(u) = p.uart {
        out.extend(
            Range::at(u.base & !0xfff, u.size.max(0x1000)).map(|r| (r, "the hypervisor's console UART")),
        );
    }
    out
}

/// Checks every domain's claims (`claims`, in configuration order) against the host device
/// tree `host_dtb`.
pub fn check(host_dtb: &[u8], claims: &[(u16, Vec<Passthrough>)]) -> Claims {
    check_with_ram(host_dtb, claims, None)
}

/// As [`check`], with `ram` for a device tree whose `/memory` the firmware fills.
pub fn check_with_ram(host_dtb: &[u8], claims: &[(u16, Vec<Passthrough>)], ram: Option<Range>) -> Claims {
    check_held(host_dtb, &Held::default(), claims, ram)
}

/// What domains that already exist hold (a domain created at run time is checked against
/// it): host MMIO ranges by domain, and SPIs (INTIDs) by domain.
#[derive(Debug, Default, Clone)]
pub struct Held {
    pub mmio: Vec<(u16, Range)>,
    pub spis: Vec<(u32, u16)>,
}

/// As [`check_with_ram`], with what existing domains hold: a claim on it is refused as a
/// claim on another claim is. The result's `assigned` holds the new claims only.
pub fn check_held(
    host_dtb: &[u8],
    held: &Held,
    claims: &[(u16, Vec<Passthrough>)],
    ram: Option<Range>,
) -> Claims {
    // Nothing is checked against a host device tree that cannot be read: every claim is
    // refused (never let through unchecked).
    let unreadable = |why: String| Claims {
        refused: claims.iter().filter(|(_, l)| !l.is_empty()).map(|(d, _)| (*d, why.clone())).collect(),
        ..Claims::default()
    };
    let mut out = Claims { assigned: held.mmio.clone(), ..Claims::default() };
    let fdt = match Fdt::new(host_dtb) {
        Ok(f) => f,
        Err(e) => {
            return unreadable(format!("the host device tree cannot be read ({e:?}): no device is given"));
        }
    };
    let p = match Platform::from_fdt_with_ram(&fdt, None, ram) {
        Ok(p) => p,
        Err(e) => {
            return unreadable(format!(
                "the host device tree describes no usable platform ({e}): no device is given"
            ));
        }
    };
    let kept = kept(&p);
    let console = crate::platform::read_stdout_uart(&fdt).map(|u| u.base);
    let mut spis: Vec<(u32, u16)> = held.spis.clone();
    for (domid, list) in claims {
        let mut mine: Vec<(u16, Range)> = Vec::new();
        let mut my_spis: Vec<(u32, u16)> = Vec::new();
        let verdict = (|| -> Result<(), String> {
            for dev in list {
                let name = &dev.node.name;
                for &(pa, size, _) in &dev.regs {
                    let r =
                        Range::at(pa, size).ok_or_else(|| format!("/passthrough/{name}: xen,reg wraps"))?;
                    if let Some((k, what)) = kept.iter().find(|(k, _)| k.overlaps(&r)) {
                        return Err(format!("/passthrough/{name}: xen,reg {r} overlaps {what} at {k}"));
                    }
                    if let Some((other, o)) = out.assigned.iter().find(|(d, o)| d != domid && o.overlaps(&r))
                    {
                        return Err(format!(
                            "/passthrough/{name}: xen,reg {r} overlaps {o}, given to DOM{other}"
                        ));
                    }
                    mine.push((*domid, r));
                }
                let Some(path) = dev.host_path.as_deref() else { continue };
                let node = fdt.find(path).ok_or_else(|| {
                    format!("/passthrough/{name}: xen,path {path}: no such node in the host device tree")
                })?;
                if node.property("interrupt-controller").is_some() {
                    return Err(format!("/passthrough/{name}: xen,path {path} is the interrupt controller"));
                }
                let base = fdt.reg(&node).and_then(|mut r| r.next()).map(|(a, _)| a);
                if base.is_some() && base == console {
                    return Err(format!(
                        "/passthrough/{name}: xen,path {path} is the hypervisor's console UART"
                    ));
                }
                for spi in crate::devices::host_spis(&fdt, path) {
                    if let Some((_, other)) = spis.iter().find(|(s, d)| *s == spi && d != domid) {
                        return Err(format!(
                            "/passthrough/{name}: xen,path {path}: INTID {spi} is given to DOM{other}"
                        ));
                    }
                    my_spis.push((spi, *domid));
                }
                if !dev.force_without_iommu {
                    return Err(format!(
                        "/passthrough/{name}: the hypervisor programs no IOMMU, so a device's DMA is not confined: give it only with xen,force-assign-without-iommu"
                    ));
                }
            }
            Ok(())
        })();
        match verdict {
            Ok(()) => {
                out.assigned.extend(mine);
                spis.extend(my_spis);
                out.unprotected
                    .extend(list.iter().map(|d| (*domid, format!("/passthrough/{}", d.node.name))));
            }
            Err(why) => out.refused.push((*domid, why)),
        }
    }
    out.assigned.drain(..held.mmio.len());
    out.spis = spis.split_off(held.spis.len());
    out
}

#[cfg(test)]
pub(crate) mod tests;
