//! What the host Device Tree says about the machine: RAM and what is reserved inside it,
//! CPUs and how to start them, the interrupt controller, the console UART.

use core::fmt;

use crate::fdt::{Fdt, FdtError, Node};
use crate::memmap::{MemoryMap, Range, RegionSetFull, Use};

/// Most physical CPUs the hypervisor drives; further CPUs are left off.
pub const MAX_CPUS: usize = 8;

/// How a secondary CPU is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnableMethod {
    /// PSCI CPU_ON.
    Psci,
    /// Write the entry point to this address and send an event.
    SpinTable { release_addr: u64 },
    /// The boot CPU, or a CPU with no usable method.
    None,
}

/// A CPU from `/cpus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu {
    /// MPIDR affinity bits (Aff3..Aff0), from `reg`.
    pub mpidr: u64,
    pub method: EnableMethod,
}

/// How PSCI calls reach the firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conduit {
    Smc,
    Hvc,
}

/// The physical interrupt controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gic {
    V2 { gicd: u64, gicc: u64, gicc_size: u64, gich: Option<u64>, gicv: Option<u64> },
    V3 { gicd: u64, gicr: u64, gicr_size: u64 },
}

impl Gic {
    pub fn version(&self) -> u32 {
        match self {
            Gic::V2 { .. } => 2,
            Gic::V3 { .. } => 3,
        }
    }

    /// The register frames the hypervisor drives: the distributor and redistributors
    /// (GICv3); the distributor, CPU interface (at least 8 KiB) and virtual interface
    /// control (GICv2). A GICv2's virtual CPU interface (GICV) is the guests', not here.
    pub fn frames(&self) -> impl Iterator<Item = Range> {
        let f = match *self {
            Gic::V3 { gicd, gicr, gicr_size } => {
                [Range::at(gicd, 0x1_0000), Range::at(gicr, gicr_size), None]
            }
            Gic::V2 { gicd, gicc, gicc_size, gich, .. } => [
                Range::at(gicd, 0x1000),
                Range::at(gicc, gicc_size.max(0x2000)),
                gich.and_then(|h| Range::at(h, 0x2000)),
            ],
        };
        f.into_iter().flatten()
    }
}

/// Kinds of UART the hypervisor can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UartKind {
    /// Arm PL011 (`arm,pl011`) or SBSA UART.
    Pl011,
    /// Cadence UART (`cdns,uart-r1p12`, `xlnx,xuartps`) on Zynq UltraScale+.
    Cadence,
    /// The BCM2835/BCM2711 mini UART (`brcm,bcm2835-aux-uart`), the Raspberry Pi's default
    /// console (an 8250-like subset).
    MiniUart,
}

impl UartKind {
    /// A small number for each kind (kept where only plain atomics are usable).
    pub fn code(self) -> u8 {
        match self {
            UartKind::Pl011 => 0,
            UartKind::Cadence => 1,
            UartKind::MiniUart => 2,
        }
    }

    pub fn from_code(c: u8) -> UartKind {
        match c {
            1 => UartKind::Cadence,
            2 => UartKind::MiniUart,
            _ => UartKind::Pl011,
        }
    }
}

/// The console UART from `/chosen/stdout-path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uart {
    pub kind: UartKind,
    pub base: u64,
    pub size: u64,
    /// Its interrupt (GIC INTID), from a `<type number flags>` specifier.
    pub irq: Option<u32>,
}

/// Why the host Device Tree cannot describe a machine to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformError {
    Fdt(FdtError),
    /// No `memory` node with a usable `reg`.
    NoMemory,
    /// More RAM banks or reserved ranges than the hypervisor tracks.
    TooManyRegions,
    /// No usable CPU in `/cpus`.
    NoCpus,
    /// A `/reserved-memory` child whose `reg` cannot be read: handing out memory the
    /// firmware may own is worse than not starting.
    BadReservedMemory,
    /// The console UART's interrupt is not an SPI the GIC architecture has (a PPI, or an
    /// SPI at INTID 1020 or above).
    UartIrq(u32),
    /// The interrupt controller's node cannot be used, and why.
    BadGic(&'static str),
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlatformError::Fdt(e) => write!(f, "host device tree: {e}"),
            PlatformError::NoMemory => write!(
                f,
                "host device tree: no memory node with a size (a board whose firmware fills /memory at boot: check with hlcheck --ram SIZE)"
            ),
            PlatformError::TooManyRegions => write!(f, "host device tree: too many memory ranges"),
            PlatformError::NoCpus => write!(f, "host device tree: no CPU in /cpus"),
            PlatformError::BadReservedMemory => {
                write!(f, "host device tree: a /reserved-memory node has a malformed reg")
            }
            PlatformError::BadGic(why) => {
                write!(f, "host device tree: the interrupt controller's node: {why}")
            }
            PlatformError::UartIrq(i) => write!(
                f,
                "host device tree: the console UART's interrupt is INTID {i}, not a shared peripheral interrupt (SPI 0-987, INTID 32-1019)"
            ),
        }
    }
}

