//! Host tests of building a domain on the fake machine: what a commit writes, and that a
//! domain that fails to build gives back everything it took.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use super::build::{BuildError, HostFacts, build};
use super::fake::{BASE, Fake, MIB, mem};
use super::machine::Machine as _;
use super::pool::Pool;
use crate::config::{DomainConfig, Module, ModuleKind, Permissions};
use crate::frames::Frames;
use crate::guest::{GuestMap, RAM0_BASE};
use crate::memmap::Range;

/// The kernel module (64 KiB, page aligned) and a gzip one, in fake RAM.
const KERNEL: u64 = BASE;
const KERNEL_LEN: u64 = 0x1_0000;
const GZIP: u64 = BASE + 0x2_0000;
/// Free memory domains are built from.
const FREE: Range = Range { start: BASE + 4 * MIB, end: BASE + 16 * MIB };

fn kernel(len: usize) -> Vec<u8> {
    let mut k: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
    k[8..16].copy_from_slice(&0u64.to_le_bytes()); // text_offset
    k[16..24].copy_from_slice(&(len as u64).to_le_bytes()); // image_size
    k[24..32].copy_from_slice(&0u64.to_le_bytes()); // flags
    k[0x38..0x3c].copy_from_slice(b"ARM\x64");
    k
}

struct Bench {
    fake: Arc<Fake>,
    pool: Pool,
    reserved: Vec<super::machine::HostMem>,
}

fn bench() -> Bench {
    let fake = Fake::new(16 * MIB as usize, 4);
    fake.poke(KERNEL, &kernel(KERNEL_LEN as usize));
    // A gzip stream whose trailer claims 8 bytes, then garbage.
    fake.poke(
        GZIP,
        &[
            0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4,
            8, 0, 0, 0,
        ],
    );
    let mut frames = Frames::new();
    frames.add(FREE);
    // SAFETY: the fake's frames are its byte vector, which nothing else uses.
    #[allow(unsafe_code)]
    let pool = unsafe { Pool::new(frames) };
    Bench { fake, pool, reserved: vec![mem(KERNEL, KERNEL_LEN), mem(GZIP, 26)] }
}

fn config(kernel: Range, memory_kib: u64) -> DomainConfig {
    let mut c = DomainConfig::new(String::from("/chosen/hypervisor/domain@1"));
    c.domid = 1;
    c.memory_kib = memory_kib;
    c.vuart = true;
    c.bootargs = Some(String::from("console=ttyAMA0"));
    c.kernel = Some(Module { kind: ModuleKind::Kernel, range: kernel, node: String::from("kernel") });
    c
}

fn facts(b: &Bench) -> HostFacts<'static> {
    HostFacts {
        dtb: &[],
        event_log: b"LOG",
        reserved: b.reserved.clone(),
        assigned: vec![],
        assigned_spis: vec![],
        refused: vec![],
        gic_version: 3,
        pa_bits: 40,
        console: None,
        host_map: GuestMap::XEN,
        gicv: None,
        vmid_bits: 8,
        online: u64::MAX,
        gic_spis: 0,
        links: vec![],
        static_from_pool: false,
        kernel_sharing: true,
        defer_copies: false,
    }
}

