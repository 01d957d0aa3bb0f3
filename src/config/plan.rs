//! The launch plan as text: what the hypervisor logs at boot and `hlcheck` prints.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{DomainConfig, LaunchConfig, Module};

/// The lines of a launch plan.
pub struct Plan;

fn module_line(m: &Module, shared: bool) -> String {
    format!(
        "    {:<11} {:#010x} size {:#x}{}  ({})",
        format!("{}", m.kind),
        m.range.start,
        m.range.size(),
        if shared { " shared" } else { "" },
        m.node
    )
}

fn domain_lines(cfg: &LaunchConfig, d: &DomainConfig, out: &mut Vec<String>) {
    let mut roles = Vec::new();
    if d.is_standby_recovery() {
        roles.push("standby until launch fails");
    }
    if d.direct_map {
        roles.push("direct-mapped");
    }
    if d.vuart {
        roles.push("virtual UART");
    }
    out.push(format!(
        "domain {} ({}): {} vCPU(s), {} MiB{}{}",
        d.domid,
        d.node,
        d.cpus,
        d.memory_kib / 1024,
        if !d.memory_kib.is_multiple_of(1024) {
            format!(" + {} KiB", d.memory_kib % 1024)
        } else {
            String::new()
        },
        if roles.is_empty() { String::new() } else { format!(", {}", roles.join(", ")) }
    ));
    out.push(format!("    permissions {}; functions {}", d.permissions, d.functions));
    for m in d.modules() {
        let shared = cfg.domains.iter().filter(|o| o.modules().any(|x| x.range == m.range)).count() > 1;
        out.push(module_line(m, shared));
    }
    if let Some(args) = &d.bootargs {
        out.push(format!("    bootargs    \"{args}\""));
    }
    for r in &d.static_mem {
        out.push(format!("    static-mem  {r}"));
    }
    for s in &d.shm {
        let role = match s.role {
            super::shm::Role::Owner => "owner",
            super::shm::Role::Borrower => "borrower",
            super::shm::Role::Unstated => "borrower; the hypervisor owns it",
        };
        out.push(format!("    shared memory \"{}\" {} at guest {:#x} ({role})", s.id, s.host, s.guest));
    }
    for a in &d.affinity {
        out.push(format!("    vcpu {} on CPUs mask {:#x}", a.vcpu, a.cpus));
    }
    if let Some(s) = &d.security_id {
        out.push(format!("    security-id \"{s}\""));
    }
}

impl Plan {
    /// The plan, one line per entry, without trailing newlines.
    pub fn lines(cfg: &LaunchConfig) -> Vec<String> {
        let mut out = Vec::new();
        out.push(format!(
            "boot path: {}; {} (domains {} Control)",
            cfg.path,
            if cfg.is_dynamic() { "Dynamic" } else { "Static" },
            if cfg.is_dynamic() { "with" } else { "without" }
        ));
        for d in &cfg.domains {
            domain_lines(cfg, d, &mut out);
        }
        for m in &cfg.hypervisor_modules {
            out.push(format!("hypervisor module:{}", module_line(m, false)));
        }
        match cfg.boot_domain() {
            Some(b) => out
                .push(format!("boot domain: {} runs first (time limit {} ms)", b.domid, cfg.boot_timeout_ms)),
            None => out.push(String::from("boot domain: none (straight to launch finalization)")),
        }
        if cfg.measure == crate::measure::Policy::Required {
            out.push(String::from(
                "measured launch: required (no domain starts unless the TPM records the launch)",
            ));
        }
        match cfg.console_domain() {
            Some((d, true)) => out.push(format!("console: domain {}", d.domid)),
            Some((d, false)) => out.push(format!("console: domain {} (first with a virtual UART)", d.domid)),
            None => out.push(String::from("console: the hypervisor (no domain has a virtual UART)")),
        }
        if cfg.kernel_sharing {
            out.push(String::from(
                "kernel sharing: copy-on-write (one-CPU domains map a kernel module in place, 4 KiB pages)",
            ));
        }
        if !cfg.console_switch {
            out.push(String::from("console switching (Ctrl-A x3): disabled"));
        }
        for l in &cfg.links {
            let what = match l.kind {
                crate::virtio::net::Kind::Net => "virtio-net",
                crate::virtio::net::Kind::Console => "virtio-console",
            };
            out.push(format!("link: domain {} <-> domain {} ({what}, {})", l.ends[0], l.ends[1], l.node));
        }
        let ids: Vec<(u16, u32)> = cfg.domains.iter().map(|d| (d.domid, d.functions.0)).collect();
        if let Some(p) = crate::store::Plan::new(&ids) {
            out.push(format!(
                "store: domain {} serves {:?} (a ring page and doorbells each)",
                p.server,
                p.clients()
            ));
            if !p.unserved.is_empty() {
                out.push(format!("store: no slot left for {:?}", p.unserved));
            }
        }
        out
    }
}
