//! Each domain's device tree, generated one function per node: `/chosen`, `/cpus`,
//! `/memory`, `/psci`, the interrupt controller, the timer, the virtual UART and the
//! `/hypervisor` node of the binding (never `xen,xen`, which would make Linux expect Xen's ABI).

use alloc::format;
use alloc::vec::Vec;

use vm_fdt::{Error, FdtWriter};

use crate::guest;

type Result<T> = core::result::Result<T, Error>;

pub const GIC_PHANDLE: u32 = 1;
/// GIC_PPI flags for the timer: level, active-low, on every CPU.
const PPI_FLAGS: u32 = 0xf08;

/// Everything a guest device tree describes.
#[derive(Debug, Clone)]
pub struct GuestDtb<'a> {
    pub domid: u16,
    pub permissions: u32,
    pub functions: u32,
    pub cpus: u32,
    /// RAM banks (guest address, size).
    pub ram: &'a [(u64, u64)],
    pub bootargs: Option<&'a str>,
    pub ramdisk: Option<(u64, u64)>,
    pub vuart: bool,
    /// 2 or 3.
    pub gic_version: u32,
    /// For a standby Recovery Domain: the domains whose launch failed, and why.
    pub failures: &'a [(u16, alloc::string::String)],
    /// Properties the Boot Domain added (in `/chosen` or in nodes of their own).
    pub additions: &'a [DtAddition],
    /// Its store connection(s), if a domain has the Xenstore function.
    pub store: Option<&'a crate::store::Role>,
    /// Host device nodes it is given (hardware domain), copied as they are.
    pub devices: &'a [crate::devices::CopiedNode],
    /// Where its emulated GIC and UART are.
    pub map: guest::GuestMap,
    /// The control device: its registers' address and its control window (address, size;
    /// a domain without Control has none).
    pub control: Option<(u64, Option<(u64, u64)>)>,
    /// virtio-mmio transports (address, SPI).
    pub virtio: &'a [(u64, u32)],
    /// Static shared memory (guest address, size, `xen,shm-id`), described as Xen does:
    /// `/reserved-memory/xen-shmem@ADDR`, not in `/memory`.
    pub shm: &'a [(u64, u64, alloc::string::String)],
    /// `/chosen/rng-seed` (see `crate::entropy`).
    pub rng_seed: Option<&'a [u8]>,
}

/// A property a Boot Domain adds to a paused domain's device tree (extended
/// configuration): in `/chosen`, or in a top-level node the hypervisor does not generate
/// (created on first use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtAddition {
    pub path: alloc::string::String,
    pub name: alloc::string::String,
    pub value: Vec<u8>,
}

/// Why an addition is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdditionError {
    /// Not "PATH\0NAME\0VALUE" with UTF-8 path and name.
    Malformed,
    /// The path is not `/chosen` or `/NAME` (one level), or NAME is a node the hypervisor
    /// writes itself, or has characters a node name may not have.
    Path,
    /// The property name is not a valid one, or the hypervisor owns it (command line,
    /// console, ramdisk, phandles).
    Name,
}

impl core::fmt::Display for AdditionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            AdditionError::Malformed => "not \"PATH\\0NAME\\0VALUE\"",
            AdditionError::Path => "only /chosen or a new top-level node of its own may be added to",
            AdditionError::Name => "a property name the hypervisor owns or that is not valid",
        })
    }
}

/// Top-level nodes the hypervisor generates (by base name).
const GENERATED: [&str; 8] =
    ["chosen", "cpus", "memory", "psci", "interrupt-controller", "timer", "uart", "hypervisor"];
/// `/chosen` properties the hypervisor writes.
const CHOSEN_OWN: [&str; 6] = [
    "bootargs",
    "stdout-path",
    "linux,initrd-start",
    "linux,initrd-end",
    "hyperlaunch,event-log",
    "rng-seed",
];

impl DtAddition {
    /// Parses and checks a "PATH\0NAME\0VALUE" buffer.
    pub fn parse(buf: &[u8]) -> core::result::Result<DtAddition, AdditionError> {
        let mut parts = buf.splitn(3, |&b| b == 0);
        let (Some(path), Some(name), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(AdditionError::Malformed);
        };
        let path = core::str::from_utf8(path).map_err(|_| AdditionError::Malformed)?;
        let name = core::str::from_utf8(name).map_err(|_| AdditionError::Malformed)?;
        let node = path.strip_prefix('/').ok_or(AdditionError::Path)?;
        let node_ok = |n: &str| {
            let base = n.split('@').next().unwrap_or("");
            !n.is_empty()
                && n.len() <= 31
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b",._+-@".contains(&b))
                && !base.is_empty()
                && !GENERATED.contains(&base)
        };
        if node != "chosen" && !node_ok(node) {
            return Err(AdditionError::Path);
        }
        let name_ok = !name.is_empty()
            && name.len() <= 31
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b",._+?#-".contains(&b))
            && name != "phandle"
            && name != "linux,phandle"
            && name != "name"
            && !(node == "chosen" && CHOSEN_OWN.contains(&name));
        if !name_ok {
            return Err(AdditionError::Name);
        }
        Ok(DtAddition { path: path.into(), name: name.into(), value: value.to_vec() })
    }
}

