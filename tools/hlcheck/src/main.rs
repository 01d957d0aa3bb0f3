//! `hlcheck HOST.DTB`: reads a host device tree the way hyperlaunch does at boot, and prints
//! the boot path and launch plan (exit 0) or the first configuration error (exit 1).
//! `hlcheck --measure ...` predicts the measured launch (see `measure.rs`).

mod measure;
mod passthrough;

use std::process::ExitCode;

use hyperlaunch::config::{self, LaunchConfig, Permissions, Plan};
use hyperlaunch::devices;
use hyperlaunch::fdt::Fdt;
use hyperlaunch::guest::GuestMap;
use hyperlaunch::platform::Platform;

const USAGE: &str = "usage: hlcheck [--roles] [--ram SIZE[@BASE]] HOST.DTB [--module ADDR=FILE]...\n  \
    prints the launch plan of a host device tree (exit 0), or `error: <node>: <problem>` (exit 1)\n  \
    --roles   print only `domid permissions functions` per domain\n  \
    --ram     RAM for a board DTB whose /memory the firmware fills at boot (the Raspberry\n            \
    Pi 4's: reg = <0 0 0>), e.g. --ram 960M or --ram 4G@0 (K, M, G; hex or decimal)\n  \
    --module  a partial device tree (module,device-tree) the configuration names at ADDR,\n            \
    read from FILE and checked as at boot (what it may claim, and against the others)\n\
    usage: ";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--measure") {
        return measure::main(&args[1..]);
    }
    let (mut roles, mut file, mut modules, mut ram) = (false, None, Vec::new(), None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}{}", measure::USAGE);
                return ExitCode::SUCCESS;
            }
            "--roles" => roles = true,
            "--ram" => match it.next().and_then(|r| parse_ram(r)) {
                Some(r) => ram = Some(r),
                None => {
                    eprintln!(
                        "hlcheck: --ram wants SIZE[@BASE], e.g. 960M or 4G@0\n{USAGE}{}",
                        measure::USAGE
                    );
                    return ExitCode::from(2);
                }
            },
            "--module" => match it.next().and_then(|m| measure::parse_module(m)) {
                Some(m) => modules.push(m),
                None => {
                    eprintln!("hlcheck: --module wants ADDR=FILE\n{USAGE}{}", measure::USAGE);
                    return ExitCode::from(2);
                }
            },
            f if !f.starts_with('-') && file.is_none() => file = Some(f.to_string()),
            _ => {
                eprintln!("{USAGE}{}", measure::USAGE);
                return ExitCode::from(2);
            }
        }
    }
    let Some(file) = file else {
        eprintln!("{USAGE}{}", measure::USAGE);
        return ExitCode::from(2);
    };
    let blob = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) => {
            println!("error: {file}: cannot read: {e}");
            return ExitCode::from(1);
        }
    };
    match config::parse_blob_with_ram(&blob, ram) {
        Ok((platform, cfg)) => {
            if roles {
                for d in &cfg.domains {
                    println!("{} {} {}", d.domid, d.permissions, d.functions);
                }
                return ExitCode::SUCCESS;
            }
            let free = platform.memory.free().map(|f| f.total()).unwrap_or(0);
            println!(
                "host: {} CPU(s), {} MiB RAM, {} MiB free before the hypervisor's heap",
                platform.cpu_count,
                platform.memory.ram.total() >> 20,
                free >> 20
            );
            for n in &cfg.notes {
                println!("note: {n}");
            }
            for line in Plan::lines(&cfg) {
                println!("{line}");
            }
            if !passthrough::check(&blob, &cfg, &modules, ram) {
                return ExitCode::from(1);
            }
            hardware_lines(&blob, &platform, &cfg);
            if let Ok(fdt) = Fdt::new(&blob) {
                println!(
                    "measured launch: {}; PCR{} configuration, PCR{} images (hlcheck --measure predicts them)",
                    match hyperlaunch::measure::find_tpm(&fdt) {
                        Ok(Some(r)) => format!("TPM at {:#x}", r.start),
                        Ok(None) => "no TPM, event log only".to_string(),
                        Err(e) => format!("TPM unusable ({e}), event log only"),
                    },
                    hyperlaunch::measure::PCR_CONFIG,
                    hyperlaunch::measure::PCR_IMAGES
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("error: {e} [{}]", e.name());
            ExitCode::from(1)
        }
    }
}

/// The host devices the hardware domain would get (before any partial device tree, which
/// is a boot module and not in the host device tree).
fn hardware_lines(blob: &[u8], platform: &Platform, cfg: &LaunchConfig) {
    let Some(hw) = cfg.domains.iter().find(|d| d.permissions.has(Permissions::HARDWARE)) else { return };
    let Ok(fdt) = Fdt::new(blob) else { return };
    // Direct-mapped: the emulated GIC and UART sit where the host's are, as at boot.
    let console = platform.uart.as_ref().map(|u| u.base);
    let version = platform.gic.map_or(3, |g| g.version());
    let avoid = GuestMap::host(platform.gic, console).windows(hw.cpus, version);
    let h = devices::discover(&fdt, devices::gic_phandle(&fdt), console, &[], &avoid);
    for d in &h.devices {
        let spis: Vec<String> = d.spis.iter().map(|s| s.to_string()).collect();
        println!(
            "hardware: domain {} gets {}{}",
            hw.domid,
            d.path,
            if spis.is_empty() { String::new() } else { format!(" (INTID {})", spis.join(", ")) }
        );
    }
    for (path, why) in &h.skipped {
        println!("hardware: {path} not given: {why}");
    }
}

/// `SIZE[@BASE]` (K, M, G suffixes; hex with 0x) as the RAM range it names.
fn parse_ram(s: &str) -> Option<hyperlaunch::memmap::Range> {
    let num = |t: &str| -> Option<u64> {
        let (digits, shift) = match t.as_bytes().last()? {
            b'K' | b'k' => (&t[..t.len() - 1], 10),
            b'M' | b'm' => (&t[..t.len() - 1], 20),
            b'G' | b'g' => (&t[..t.len() - 1], 30),
            _ => (t, 0),
        };
        let v = match digits.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok()?,
            None => digits.parse().ok()?,
        };
        v.checked_mul(1 << shift)
    };
    let (size, base) = match s.split_once('@') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(s)?, 0),
    };
    (size > 0).then_some(())?;
    hyperlaunch::memmap::Range::at(base, size)
}
