//! Host tests of what domains share: static shared memory (Xen's binding) and network links.

use alloc::vec;
use alloc::vec::Vec;

use super::*;

/// A shared-memory node (the domain node has one address and one size cell).
fn shm(id: &str, cells: Vec<u32>, role: Option<&'static str>) -> N {
    let mut s = n(&format!("shm-{id}"))
        .p("compatible", V::Str("xen,domain-shared-memory-v1"))
        .p("xen,shm-id", V::Str(Box::leak(alloc::string::String::from(id).into_boxed_str())))
        .p("xen,shared-mem", V::Cells(cells));
    if let Some(r) = role {
        s = s.p("role", V::Str(r));
    }
    s
}

/// Two domains sharing `a` and `b` (their shm nodes), with explicit ids 1 and 2.
fn pair(a: N, b: N) -> Vec<u8> {
    host(lcm(vec![dom(1).p("domid", V::U32(1)).c(a), dom(2).p("domid", V::U32(2)).c(b)]))
}

const REGION: [u32; 3] = [0x7000_0000, 0x1000_0000, 0x20_0000];

#[test]
fn static_shared_memory_is_read_planned_and_kept_from_free_memory() {
    let blob = pair(
        shm("ring", REGION.to_vec(), Some("owner")),
        shm("ring", vec![0x7000_0000, 0x2000_0000, 0x20_0000], None),
    );
    let (platform, cfg) = crate::config::parse_blob(&blob).unwrap();
    let (a, b) = (&cfg.domains[0].shm[0], &cfg.domains[1].shm[0]);
    assert_eq!(
        (a.id.as_str(), a.host, a.guest, a.role),
        ("ring", Range::at(0x7000_0000, 0x20_0000).unwrap(), 0x1000_0000, shm::Role::Owner)
    );
    assert_eq!((b.guest, b.role), (0x2000_0000, shm::Role::Unstated));
    let plan = Plan::lines(&cfg);
    assert!(
        plan.iter()
            .any(|l| l == "    shared memory \"ring\" [0x70000000, 0x70200000) at guest 0x10000000 (owner)"),
        "{plan:?}"
    );
    let free = platform.memory.free().unwrap();
    assert!(!free.iter().any(|r| r.overlaps(&a.host)), "never handed out");
    // The dom0less format takes the same nodes.
    let chosen = n("chosen").c(domu("domU1").c(shm(
        "x",
        vec![0, 0x7000_0000, 0, 0x1000_0000, 0x10_0000],
        Some("borrower"),
    )));
    let cfg = parse(&host(chosen)).unwrap();
    assert_eq!(cfg.domains[0].shm[0].role, shm::Role::Borrower);
}

#[test]
fn shared_memory_errors_are_named() {
    let other = |cells: Vec<u32>| shm("other", cells, None);
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            pair(
                shm("0123456789abcdef", REGION.to_vec(), None),
                other(vec![0x7100_0000, 0x1000_0000, 0x1000]),
            ),
            "bad-value",
            "1 to 15 characters",
        ),
        (
            pair(shm("a", vec![0x1000_0000, 0x1000], None), other(vec![0x7100_0000, 0x1000_0000, 0x1000])),
            "malformed-property",
            "the host address must be given",
        ),
        (
            pair(
                shm("a", vec![0x7000_0100, 0x1000_0000, 0x1000], None),
                other(vec![0x7100_0000, 0x1000_0000, 0x1000]),
            ),
            "bad-value",
            "page-aligned",
        ),
        (
            pair(shm("a", REGION.to_vec(), None), shm("a", vec![0x7100_0000, 0x1000_0000, 0x20_0000], None)),
            "shared-memory",
            "one id, one region",
        ),
        (
            pair(shm("a", REGION.to_vec(), None), shm("b", vec![0x7010_0000, 0x1000_0000, 0x1000], None)),
            "shared-memory",
            "overlaps region 'a'",
        ),
        (
            pair(shm("a", REGION.to_vec(), Some("owner")), shm("a", REGION.to_vec(), Some("owner"))),
            "shared-memory",
            "a second owner",
        ),
        (
            pair(
                shm("a", vec![0x7000_0000, 0x4100_0000, 0x1000], None),
                other(vec![0x7100_0000, 0x1000_0000, 0x1000]),
            ),
            "shared-memory",
            "overlaps the domain's RAM",
        ),
        (
            pair(
                shm("a", vec![0x9000_0000, 0x1000_0000, 0x1000], None),
                other(vec![0x7100_0000, 0x1000_0000, 0x1000]),
            ),
            "outside-ram",
            "shared memory",
        ),
        (
            pair(
                shm("a", vec![0x4900_0000, 0x1000_0000, 0x1000], None),
                other(vec![0x7100_0000, 0x1000_0000, 0x1000]),
            ),
            "shared-memory",
            "overlaps module",
        ),
        (
            pair(shm("a", REGION.to_vec(), Some("lender")), other(vec![0x7100_0000, 0x1000_0000, 0x1000])),
            "bad-value",
            "expected \"owner\" or \"borrower\"",
        ),
    ];
    for (blob, rule, text) in cases {
        let e = err(&blob);
        assert_eq!(e.name(), rule, "{e}");
        assert!(e.to_string().contains(text), "{rule}: {e}");
    }
}