#[test]
fn a_built_domain_has_its_kernel_device_tree_and_tables() {
    let mut b = bench();
    let host = facts(&b);
    let free = b.pool.free_bytes();
    let mut load = vec![0u32; 4];
    let cfg = config(Range { start: KERNEL, end: KERNEL + KERNEL_LEN }, 4096);
    let (parts, loaded) = build(&*b.fake, &cfg, 1, &mut b.pool, &mut load, &host, None).unwrap();
    assert_eq!(load, [1, 0, 0, 0], "placed on CPU 0");
    assert_eq!(parts.entry.0, RAM0_BASE, "kernel at RAM + text_offset");
    assert_eq!(parts.ram.size(), 4 * MIB);
    let ram = parts.ram.host(RAM0_BASE, 4 * MIB).unwrap();
    // One vCPU on one CPU: the kernel's pages are shared with the module, the rest copied.
    let cow = parts.cow.as_ref().unwrap();
    assert_eq!((cow.ipa.start, cow.ipa.size(), cow.module.start()), (RAM0_BASE, KERNEL_LEN, KERNEL));
    let entry = u64::from_le_bytes(b.fake.peek(cow.tables[0].start() + 3 * 8, 8).try_into().unwrap());
    assert_eq!(entry & crate::pgtable::OA_MASK, KERNEL + 0x3000, "read-only from the module");
    assert!(loaded.copied < 4096, "only the device tree is copied: {}", loaded.copied);
    // The device tree describes the domain.
    let dtb = b.fake.peek(ram.start() + (parts.entry.1 - RAM0_BASE), 4096);
    let fdt = crate::fdt::Fdt::new(&dtb[..crate::fdt::Fdt::peek_total_size(&dtb).unwrap()]).unwrap();
    let chosen = fdt.find("/chosen").unwrap();
    assert_eq!(chosen.property("bootargs").and_then(|p| p.as_str()), Some("console=ttyAMA0"));
    assert!(chosen.property("hyperlaunch,event-log").is_none(), "no role that verifies the launch");
    // A seed for its random number generator, another for the next domain built.
    let seed = chosen.property("rng-seed").map(|p| p.value.to_vec()).unwrap();
    assert_eq!(seed.len(), crate::entropy::SEED_BYTES);
    assert_ne!(Some(seed), b.fake.rng_seed(1).map(|s| s.to_vec()));
    // Memory taken: the RAM and the stage-2 tables.
    let tables = parts.tables.len() as u64 * 4096;
    assert!(tables >= 3 * 4096, "root, level 2 and the kernel's level 3");
    assert_eq!(b.pool.free_bytes(), free - 4 * MIB - tables);
    let root = parts.vttbr & crate::pgtable::OA_MASK;
    assert!(parts.tables.iter().any(|t| t.start() == root));
}

#[test]
fn without_kernel_sharing_a_domain_copies_its_kernel_and_maps_blocks() {
    let mut b = bench();
    let host = HostFacts { kernel_sharing: false, ..facts(&b) };
    let mut load = vec![0u32; 4];
    let cfg = config(Range { start: KERNEL, end: KERNEL + KERNEL_LEN }, 4096);
    let (parts, loaded) = build(&*b.fake, &cfg, 1, &mut b.pool, &mut load, &host, None).unwrap();
    assert!(parts.cow.is_none(), "no page shared with the module");
    assert!(loaded.copied >= KERNEL_LEN, "the kernel is copied: {}", loaded.copied);
    let ram = parts.ram.host(RAM0_BASE, KERNEL_LEN).unwrap();
    assert_eq!(b.fake.peek(ram.start(), KERNEL_LEN as usize), b.fake.peek(KERNEL, KERNEL_LEN as usize));
    // Root and one level-2 table: the RAM is 2 MiB blocks, no level-3 table.
    assert_eq!(parts.tables.len(), 2, "{:x?}", parts.tables);
}

#[test]
fn block_shares_are_rounded_down() {
    use super::build::block_share;
    assert_eq!(block_share(4 * MIB, 4 * MIB), "100.0%");
    assert_eq!(block_share(4 * MIB - 4096, 4 * MIB), "99.9%");
    assert_eq!(block_share(0, 4 * MIB), "0.0%");
    assert_eq!(block_share(0, 0), "0.0%");
}

#[test]
fn domains_that_verify_the_launch_get_the_event_log() {
    let mut b = bench();
    let host = facts(&b);
    let mut load = vec![0u32; 4];
    let mut cfg = config(Range { start: KERNEL, end: KERNEL + KERNEL_LEN }, 4096);
    cfg.permissions = Permissions(Permissions::CONTROL);
    let (parts, _) = build(&*b.fake, &cfg, 1, &mut b.pool, &mut load, &host, None).unwrap();
    let ram = parts.ram.host(RAM0_BASE, 4 * MIB).unwrap();
    let dtb = b.fake.peek(ram.start() + (parts.entry.1 - RAM0_BASE), 4096);
    let fdt = crate::fdt::Fdt::new(&dtb[..crate::fdt::Fdt::peek_total_size(&dtb).unwrap()]).unwrap();
    let log = fdt.find("/chosen").unwrap().property("hyperlaunch,event-log").map(|p| p.value);
    assert_eq!(log, Some(&b"LOG"[..]));
    // A Boot Domain cannot write the log into another domain's tree.
    assert_eq!(
        crate::guest_dtb::DtAddition::parse(b"/chosen\0hyperlaunch,event-log\0forged"),
        Err(crate::guest_dtb::AdditionError::Name)
    );
}