impl From<FdtError> for PlatformError {
    fn from(e: FdtError) -> Self {
        PlatformError::Fdt(e)
    }
}

impl From<RegionSetFull> for PlatformError {
    fn from(_: RegionSetFull) -> Self {
        PlatformError::TooManyRegions
    }
}

/// A short human-readable note about something in the DTB that was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warning {
    /// More CPUs than [`MAX_CPUS`]: the rest stay off.
    TooManyCpus(usize),
    /// A CPU node without a method we can use.
    CpuNoMethod(u64),
    /// A boot module node whose `reg` could not be read.
    BadReg,
    /// No interrupt controller we know.
    NoGic,
    /// `/chosen/stdout-path` missing or naming a UART we cannot drive.
    NoUart,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::TooManyCpus(n) => write!(f, "{n} CPUs found; only {MAX_CPUS} are used"),
            Warning::CpuNoMethod(m) => write!(f, "CPU {m:#x} has no usable enable-method; left off"),
            Warning::BadReg => write!(f, "a boot module node has a malformed reg or module-addr"),
            Warning::NoGic => write!(f, "no GICv2/GICv3 interrupt controller found"),
            Warning::NoUart => write!(f, "no usable UART in /chosen/stdout-path"),
        }
    }
}

/// The machine as the host DTB describes it.
#[derive(Debug, Clone)]
pub struct Platform {
    pub cpus: [Cpu; MAX_CPUS],
    pub cpu_count: usize,
    pub psci: Option<Conduit>,
    pub gic: Option<Gic>,
    pub uart: Option<Uart>,
    /// RAM and the ranges reserved in it by the DTB itself and by the boot modules.
    pub memory: MemoryMap,
    /// Boot modules the loader placed (kernels, ramdisks, device trees, configurations).
    pub modules: crate::memmap::RegionSet<{ crate::memmap::MAX_REGIONS }>,
    pub warnings: [Option<Warning>; 8],
}

impl Platform {
    fn warn(&mut self, w: Warning) {
        if let Some(slot) = self.warnings.iter_mut().find(|s| s.is_none() || **s == Some(w)) {
            *slot = Some(w);
        }
    }

    /// The CPUs in use.
    pub fn cpus(&self) -> &[Cpu] {
        &self.cpus[..self.cpu_count]
    }

    /// Index of the CPU with this MPIDR affinity.
    pub fn cpu_index(&self, mpidr: u64) -> Option<usize> {
        self.cpus().iter().position(|c| c.mpidr == mpidr & MPIDR_AFF_MASK)
    }

    /// Reads a host DTB. When `dtb_addr` says where the DTB itself lies, its range is
    /// reserved too (a DTB read from a file on the host lies nowhere).
    pub fn from_fdt(fdt: &Fdt<'_>, dtb_addr: Option<u64>) -> Result<Platform, PlatformError> {
        Self::from_fdt_with_ram(fdt, dtb_addr, None)
    }