fn link(a: u32, b: u32) -> N {
    n("link@0").p("compatible", V::Str("hyperlaunch,net-link")).p("domains", V::Cells(vec![a, b]))
}

#[test]
fn links_are_read_planned_and_checked() {
    let with = |extra: N| {
        let chosen = lcm(vec![
            dom(1).p("domid", V::U32(1)),
            dom(2).p("domid", V::U32(2)),
            dom(3).p("domid", V::U32(0x7ff5)).p("functions", V::U32(Functions::BOOT)),
        ]);
        let mut hv = chosen.kids[0].clone();
        hv = hv.c(extra);
        n("chosen").c(hv)
    };
    let cfg = parse(&host(with(link(1, 2)))).unwrap();
    assert_eq!(
        cfg.links,
        vec![LinkConfig {
            node: "/chosen/hypervisor/link@0".into(),
            ends: [1, 2],
            kind: crate::virtio::net::Kind::Net
        }]
    );
    assert_eq!(cfg.links_of(2), vec![(0, 1)]);
    assert!(
        Plan::lines(&cfg)
            .iter()
            .any(|l| l == "link: domain 1 <-> domain 2 (virtio-net, /chosen/hypervisor/link@0)")
    );
    let cases: Vec<(N, &str, &str)> = vec![
        (link(1, 9), "link-unknown-domain", "names domain 9"),
        (link(2, 2), "bad-value", "both ends are domain 2"),
        (link(1, 0x7ff5), "bad-value", "is the Boot Domain"),
        (link(1, 0x10000), "bad-value", "domain ids are 0 to 0x7fff"),
        (
            n("link@0").p("compatible", V::Str("hyperlaunch,net-link")).p("domains", V::Cells(vec![1])),
            "malformed-property",
            "expected two domain ids",
        ),
        (n("link@0").p("compatible", V::Str("hyperlaunch,net-link")), "missing-property", "domains"),
    ];
    for (node, rule, text) in cases {
        let e = err(&host(with(node)));
        assert_eq!(e.name(), rule, "{e}");
        assert!(e.to_string().contains(text), "{rule}: {e}");
    }
    // A console link.
    let node =
        n("link@0").p("compatible", V::Str("hyperlaunch,console-link")).p("domains", V::Cells(vec![2, 1]));
    let cfg = parse(&host(with(node))).unwrap();
    assert_eq!((cfg.links[0].ends, cfg.links[0].kind), ([2, 1], crate::virtio::net::Kind::Console));
    assert!(
        Plan::lines(&cfg)
            .iter()
            .any(|l| l == "link: domain 2 <-> domain 1 (virtio-console, /chosen/hypervisor/link@0)")
    );
    // Five links on one domain.
    let mut hv = lcm(vec![dom(1).p("domid", V::U32(1)), dom(2).p("domid", V::U32(2))]).kids[0].clone();
    for k in 0..5 {
        hv = hv.c(n(&format!("link@{k}"))
            .p("compatible", V::Str("hyperlaunch,net-link"))
            .p("domains", V::Cells(vec![1, 2])));
    }
    let e = err(&host(n("chosen").c(hv)));
    assert!(e.to_string().contains("an end of 5 links, at most 4"), "{e}");
}