#[test]
fn a_domain_that_fails_gives_back_everything() {
    let mut b = bench();
    let host = facts(&b);
    let free = b.pool.free_bytes();
    let mut load = vec![0u32; 4];
    type Expect = fn(&BuildError) -> bool;
    let cases: [(DomainConfig, Expect); 4] = [
        (config(Range { start: KERNEL, end: KERNEL + KERNEL_LEN }, 64 * 1024), |e| {
            matches!(e, BuildError::NoMemory { .. })
        }),
        (config(Range { start: GZIP, end: GZIP + 26 }, 4096), |e| matches!(e, BuildError::Gzip(_))),
        (config(Range { start: KERNEL + 0x1000, end: KERNEL + 0x2000 }, 4096), |e| {
            matches!(e, BuildError::Kernel(_))
        }),
        (config(Range { start: BASE + 8 * MIB, end: BASE + 9 * MIB }, 4096), |e| {
            matches!(e, BuildError::NoModule(_))
        }),
    ];
    for (cfg, expect) in cases {
        let e = build(&*b.fake, &cfg, 1, &mut b.pool, &mut load, &host, None).err().unwrap();
        assert!(expect(&e), "{e}");
        assert_eq!(b.pool.free_bytes(), free, "after {e}");
        assert_eq!(load, [0, 0, 0, 0], "no CPU taken after {e}");
    }
    // A domain whose partial device tree claims what it may not: refused, by name.
    let mut refusing = facts(&b);
    refusing.refused = vec![(1, String::from("/passthrough/x@0: xen,reg overlaps RAM"))];
    let cfg = config(Range { start: KERNEL, end: KERNEL + KERNEL_LEN }, 4096);
    let e = build(&*b.fake, &cfg, 1, &mut b.pool, &mut load, &refusing, None).err().unwrap();
    assert_eq!(e.to_string(), "partial device tree: /passthrough/x@0: xen,reg overlaps RAM");
    assert_eq!(b.pool.free_bytes(), free);
    // A partial device tree that is no device tree: the RAM taken is given back.
    let mut cfg = config(Range { start: KERNEL, end: KERNEL + KERNEL_LEN }, 4096);
    cfg.device_tree = Some(Module {
        kind: ModuleKind::DeviceTree,
        range: Range { start: KERNEL, end: KERNEL + 64 },
        node: String::new(),
    });
    assert!(matches!(
        build(&*b.fake, &cfg, 1, &mut b.pool, &mut load, &host, None),
        Err(BuildError::Passthrough(_))
    ));
    assert_eq!(b.pool.free_bytes(), free);
}

#[test]
fn vmids_beyond_the_cpus_width_are_refused() {
    let mut b = bench();
    let mut host = facts(&b);
    let free = b.pool.free_bytes();
    let mut load = vec![0u32; 4];
    let cfg = config(Range { start: KERNEL, end: KERNEL + KERNEL_LEN }, 4096);
    // 8-bit VMIDs: the 256th domain would share VMID 0 with nobody and wrap onto others.
    for vmid in [256u16, 0, u16::MAX] {
        let e = build(&*b.fake, &cfg, vmid, &mut b.pool, &mut load, &host, None).err().unwrap();
        assert!(matches!(e, BuildError::NoVmid { bits: 8 }), "VMID {vmid}: {e}");
        assert_eq!(e.to_string(), "no VMID left: the CPU has 8-bit VMIDs, for 255 domains at most");
        assert_eq!(b.pool.free_bytes(), free);
    }
    let (parts, _) = build(&*b.fake, &cfg, 255, &mut b.pool, &mut load, &host, None).unwrap();
    assert_eq!(parts.vttbr >> 48, 255);
    // 16-bit VMIDs: 256 fits.
    host.vmid_bits = 16;
    let (parts, _) = build(&*b.fake, &cfg, 256, &mut b.pool, &mut load, &host, None).unwrap();
    assert_eq!(parts.vttbr >> 48, 256);
}

