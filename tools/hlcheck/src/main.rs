//! `hlcheck HOST.DTB`: reads a host device tree the way hyperlaunch does at boot, and prints
//! the boot path and launch plan (exit 0) or the first configuration error (exit 1).

use std::process::ExitCode;

use hyperlaunch::config::{self, Plan};

const USAGE: &str = "usage: hlcheck [--roles] HOST.DTB\n  \
    prints the launch plan of a host device tree (exit 0), or `error: <node>: <problem>` (exit 1)\n  \
    --roles  print only `domid permissions functions` per domain";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (roles, file) = match args.as_slice() {
        [f] if !f.starts_with('-') => (false, f),
        [flag, f] if flag == "--roles" && !f.starts_with('-') => (true, f),
        [h] if h == "-h" || h == "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let blob = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            println!("error: {file}: cannot read: {e}");
            return ExitCode::from(1);
        }
    };
    match config::parse_blob(&blob) {
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
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("error: {e} [{}]", e.name());
            ExitCode::from(1)
        }
    }
}
