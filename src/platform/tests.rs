//! Host tests of the platform description read from host device trees.

use super::*;
use vm_fdt::{FdtReserveEntry, FdtWriter};

/// A QEMU-virt-like host DTB: GICv3, PL011, PSCI over SMC, four CPUs, 1 GiB of RAM,
/// a reserved-memory region, one /memreserve/ and a dom0less module.
fn qemu_like() -> Vec<u8> {
    let mut w =
        FdtWriter::new_with_mem_reserv(&[FdtReserveEntry::new(0x4000_0000, 0x1000).unwrap()]).unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let aliases = w.begin_node("aliases").unwrap();
    w.property_string("serial0", "/pl011@9000000").unwrap();
    w.end_node(aliases).unwrap();
    let chosen = w.begin_node("chosen").unwrap();
    w.property_string("stdout-path", "serial0:115200n8").unwrap();
    let dom = w.begin_node("domU1").unwrap();
    w.property_string("compatible", "xen,domain").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    let m = w.begin_node("module@49000000").unwrap();
    w.property_string_list("compatible", vec!["multiboot,kernel".into(), "multiboot,module".into()]).unwrap();
    w.property_array_u32("reg", &[0x4900_0010, 0x2000]).unwrap();
    w.end_node(m).unwrap();
    w.end_node(dom).unwrap();
    w.end_node(chosen).unwrap();
    let mem = w.begin_node("memory@40000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[0x4000_0000, 0x4000_0000]).unwrap();
    w.end_node(mem).unwrap();
    let rm = w.begin_node("reserved-memory").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_null("ranges").unwrap();
    let r = w.begin_node("fw@7f000000").unwrap();
    w.property_array_u64("reg", &[0x7f00_0000, 0x10_0000]).unwrap();
    w.end_node(r).unwrap();
    let off = w.begin_node("off@7e000000").unwrap();
    w.property_array_u64("reg", &[0x7e00_0000, 0x10_0000]).unwrap();
    w.property_string("status", "disabled").unwrap();
    w.end_node(off).unwrap();
    w.end_node(rm).unwrap();
    let psci = w.begin_node("psci").unwrap();
    w.property_string_list("compatible", vec!["arm,psci-1.0".into(), "arm,psci-0.2".into()]).unwrap();
    w.property_string("method", "smc").unwrap();
    w.end_node(psci).unwrap();
    let cpus = w.begin_node("cpus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 0).unwrap();
    for i in 0..4u32 {
        let c = w.begin_node(&format!("cpu@{i}")).unwrap();
        w.property_string("device_type", "cpu").unwrap();
        w.property_u32("reg", i).unwrap();
        w.property_string("enable-method", "psci").unwrap();
        if i == 3 {
            w.property_string("status", "disabled").unwrap();
        }
        w.end_node(c).unwrap();
    }
    w.end_node(cpus).unwrap();
    let gic = w.begin_node("intc@8000000").unwrap();
    w.property_string("compatible", "arm,gic-v3").unwrap();
    w.property_null("interrupt-controller").unwrap();
    w.property_array_u64("reg", &[0x800_0000, 0x1_0000, 0x80a_0000, 0xf6_0000]).unwrap();
    w.end_node(gic).unwrap();
    let uart = w.begin_node("pl011@9000000").unwrap();
    w.property_string_list("compatible", vec!["arm,pl011".into(), "arm,primecell".into()]).unwrap();
    w.property_array_u64("reg", &[0x900_0000, 0x1000]).unwrap();
    w.property_array_u32("interrupts", &[0, 1, 4]).unwrap();
    w.end_node(uart).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

/// A Raspberry-Pi-4-like DTB: RAM at 0, devices behind /soc `ranges`, spin-table CPUs,
/// GIC-400, no PSCI.
fn rpi4_like() -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    let chosen = w.begin_node("chosen").unwrap();
    w.property_string("stdout-path", "/soc/serial@7e201000").unwrap();
    w.end_node(chosen).unwrap();
    let mem = w.begin_node("memory@0").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u32("reg", &[0, 0, 0x3b40_0000, 0, 0x4000_0000, 0xbc00_0000]).unwrap();
    w.end_node(mem).unwrap();
    let soc = w.begin_node("soc").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    w.property_array_u32(
        "ranges",
        &[0x7e00_0000, 0, 0xfe00_0000, 0x180_0000, 0x4000_0000, 0, 0xff80_0000, 0x80_0000],
    )
    .unwrap();
    let uart = w.begin_node("serial@7e201000").unwrap();
    w.property_string_list("compatible", vec!["arm,pl011".into(), "arm,primecell".into()]).unwrap();
    w.property_array_u32("reg", &[0x7e20_1000, 0x200]).unwrap();
    w.end_node(uart).unwrap();
    let gic = w.begin_node("interrupt-controller@40041000").unwrap();
    w.property_string("compatible", "arm,gic-400").unwrap();
    w.property_null("interrupt-controller").unwrap();
    w.property_array_u32(
        "reg",
        &[0x4004_1000, 0x1000, 0x4004_2000, 0x2000, 0x4004_4000, 0x2000, 0x4004_6000, 0x2000],
    )
    .unwrap();
    w.end_node(gic).unwrap();
    w.end_node(soc).unwrap();
    let cpus = w.begin_node("cpus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 0).unwrap();
    for i in 0..4u32 {
        let c = w.begin_node(&format!("cpu@{i}")).unwrap();
        w.property_string("device_type", "cpu").unwrap();
        w.property_u32("reg", i).unwrap();
        w.property_string("enable-method", "spin-table").unwrap();
        w.property_u64("cpu-release-addr", 0xd8 + 8 * i as u64).unwrap();
        w.end_node(c).unwrap();
    }
    w.end_node(cpus).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

fn r(start: u64, end: u64) -> Range {
    Range { start, end }
}

#[test]
fn qemu_virt_platform() {
    let blob = qemu_like();
    let fdt = Fdt::new(&blob).unwrap();
    let p = Platform::from_fdt(&fdt, Some(0x4800_0000)).unwrap();
    assert_eq!(p.psci, Some(Conduit::Smc));
    // cpu@3 is disabled: never probed.
    assert_eq!(p.cpu_count, 3);
    assert!(p.cpus().iter().all(|c| c.method == EnableMethod::Psci));
    assert_eq!(p.cpu_index(0x8000_0002), Some(2));
    let mut q = p.clone();
    assert!(q.boot_cpu_first(0x8000_0002));
    assert_eq!(q.cpus[0].mpidr, 2);
    assert_eq!(q.cpus[2].mpidr, 0);
    assert!(!q.boot_cpu_first(0x7));
    assert_eq!(p.gic, Some(Gic::V3 { gicd: 0x800_0000, gicr: 0x80a_0000, gicr_size: 0xf6_0000 }));
    assert_eq!(p.uart, Some(Uart { kind: UartKind::Pl011, base: 0x900_0000, size: 0x1000, irq: Some(33) }));
    let free: Vec<_> = p.memory.free().unwrap().iter().collect();
    let dtb_end = (0x4800_0000 + blob.len() as u64 + 0xfff) & !0xfff;
    assert_eq!(
        free,
        vec![
            r(0x4000_1000, 0x4800_0000),
            r(dtb_end, 0x4900_0000),
            r(0x4900_3000, 0x7f00_0000),
            r(0x7f10_0000, 0x8000_0000)
        ]
    );
    assert_eq!(p.modules.iter().collect::<Vec<_>>(), vec![r(0x4900_0010, 0x4900_2010)]);
    assert!(p.warnings.iter().all(|w| w.is_none()), "{:?}", p.warnings);
}

#[test]
fn rpi4_platform_translates_soc_ranges_and_uses_spin_table() {
    let blob = rpi4_like();
    let fdt = Fdt::new(&blob).unwrap();
    let p = Platform::from_fdt(&fdt, Some(0x2eff_0000)).unwrap();
    assert_eq!(p.psci, None);
    assert_eq!(p.cpu_count, 4);
    assert_eq!(p.cpus[2].method, EnableMethod::SpinTable { release_addr: 0xe8 });
    assert_eq!(p.uart, Some(Uart { kind: UartKind::Pl011, base: 0xfe20_1000, size: 0x200, irq: None }));
    assert_eq!(
        p.gic,
        Some(Gic::V2 {
            gicd: 0xff84_1000,
            gicc: 0xff84_2000,
            gicc_size: 0x2000,
            gich: Some(0xff84_4000),
            gicv: Some(0xff84_6000)
        })
    );
    assert_eq!(p.memory.ram.iter().collect::<Vec<_>>(), vec![r(0, 0x3b40_0000), r(0x4000_0000, 0xfc00_0000)]);
}

#[test]
fn malformed_reserved_memory_is_an_error() {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    let mem = w.begin_node("memory@0").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u32("reg", &[0, 0, 0x1000_0000]).unwrap();
    w.end_node(mem).unwrap();
    let rm = w.begin_node("reserved-memory").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_null("ranges").unwrap();
    let r = w.begin_node("bad@1000").unwrap();
    w.property_array_u32("reg", &[0, 0x1000, 0x1000]).unwrap(); // three cells, not four
    w.end_node(r).unwrap();
    w.end_node(rm).unwrap();
    w.end_node(root).unwrap();
    let blob = w.finish().unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    assert_eq!(Platform::from_fdt(&fdt, None).unwrap_err(), PlatformError::BadReservedMemory);
}

#[test]
fn no_memory_is_an_error() {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    let cpus = w.begin_node("cpus").unwrap();
    w.end_node(cpus).unwrap();
    w.end_node(root).unwrap();
    let blob = w.finish().unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    assert_eq!(Platform::from_fdt(&fdt, None).unwrap_err(), PlatformError::NoMemory);
}

/// `qemu_like()` with the UART's `interrupts` cells replaced.
fn with_uart_irq(cells: [u32; 3]) -> Vec<u8> {
    let mut blob = qemu_like();
    let old: Vec<u8> = [0u32, 1, 4].iter().flat_map(|c| c.to_be_bytes()).collect();
    let at = blob.windows(12).position(|w| w == old.as_slice()).unwrap();
    let new: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
    blob[at..at + 12].copy_from_slice(&new);
    blob
}

#[test]
fn console_uart_interrupt_must_be_an_spi() {
    let read = |cells| Platform::from_fdt(&Fdt::new(&with_uart_irq(cells)).unwrap(), None).map(|p| p.uart);
    assert_eq!(read([0, 1, 4]).unwrap().unwrap().irq, Some(33));
    assert_eq!(read([0, 987, 4]).unwrap().unwrap().irq, Some(1019));
    // A PPI, the first INTID past the SPIs, and one that would wrap: named errors.
    assert_eq!(read([1, 5, 4]), Err(PlatformError::UartIrq(21)));
    assert_eq!(read([0, 988, 4]), Err(PlatformError::UartIrq(1020)));
    assert_eq!(read([0, u32::MAX, 4]), Err(PlatformError::UartIrq(u32::MAX)));
    let e = read([1, 5, 4]).unwrap_err().to_string();
    assert!(e.contains("console UART's interrupt is INTID 21, not a shared peripheral interrupt"), "{e}");
}

#[test]
fn a_gic_node_that_cannot_be_used_is_named() {
    // QEMU virt's GICv3 with its redistributor region's size 0 (as a one-entry reg reads).
    let mut blob = qemu_like();
    let old: Vec<u8> = [0x80a_0000u64, 0xf6_0000].iter().flat_map(|c| c.to_be_bytes()).collect();
    let at = blob.windows(16).position(|w| w == old.as_slice()).unwrap();
    blob[at + 8..at + 16].copy_from_slice(&0u64.to_be_bytes());
    let e = Platform::from_fdt(&Fdt::new(&blob).unwrap(), None).err().unwrap();
    assert_eq!(e, PlatformError::BadGic("a GICv3 needs its distributor and redistributor regions in reg"));
    assert!(e.to_string().starts_with("host device tree: the interrupt controller's node: "), "{e}");
    // Unchanged, it reads.
    assert!(matches!(
        Platform::from_fdt(&Fdt::new(&qemu_like()).unwrap(), None).unwrap().gic,
        Some(Gic::V3 { .. })
    ));
}