#[test]
fn a_device_interrupt_the_host_gic_does_not_have_is_refused() {
    use vm_fdt::FdtWriter;
    // The host: a GPIO controller with SPI 7 (INTID 39). The domain's partial device tree
    // gives it that controller, on a host whose GIC has only 4 SPIs (INTID 32 to 35).
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let n = w.begin_node("pl061@9030000").unwrap();
    w.property_array_u64("reg", &[0x903_0000, 0x1000]).unwrap();
    w.property_array_u32("interrupts", &[0, 7, 4]).unwrap();
    w.end_node(n).unwrap();
    w.end_node(root).unwrap();
    let host_dtb = w.finish().unwrap();
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    let pt = w.begin_node("passthrough").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let n = w.begin_node("gpio@9030000").unwrap();
    w.property_array_u32("xen,reg", &[0, 0x903_0000, 0, 0x1000, 0, 0x903_0000]).unwrap();
    w.property_string("xen,path", "/pl061@9030000").unwrap();
    w.end_node(n).unwrap();
    w.end_node(pt).unwrap();
    w.end_node(root).unwrap();
    let partial = w.finish().unwrap();
    let mut b = bench();
    const PARTIAL: u64 = BASE + 0x3_0000;
    b.fake.poke(PARTIAL, &partial);
    b.reserved.push(mem(PARTIAL, 0x1000));
    let mut host = facts(&b);
    host.dtb = alloc::boxed::Box::leak(host_dtb.into_boxed_slice());
    let mut cfg = config(Range { start: KERNEL, end: KERNEL + KERNEL_LEN }, 4096);
    cfg.device_tree = Some(Module {
        kind: ModuleKind::DeviceTree,
        range: Range { start: PARTIAL, end: PARTIAL + 0x1000 },
        node: String::new(),
    });
    let free = b.pool.free_bytes();
    let mut load = vec![0u32; 4];
    host.gic_spis = 4;
    let e = build(&*b.fake, &cfg, 1, &mut b.pool, &mut load, &host, None).err().unwrap();
    assert_eq!(
        e.to_string(),
        "partial device tree: INTID 39 is beyond the host GIC's 4 SPIs (INTID 32 to 35)"
    );
    assert_eq!(b.pool.free_bytes(), free);
    // With a GIC of 32 SPIs it is given and forwarded.
    host.gic_spis = 32;
    let (parts, _) = build(&*b.fake, &cfg, 1, &mut b.pool, &mut load, &host, None).unwrap();
    assert_eq!(parts.forwarded, [39]);
}

#[test]
fn a_built_domain_s_ram_is_left_to_scrub_before_it_runs() {
    let mut b = bench();
    // Whatever the free memory held before: a domain must never see it.
    for at in (FREE.start..FREE.end).step_by((MIB / 2) as usize) {
        b.fake.poke(at + 0x800, &[0xa5; 64]);
    }
    let host = HostFacts { kernel_sharing: false, ..facts(&b) };
    let mut load = vec![0u32; 4];
    let cfg = config(Range { start: KERNEL, end: KERNEL + KERNEL_LEN }, 4096);
    let (mut parts, loaded) = build(&*b.fake, &cfg, 1, &mut b.pool, &mut load, &host, None).unwrap();
    let ram = parts.ram.host(RAM0_BASE, 4 * MIB).unwrap();
    let dtb_off = parts.entry.1 - RAM0_BASE;
    let dtb_len = crate::fdt::Fdt::peek_total_size(&b.fake.peek(ram.start() + dtb_off, 64)).unwrap() as u64;
    // Everything but the images is left for the CPU that runs it, not zeroed by the build.
    assert_eq!(parts.scrub.left_bytes(), 4 * MIB - loaded.copied);
    assert_eq!(loaded.copied, KERNEL_LEN + dtb_len);
    // Pages of it outside the kernel and the device tree with a byte of what was there.
    let dirty = |b: &Bench| {
        (0..4 * MIB / 4096)
            .map(|p| p * 4096)
            .filter(|&o| o >= KERNEL_LEN && (o + 4096 <= dtb_off || o >= dtb_off + dtb_len))
            .filter(|&o| b.fake.peek(ram.start() + o, 4096).contains(&0xa5))
            .count()
    };
    assert!(dirty(&b) > 0, "the build itself zeroes nothing but what it writes");
    let kernel = b.fake.peek(ram.start(), KERNEL_LEN as usize);
    let dtb = b.fake.peek(ram.start() + dtb_off, dtb_len as usize);
    // Zeroed in pieces within a budget: here, all of it at once.
    assert!(parts.scrub.step(&*b.fake, u64::MAX));
    assert_eq!(parts.scrub.bytes, 4 * MIB - loaded.copied);
    assert_eq!(dirty(&b), 0);
    assert_eq!(b.fake.peek(ram.start(), KERNEL_LEN as usize), kernel, "the kernel is kept");
    assert_eq!(b.fake.peek(ram.start() + dtb_off, dtb_len as usize), dtb, "the device tree is kept");
}
