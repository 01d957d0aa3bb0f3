//! `hlcheck --measure HOST.DTB --module ADDR=FILE ...`: the event log and final PCR values
//! the hypervisor will produce for this host device tree and these boot modules, computed
//! offline with its own code (what is measured, in which order, into which PCR).

use std::process::ExitCode;

use hyperlaunch::config;
use hyperlaunch::measure::{self, Source};

pub const USAGE: &str = "hlcheck --measure HOST.DTB [--module ADDR=FILE]... [--log OUT]\n  \
    prints each event (PCR, SHA-256, description) and the final PCR values the launch\n  \
    will extend; HOST.DTB must be the device tree exactly as the loader hands it over;\n  \
    each module the configuration names is read from FILE (padded with zeros to the size\n  \
    the configuration declares); --log writes the binary event log to OUT";

struct Args {
    dtb: String,
    modules: Vec<(u64, String)>,
    log: Option<String>,
}

fn parse_addr(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// `ADDR=FILE` as (address, file).
pub fn parse_module(m: &str) -> Option<(u64, String)> {
    let (addr, file) = m.split_once('=')?;
    Some((parse_addr(addr)?, file.to_string()))
}

fn args(list: &[String]) -> Result<Args, String> {
    let mut a = Args { dtb: String::new(), modules: Vec::new(), log: None };
    let mut it = list.iter();
    while let Some(x) = it.next() {
        match x.as_str() {
            "--module" => {
                let m = it.next().ok_or("--module wants ADDR=FILE")?;
                let (addr, file) = m.split_once('=').ok_or("--module wants ADDR=FILE")?;
                let addr = parse_addr(addr).ok_or_else(|| format!("--module {m}: bad address"))?;
                a.modules.push((addr, file.to_string()));
            }
            "--log" => a.log = Some(it.next().ok_or("--log wants a file")?.clone()),
            f if !f.starts_with('-') && a.dtb.is_empty() => a.dtb = f.to_string(),
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    if a.dtb.is_empty() {
        return Err("no HOST.DTB".into());
    }
    Ok(a)
}

/// Runs `hlcheck --measure` with the arguments after `--measure`.
pub fn main(list: &[String]) -> ExitCode {
    let a = match args(list) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hlcheck: {e}\nusage: {USAGE}");
            return ExitCode::from(2);
        }
    };
    let blob = match std::fs::read(&a.dtb) {
        Ok(b) => b,
        Err(e) => {
            println!("error: {}: cannot read: {e}", a.dtb);
            return ExitCode::from(1);
        }
    };
    let cfg = match config::parse_blob(&blob) {
        Ok((_, cfg)) => cfg,
        Err(e) => {
            println!("error: {e} [{}]", e.name());
            return ExitCode::from(1);
        }
    };
    let items = measure::items(&cfg);
    // Every module the configuration names must be given, and fit its declared range.
    let mut files: Vec<(u64, Vec<u8>)> = Vec::new();
    for it in &items {
        let Source::Module(r) = &it.source else { continue };
        if files.iter().any(|(a, _)| *a == r.start) {
            continue;
        }
        let Some((_, path)) = a.modules.iter().find(|(addr, _)| *addr == r.start) else {
            println!("error: {}: no --module {:#x}=FILE given for it", it.what, r.start);
            return ExitCode::from(1);
        };
        let mut bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                println!("error: {path}: cannot read: {e}");
                return ExitCode::from(1);
            }
        };
        if bytes.len() as u64 > r.size() {
            println!(
                "error: {}: {path} is {} bytes, larger than the {:#x} bytes the configuration declares at {:#x}",
                it.what,
                bytes.len(),
                r.size(),
                r.start
            );
            return ExitCode::from(1);
        }
        if (bytes.len() as u64) < r.size() {
            println!(
                "note: {path} ({} bytes) padded with zeros to the {:#x} bytes declared at {:#x}: the hypervisor hashes the whole declared range",
                bytes.len(),
                r.size(),
                r.start
            );
        }
        bytes.resize(r.size() as usize, 0);
        files.push((r.start, bytes));
    }
    let log = measure::measure(&items, &mut |s| match s {
        Source::HostDtb => measure::sha256(measure::host_dtb(&blob)),
        Source::Module(r) => {
            let f = files.iter().find(|(a, _)| *a == r.start).map(|(_, b)| b.as_slice()).unwrap_or(&[]);
            measure::sha256(f)
        }
    });
    for (i, e) in log.events.iter().enumerate() {
        println!(
            "event {}: PCR{} sha256:{} {}",
            i + 1,
            e.pcr,
            measure::hex(&e.digest),
            String::from_utf8_lossy(&e.data)
        );
    }
    for (pcr, v) in measure::replay(&log.events) {
        println!("PCR{pcr} {}", measure::hex(&v));
    }
    if let Some(out) = a.log
        && let Err(e) = std::fs::write(&out, log.encode())
    {
        println!("error: {out}: cannot write: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
