//! hlctl: hyperlaunch's domain tool for a Linux Control domain. It reaches the hypervisor
//! through the control device in the domain's device tree (see docs/dynamic.md).

mod cli;
mod device;
mod dts;
mod ops;
#[cfg(test)]
mod tests;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hlctl: {e}\n{}", cli::USAGE);
            std::process::exit(e.exit_code());
        }
    };
    if matches!(cmd, cli::Command::Help) {
        print!("{}", cli::USAGE);
        return;
    }
    let run = || -> Result<String, ops::Error> {
        let mut dev = device::DevMem::open(device::find(std::path::Path::new("/proc/device-tree"))?)?;
        cli::run(&mut dev, cmd)
    };
    match run() {
        Ok(out) => print!("{out}"),
        Err(e) => {
            eprintln!("hlctl: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