    /// As [`Platform::from_fdt`], with `ram` standing in for RAM the device tree leaves to
    /// the firmware to fill (a `/memory` node of size 0, as the Raspberry Pi 4's board DTB
    /// has): for checking such a DTB on the host.
    pub fn from_fdt_with_ram(
        fdt: &Fdt<'_>,
        dtb_addr: Option<u64>,
        ram: Option<Range>,
    ) -> Result<Platform, PlatformError> {
        let mut p = Platform {
            cpus: [Cpu { mpidr: 0, method: EnableMethod::None }; MAX_CPUS],
            cpu_count: 0,
            psci: None,
            gic: None,
            uart: None,
            memory: MemoryMap::default(),
            modules: Default::default(),
            warnings: [None; 8],
        };
        p.read_memory(fdt, ram)?;
        if let Some(r) = dtb_addr.and_then(|a| Range::at(a, fdt.total_size() as u64)) {
            p.memory.reserve(r, Use::DeviceTree)?;
        }
        p.read_modules(fdt)?;
        p.psci = read_psci(fdt);
        p.read_cpus(fdt)?;
        p.gic = read_gic(fdt)?;
        if p.gic.is_none() {
            p.warn(Warning::NoGic);
        }
        p.uart = read_stdout_uart(fdt);
        if p.uart.is_none() {
            p.warn(Warning::NoUart);
        }
        if let Some(i) = p.uart.and_then(|u| u.irq).filter(|i| !(32..1020).contains(i)) {
            return Err(PlatformError::UartIrq(i));
        }
        Ok(p)
    }