impl GuestDtb<'_> {
    /// The flattened device tree.
    pub fn build(&self) -> Result<Vec<u8>> {
        let mut w = FdtWriter::new()?;
        let root = w.begin_node("")?;
        w.property_string("compatible", "hyperlaunch,guest")?;
        w.property_string("model", &format!("hyperlaunch domain {}", self.domid))?;
        w.property_u32("#address-cells", 2)?;
        w.property_u32("#size-cells", 2)?;
        w.property_u32("interrupt-parent", GIC_PHANDLE)?;
        self.chosen(&mut w)?;
        self.cpus(&mut w)?;
        self.memory(&mut w)?;
        if !self.shm.is_empty() {
            let r = w.begin_node("reserved-memory")?;
            w.property_u32("#address-cells", 2)?;
            w.property_u32("#size-cells", 2)?;
            w.property_null("ranges")?;
            for (at, size, id) in self.shm {
                let n = w.begin_node(&format!("xen-shmem@{at:x}"))?;
                w.property_string("compatible", "xen,shared-memory-v1")?;
                w.property_array_u64("reg", &[*at, *size])?;
                w.property_string("xen,id", id)?;
                w.property_u64("xen,offset", 0)?;
                w.end_node(n)?;
            }
            w.end_node(r)?;
        }
        self.psci(&mut w)?;
        self.gic(&mut w)?;
        self.timer(&mut w)?;
        if self.vuart {
            self.uart(&mut w)?;
        }
        self.hypervisor(&mut w)?;
        if let Some((regs, window)) = self.control {
            let n = w.begin_node(&format!("hyperlaunch-control@{regs:x}"))?;
            w.property_string("compatible", "hyperlaunch,control-v1")?;
            let mut reg = alloc::vec![regs, guest::CONTROL_REGS_SIZE];
            if let Some((at, size)) = window {
                reg.extend([at, size]);
            }
            w.property_array_u64("reg", &reg)?;
            w.end_node(n)?;
        }
        for &(at, spi) in self.virtio {
            let n = w.begin_node(&format!("virtio_mmio@{at:x}"))?;
            w.property_string("compatible", "virtio,mmio")?;
            w.property_array_u64("reg", &[at, crate::virtio::mmio::WINDOW])?;
            w.property_array_u32("interrupts", &[0, spi, 4])?;
            w.property_null("dma-coherent")?;
            w.end_node(n)?;
        }
        self.added_nodes(&mut w)?;
        for d in self.devices {
            let n = w.begin_node(&d.name)?;
            for (name, value) in &d.props {
                w.property(name, value)?;
            }
            w.end_node(n)?;
        }
        w.end_node(root)?;
        w.finish()
    }

    fn chosen(&self, w: &mut FdtWriter) -> Result<()> {
        let n = w.begin_node("chosen")?;
        if let Some(args) = self.bootargs {
            w.property_string("bootargs", args)?;
        }
        if self.vuart {
            w.property_string("stdout-path", &format!("/uart@{:x}", self.map.vuart))?;
        }
        if let Some((start, len)) = self.ramdisk {
            w.property_u64("linux,initrd-start", start)?;
            w.property_u64("linux,initrd-end", start + len)?;
        }
        if let Some(s) = self.rng_seed {
            w.property("rng-seed", s)?;
        }
        for a in self.additions.iter().filter(|a| a.path == "/chosen") {
            w.property(&a.name, &a.value)?;
        }
        w.end_node(n)
    }

    fn cpus(&self, w: &mut FdtWriter) -> Result<()> {
        let n = w.begin_node("cpus")?;
        w.property_u32("#address-cells", 1)?;
        w.property_u32("#size-cells", 0)?;
        for i in 0..self.cpus {
            let reg = (guest::vcpu_mpidr(i) & 0xff_ffff) as u32;
            let c = w.begin_node(&format!("cpu@{reg:x}"))?;
            w.property_string("device_type", "cpu")?;
            w.property_string("compatible", "arm,armv8")?;
            w.property_u32("reg", reg)?;
            w.property_string("enable-method", "psci")?;
            w.end_node(c)?;
        }
        w.end_node(n)
    }

    fn memory(&self, w: &mut FdtWriter) -> Result<()> {
        let base = self.ram.iter().map(|b| b.0).min().unwrap_or(guest::RAM0_BASE);
        let n = w.begin_node(&format!("memory@{base:x}"))?;
        w.property_string("device_type", "memory")?;
        let reg: Vec<u64> = self.ram.iter().flat_map(|&(a, s)| [a, s]).collect();
        w.property_array_u64("reg", &reg)?;
        w.end_node(n)
    }

    fn psci(&self, w: &mut FdtWriter) -> Result<()> {
        let n = w.begin_node("psci")?;
        w.property_string_list("compatible", alloc::vec!["arm,psci-1.0".into(), "arm,psci-0.2".into()])?;
        w.property_string("method", "hvc")?;
        w.end_node(n)
    }

    fn gic(&self, w: &mut FdtWriter) -> Result<()> {
        let n = w.begin_node(&format!("interrupt-controller@{:x}", self.map.gicd))?;
        if self.gic_version == 3 {
            w.property_string("compatible", "arm,gic-v3")?;
            let gicr_size = 0x2_0000 * u64::from(self.cpus);
            w.property_array_u64("reg", &[self.map.gicd, 0x1_0000, self.map.gicr, gicr_size])?;
        } else {
            w.property_string_list(
                "compatible",
                alloc::vec!["arm,gic-400".into(), "arm,cortex-a15-gic".into()],
            )?;
            w.property_array_u64("reg", &[self.map.gicd, 0x1000, self.map.gicc, 0x2000])?;
        }
        w.property_u32("#interrupt-cells", 3)?;
        w.property_u32("#address-cells", 0)?;
        w.property_null("interrupt-controller")?;
        w.property_u32("phandle", GIC_PHANDLE)?;
        w.end_node(n)
    }

    fn timer(&self, w: &mut FdtWriter) -> Result<()> {
        let n = w.begin_node("timer")?;
        w.property_string("compatible", "arm,armv8-timer")?;
        // Secure physical, non-secure physical, virtual, hypervisor PPIs: INTIDs 29, 30, 27, 26.
        w.property_array_u32(
            "interrupts",
            &[1, 13, PPI_FLAGS, 1, 14, PPI_FLAGS, 1, 11, PPI_FLAGS, 1, 10, PPI_FLAGS],
        )?;
        w.property_null("always-on")?;
        w.end_node(n)
    }

    fn uart(&self, w: &mut FdtWriter) -> Result<()> {
        let n = w.begin_node(&format!("uart@{:x}", self.map.vuart))?;
        w.property_string("compatible", "arm,sbsa-uart")?;
        w.property_array_u64("reg", &[self.map.vuart, guest::VUART_SIZE])?;
        w.property_array_u32("interrupts", &[0, guest::VUART_SPI, 4])?;
        w.property_u32("current-speed", 115_200)?;
        w.end_node(n)
    }

    /// The Boot Domain's nodes, in the order they were first named.
    fn added_nodes(&self, w: &mut FdtWriter) -> Result<()> {
        let mut done: Vec<&str> = Vec::new();
        for a in self.additions.iter().filter(|a| a.path != "/chosen") {
            if done.contains(&a.path.as_str()) {
                continue;
            }
            done.push(&a.path);
            let n = w.begin_node(a.path.trim_start_matches('/'))?;
            for p in self.additions.iter().filter(|p| p.path == a.path) {
                w.property(&p.name, &p.value)?;
            }
            w.end_node(n)?;
        }
        Ok(())
    }

    fn hypervisor(&self, w: &mut FdtWriter) -> Result<()> {
        let n = w.begin_node("hypervisor")?;
        w.property_string("compatible", "hyperlaunch,hypervisor")?;
        w.property_u32("domid", u32::from(self.domid))?;
        w.property_u32("permissions", self.permissions)?;
        w.property_u32("functions", self.functions)?;
        match self.store {
            Some(crate::store::Role::Client { server }) => {
                let c = w.begin_node("store")?;
                w.property_string("compatible", "hyperlaunch,store-ring")?;
                w.property_u32("peer", u32::from(*server))?;
                w.property_u64("ring", crate::store::CLIENT_RING)?;
                w.property_array_u32("interrupts", &[0, crate::store::CLIENT_SPI, 1])?;
                w.end_node(c)?;
            }
            Some(crate::store::Role::Server { slots, open }) => {
                let c = w.begin_node("store-server")?;
                w.property_string("compatible", "hyperlaunch,store-server")?;
                if *open {
                    w.property_u32("slots", slots.len() as u32)?;
                    w.property_array_u32("interrupts", &[0, crate::store::CHANGED_SPI, 1])?;
                }
                for (k, id) in slots.iter().enumerate().filter_map(|(k, c)| Some((k, (*c)?))) {
                    let n = w.begin_node(&format!("client@{id}"))?;
                    w.property_u32("peer", u32::from(id))?;
                    w.property_u64("ring", crate::store::Plan::server_ring(k))?;
                    w.property_array_u32("interrupts", &[0, crate::store::SERVER_SPI_BASE + k as u32, 1])?;
                    w.end_node(n)?;
                }
                w.end_node(c)?;
            }
            None => {}
        }
        for (domid, reason) in self.failures {
            let f = w.begin_node(&format!("launch-failure@{domid}"))?;
            w.property_u32("domid", u32::from(*domid))?;
            w.property_string("reason", reason)?;
            w.end_node(f)?;
        }
        w.end_node(n)
    }
}

#[cfg(test)]
#[path = "guest_dtb_tests.rs"]
mod tests;
