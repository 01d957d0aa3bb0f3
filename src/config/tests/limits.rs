//! Host tests of the configuration's limits and policies: measured launch, memory and vCPU
//! bounds.

use alloc::vec;

use super::*;

#[test]
fn measured_launch_policy() {
    let cfg = parse(&host(lcm(vec![dom(1)]))).unwrap();
    assert_eq!(cfg.measure, crate::measure::Policy::Optional);
    assert!(!Plan::lines(&cfg).iter().any(|l| l.starts_with("measured launch")));
    let req = |v| {
        let mut c = lcm(vec![dom(1)]);
        c.kids[0] = c.kids[0].clone().p("measured-launch", V::Str(v));
        host(c)
    };
    // Required without a TPM: refused, naming the missing TPM.
    let e = err(&req("required"));
    assert_eq!((e.node.as_str(), e.name()), (P, "no-tpm"));
    assert!(e.to_string().contains("has no TPM (tcg,tpm-tis-mmio)"), "{e}");
    // With one (on a bus, as QEMU virt puts it): accepted, and in the plan.
    let with_tpm = |tpm_reg: Vec<u32>| {
        let mut c = lcm(vec![dom(1)]);
        c.kids[0] = c.kids[0].clone().p("measured-launch", V::Str("required"));
        let bus = n("platform-bus@c000000")
            .p("compatible", V::Strs(vec!["qemu,platform", "simple-bus"]))
            .p("#address-cells", V::U32(1))
            .p("#size-cells", V::U32(1))
            .p("ranges", V::Cells(vec![0, 0, 0xc00_0000, 0x200_0000]))
            .c(n("tpm_tis@0").p("compatible", V::Str("tcg,tpm-tis-mmio")).p("reg", V::Cells(tpm_reg)));
        host_with(c, Some(bus))
    };
    let blob = with_tpm(vec![0, 0x5000]);
    let cfg = parse(&blob).unwrap();
    assert_eq!(cfg.measure, crate::measure::Policy::Required);
    assert!(Plan::lines(&cfg).iter().any(|l| l.starts_with("measured launch: required")));
    let fdt = crate::fdt::Fdt::new(&blob).unwrap();
    assert_eq!(crate::measure::find_tpm(&fdt), Ok(Range::at(0xc00_0000, 0x1000)));
    // A TPM whose registers are not a page-aligned window is no TPM.
    let e = err(&with_tpm(vec![0x10, 0x5000]));
    assert_eq!(e.name(), "no-tpm");
    assert!(e.to_string().contains("not a page-aligned 4 KiB window"), "{e}");
    assert_eq!(parse(&req("optional")).unwrap().measure, crate::measure::Policy::Optional);
    let e = err(&req("yes"));
    assert_eq!((e.node.as_str(), e.name()), (P, "bad-value"));
    assert!(e.to_string().contains("'yes': expected \"required\" or \"optional\""), "{e}");
}

#[test]
fn error_memory_and_vcpu_bounds() {
    // Two domains of 2^63 KiB used to wrap the sum of memory (and KiB to bytes): each is
    // refused, as are 2^40 + 1 KiB; 2^40 KiB is only more than this host has.
    let mem = |kib: u64| dom(1).p("memory", V::Cells(vec![(kib >> 32) as u32, kib as u32]));
    for kib in [1u64 << 63, (1 << 40) + 1] {
        let e = err(&host(lcm(vec![mem(kib), dom(2).p("memory", V::Cells(vec![1 << 31, 0]))])));
        assert_eq!((e.name(), e.node.as_str()), ("bad-value", "/chosen/hypervisor/domain@1"), "{kib}: {e}");
        assert!(e.to_string().contains("more than the 2^40 KiB (1 PiB) a domain may have"), "{e}");
    }
    assert_eq!(err(&host(lcm(vec![mem(1 << 40)]))).name(), "out-of-memory");
    // dom0_max_vcpus: 1 to 64 (a domain's vCPU masks are 64 bits wide).
    let dom0 = |vcpus: &'static str| {
        n("chosen")
            .p("#address-cells", V::U32(2))
            .p("#size-cells", V::U32(1))
            .p("xen,xen-bootargs", V::Str(vcpus))
            .c(mb_kernel(0x4900_0000))
    };
    assert_eq!(parse(&host(dom0("dom0_max_vcpus=64"))).unwrap().domains[0].cpus, 64);
    for bad in ["dom0_max_vcpus=65", "dom0_max_vcpus=1-4294967295", "dom0_max_vcpus=0", "dom0_max_vcpus=2-"] {
        let e = err(&host(dom0(bad)));
        assert_eq!(e.name(), "bad-value", "{bad}");
        assert!(e.to_string().contains("is not a count from 1 to 64"), "{bad}: {e}");
    }
}