    fn read_memory(&mut self, fdt: &Fdt<'_>, fill: Option<Range>) -> Result<(), PlatformError> {
        for node in fdt.root().children() {
            let is_memory = node.property("device_type").and_then(|p| p.as_str()) == Some("memory");
            if !is_memory || !node.is_enabled() {
                continue;
            }
            let Some(regs) = fdt.reg(&node) else { continue };
            for (addr, size) in regs {
                if let Some(r) = Range::at(addr, size) {
                    self.memory.add_ram(r)?;
                }
            }
        }
        if self.memory.ram.is_empty()
            && let Some(r) = fill
        {
            self.memory.add_ram(r)?;
        }
        if self.memory.ram.is_empty() {
            return Err(PlatformError::NoMemory);
        }
        for (addr, size) in fdt.mem_reservations() {
            if let Some(r) = Range::at(addr, size) {
                self.memory.reserve(r, Use::MemReserve)?;
            }
        }
        if let Some(rm) = fdt.find("/reserved-memory") {
            for node in rm.children() {
                // Disabled reserved regions are not reserved (the DT spec).
                if !node.is_enabled() {
                    continue;
                }
                match fdt.reg(&node) {
                    Some(regs) => {
                        for (addr, size) in regs {
                            if let Some(r) = Range::at(addr, size) {
                                self.memory.reserve(r, Use::ReservedMemory)?;
                            }
                        }
                    }
                    // Dynamically placed regions (`size` without `reg`) are the OS's to place.
                    None if node.property("reg").is_some() => {
                        return Err(PlatformError::BadReservedMemory);
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }

    /// Reserves every boot module named under `/chosen`: Xen/dom0less `multiboot,*` nodes,
    /// Hyperlaunch `module,*` nodes (by `module-addr` or `reg`), and `linux,initrd-*`.
    fn read_modules(&mut self, fdt: &Fdt<'_>) -> Result<(), PlatformError> {
        let Some(chosen) = fdt.find("/chosen") else { return Ok(()) };
        for node in chosen.descendants() {
            let is_module = node.property("compatible").is_some_and(|p| {
                p.strings().any(|s| s.starts_with("multiboot,") || s.starts_with("module,"))
            });
            if !is_module {
                continue;
            }
            let Some(parent) = fdt.parent(&node) else { continue };
            let prop = node.property("module-addr").or_else(|| node.property("reg"));
            let (Some(prop), Some(ac), Some(sc)) = (prop, parent.address_cells(), parent.size_cells()) else {
                self.warn(Warning::BadReg);
                continue;
            };
            match prop.reg_pairs(ac, sc) {
                Some(pairs) => {
                    for (addr, size) in pairs {
                        if let Some(r) = Range::at(addr, size) {
                            self.modules.add(r)?;
                            self.memory.reserve(r, Use::Module)?;
                        }
                    }
                }
                None => self.warn(Warning::BadReg),
            }
        }
        // Memory claimed by domains (`xen,static-mem`) is never handed out; the launch
        // configuration checks it (well-formed, in RAM, not shared).
        for node in chosen.descendants() {
            let Some(prop) = node.property("xen,static-mem") else { continue };
            let ac = node.property("#xen,static-mem-address-cells").and_then(|p| p.u32());
            let sc = node.property("#xen,static-mem-size-cells").and_then(|p| p.u32());
            if let Some(pairs) = ac.zip(sc).and_then(|(ac, sc)| prop.reg_pairs(ac, sc)) {
                for (addr, size) in pairs {
                    if let Some(r) = Range::at(addr, size) {
                        self.memory.reserve(r, Use::StaticMem)?;
                    }
                }
            }
        }
        // Static shared memory is never handed out either (checked with the configuration;
        // a region several domains name is reserved once).
        for node in chosen.descendants().filter(|n| n.is_compatible(crate::config::shm::COMPATIBLE)) {
            let Some(domain) = fdt.parent(&node) else { continue };
            let (ac, sc) = (domain.address_cells().unwrap_or(0), domain.size_cells().unwrap_or(0));
            let parsed =
                node.property("xen,shared-mem").and_then(|p| crate::config::shm::cells(p.value, ac, sc));
            if let Some(r) = parsed.and_then(|(host, _, size)| Range::at(host, size))
                && !self.memory.tagged().any(|(t, u)| t == r && u == Use::SharedMem)
            {
                self.memory.reserve(r, Use::SharedMem)?;
            }
        }
        let start = chosen.property("linux,initrd-start").and_then(|p| p.u64());
        let end = chosen.property("linux,initrd-end").and_then(|p| p.u64());
        if let (Some(s), Some(e)) = (start, end)
            && e > s
        {
            let r = Range { start: s, end: e };
            self.modules.add(r)?;
            self.memory.reserve(r, Use::Module)?;
        }
        Ok(())
    }

    fn read_cpus(&mut self, fdt: &Fdt<'_>) -> Result<(), PlatformError> {
        let cpus = fdt.find("/cpus").ok_or(PlatformError::NoCpus)?;
        let ac = cpus.address_cells().unwrap_or(1);
        let mut found = 0;
        for node in cpus.children() {
            if node.property("device_type").and_then(|p| p.as_str()) != Some("cpu") {
                continue;
            }
            // A disabled CPU is not probed at all (hvisor #218).
            if !node.is_enabled() {
                continue;
            }
            let Some(reg) = node.property("reg") else { continue };
            let mpidr = match (ac, reg.value.len()) {
                (1, 4) => reg.u32().map(u64::from),
                (2, 8) => reg.u64(),
                _ => None,
            };
            let Some(mpidr) = mpidr else { continue };
            let method = match node.property("enable-method").and_then(|p| p.as_str()) {
                Some("psci") if self.psci.is_some() => EnableMethod::Psci,
                Some("spin-table") => match node.property("cpu-release-addr").and_then(|p| p.u64()) {
                    Some(a) => EnableMethod::SpinTable { release_addr: a },
                    None => EnableMethod::None,
                },
                // No method (a single-CPU machine, or the boot CPU): PSCI if there is one.
                None if self.psci.is_some() => EnableMethod::Psci,
                _ => EnableMethod::None,
            };
            found += 1;
            if self.cpu_count == MAX_CPUS {
                continue;
            }
            self.cpus[self.cpu_count] = Cpu { mpidr: mpidr & MPIDR_AFF_MASK, method };
            self.cpu_count += 1;
        }
        if found > MAX_CPUS {
            self.warn(Warning::TooManyCpus(found));
        }
        if self.cpu_count == 0 {
            return Err(PlatformError::NoCpus);
        }
        Ok(())
    }

    /// Moves the boot CPU to index 0 (the entry code gives index 0 the first stack).
    /// `false` when the boot CPU is not in the DTB.
    pub fn boot_cpu_first(&mut self, boot_mpidr: u64) -> bool {
        match self.cpu_index(boot_mpidr) {
            Some(i) => {
                self.cpus[..self.cpu_count].swap(0, i);
                true
            }
            None => false,
        }
    }

    /// Marks CPUs other than the boot CPU that cannot be started, for the log.
    pub fn check_methods(&mut self, boot_mpidr: u64) {
        for i in 0..self.cpu_count {
            let c = self.cpus[i];
            if c.mpidr != boot_mpidr & MPIDR_AFF_MASK && c.method == EnableMethod::None {
                self.warn(Warning::CpuNoMethod(c.mpidr));
            }
        }
    }
}

/// The affinity fields of MPIDR_EL1 (Aff3 in 39:32, Aff2..Aff0 in 23:0).
pub const MPIDR_AFF_MASK: u64 = 0xff_00ff_ffff;

pub fn read_psci(fdt: &Fdt<'_>) -> Option<Conduit> {
    let node = fdt.all_nodes().find(|n| {
        n.is_enabled()
            && (n.is_compatible("arm,psci-1.0")
                || n.is_compatible("arm,psci-0.2")
                || n.is_compatible("arm,psci"))
    })?;
    match node.property("method")?.as_str()? {
        "smc" => Some(Conduit::Smc),
        "hvc" => Some(Conduit::Hvc),
        _ => None,
    }
}

/// The first `N` entries of a node's `reg` (missing ones as (0, 0)), and how many it has.
fn first_regs<const N: usize>(fdt: &Fdt<'_>, node: &Node<'_>) -> Option<([(u64, u64); N], usize)> {
    let mut out = [(0, 0); N];
    let mut n = 0;
    for (i, r) in fdt.reg(node)?.enumerate().take(N) {
        out[i] = r;
        n += 1;
    }
    Some((out, n))
}

/// The interrupt controller. A GIC node whose registers cannot be used is an error, not a
/// machine without a GIC: the hypervisor would program address 0.
fn read_gic(fdt: &Fdt<'_>) -> Result<Option<Gic>, PlatformError> {
    for node in fdt.all_nodes() {
        if !node.is_enabled() || node.property("interrupt-controller").is_none() {
            continue;
        }
        if node.is_compatible("arm,gic-v3") {
            let (r, n) =
                first_regs::<2>(fdt, &node).ok_or(PlatformError::BadGic("its reg cannot be read"))?;
            if n < 2 || r[0].1 == 0 || r[1].1 == 0 {
                return Err(PlatformError::BadGic(
                    "a GICv3 needs its distributor and redistributor regions in reg",
                ));
            }
            return Ok(Some(Gic::V3 { gicd: r[0].0, gicr: r[1].0, gicr_size: r[1].1 }));
        }
        const V2: [&str; 4] = ["arm,gic-400", "arm,cortex-a15-gic", "arm,cortex-a7-gic", "arm,gic-v2"];
        if V2.iter().any(|c| node.is_compatible(c)) {
            let (r, n) =
                first_regs::<4>(fdt, &node).ok_or(PlatformError::BadGic("its reg cannot be read"))?;
            if n < 2 || r[0].1 == 0 || r[1].1 == 0 {
                return Err(PlatformError::BadGic(
                    "a GICv2 needs its distributor and CPU interface regions in reg",
                ));
            }
            let opt = |x: (u64, u64)| (x.1 != 0).then_some(x.0);
            return Ok(Some(Gic::V2 {
                gicd: r[0].0,
                gicc: r[1].0,
                gicc_size: r[1].1,
                gich: opt(r[2]),
                gicv: opt(r[3]),
            }));
        }
    }
    Ok(None)
}

pub fn read_stdout_uart(fdt: &Fdt<'_>) -> Option<Uart> {
    let chosen = fdt.find("/chosen")?;
    let path = chosen.property("stdout-path").or_else(|| chosen.property("linux,stdout-path"))?.as_str()?;
    // "serial0:115200n8" → "serial0"
    let path = path.split(':').next()?;
    let node = fdt.resolve(path)?;
    let kind = if node.is_compatible("arm,pl011") || node.is_compatible("arm,sbsa-uart") {
        UartKind::Pl011
    } else if node.is_compatible("cdns,uart-r1p12") || node.is_compatible("xlnx,xuartps") {
        UartKind::Cadence
    } else if node.is_compatible("brcm,bcm2835-aux-uart") {
        UartKind::MiniUart
    } else {
        return None;
    };
    let (base, size) = fdt.reg(&node)?.next()?;
    let irq = node.property("interrupts").and_then(|p| {
        let mut c = p.cells()?;
        match (c.next()?, c.next()?) {
            (0, n) => Some(n.saturating_add(32)),
            (1, n) => Some(n.saturating_add(16)),
            _ => None,
        }
    });
    Some(Uart { kind, base, size, irq })
}

#[cfg(test)]
mod tests;
