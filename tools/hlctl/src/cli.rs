//! The command line: what each word means, and running a parsed command.

use std::fs::File;
use std::io::Read;

use hyperlaunch_abi as abi;

use crate::ops::{self, Conduit, Error, Part};

pub const USAGE: &str = "\
usage: hlctl list
       hlctl info ID
       hlctl create CONFIG.dts|CONFIG.dtb --kernel FILE [--ramdisk FILE] [--dtb FILE] [--paused]
       hlctl pause|unpause|destroy|restart ID
       hlctl free
exit status: 0 done, 1 refused by the hypervisor, 2 bad command line, 3 device or file error
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    List,
    Info(u16),
    Free,
    Domctl(u32, u16),
    Create {
        config: String,
        kernel: Option<String>,
        ramdisk: Option<String>,
        dtb: Option<String>,
        paused: bool,
    },
}

fn domid(s: Option<&String>) -> Result<u16, Error> {
    let s = s.ok_or_else(|| Error::Usage("a domain id is needed".into()))?;
    s.parse().map_err(|_| Error::Usage(format!("'{s}' is not a domain id")))
}

pub fn parse(args: &[String]) -> Result<Command, Error> {
    let mut it = args.iter();
    let cmd = it.next().map(String::as_str).unwrap_or("help");
    let c = match cmd {
        "help" | "-h" | "--help" => Command::Help,
        "list" => Command::List,
        "free" => Command::Free,
        "info" => Command::Info(domid(it.next())?),
        "pause" => Command::Domctl(abi::HL_DOMCTL_PAUSE, domid(it.next())?),
        "unpause" => Command::Domctl(abi::HL_DOMCTL_UNPAUSE, domid(it.next())?),
        "destroy" => Command::Domctl(abi::HL_DOMCTL_DESTROY, domid(it.next())?),
        "restart" => Command::Domctl(abi::HL_DOMCTL_RESTART, domid(it.next())?),
        "create" => {
            let (mut config, mut kernel, mut ramdisk, mut dtb, mut paused) = (None, None, None, None, false);
            while let Some(a) = it.next() {
                let mut value = |what: &str| {
                    it.next().cloned().ok_or_else(|| Error::Usage(format!("{what} needs a file")))
                };
                match a.as_str() {
                    "--kernel" => kernel = Some(value("--kernel")?),
                    "--ramdisk" => ramdisk = Some(value("--ramdisk")?),
                    "--dtb" => dtb = Some(value("--dtb")?),
                    "--paused" => paused = true,
                    f if f.starts_with("--") => return Err(Error::Usage(format!("unknown option {f}"))),
                    f if config.is_none() => config = Some(f.to_string()),
                    f => return Err(Error::Usage(format!("unexpected '{f}'"))),
                }
            }
            let config = config.ok_or_else(|| Error::Usage("create needs a configuration file".into()))?;
            if kernel.is_none() {
                return Err(Error::Usage("create needs --kernel FILE".into()));
            }
            return Ok(Command::Create { config, kernel, ramdisk, dtb, paused });
        }
        other => return Err(Error::Usage(format!("unknown command '{other}'"))),
    };
    match it.next() {
        Some(extra) => Err(Error::Usage(format!("unexpected '{extra}'"))),
        None => Ok(c),
    }
}

fn open(path: &str) -> Result<(u64, Box<dyn Read>), Error> {
    let f = File::open(path).map_err(|e| Error::Io(format!("{path}: {e}")))?;
    let len = f.metadata().map_err(|e| Error::Io(format!("{path}: {e}")))?.len();
    Ok((len, Box::new(f)))
}

pub fn run(c: &mut dyn Conduit, cmd: Command) -> Result<String, Error> {
    match cmd {
        Command::Help => Ok(USAGE.into()),
        Command::List => ops::list(c),
        Command::Info(id) => ops::show(c, id),
        Command::Free => {
            let (bytes, exist, most) = ops::free(c)?;
            Ok(format!("free memory: {} KiB; {exist} of {most} domain slots in use\n", bytes >> 10))
        }
        Command::Domctl(fid, id) => {
            ops::domctl(c, fid, id)?;
            let done = match fid {
                abi::HL_DOMCTL_PAUSE => "paused",
                abi::HL_DOMCTL_UNPAUSE => "unpaused",
                abi::HL_DOMCTL_DESTROY => "destroyed",
                _ => "restarted",
            };
            Ok(format!("DOM{id} {done}\n"))
        }
        Command::Create { config, kernel, ramdisk, dtb, paused } => {
            // Refused before any file is read when the domain cannot create.
            if c.window().1 == 0 {
                return Err(ops::no_window());
            }
            let raw = std::fs::read(&config).map_err(|e| Error::Io(format!("{config}: {e}")))?;
            let blob = crate::dts::compile(&raw).map_err(|e| Error::Usage(format!("{config}: {e}")))?;
            let mut parts = vec![Part {
                kind: abi::PART_CONFIG,
                size: blob.len() as u64,
                bytes: Box::new(std::io::Cursor::new(blob)),
            }];
            for (kind, file) in
                [(abi::PART_KERNEL, kernel), (abi::PART_RAMDISK, ramdisk), (abi::PART_DTB, dtb)]
            {
                if let Some(f) = file {
                    let (size, bytes) = open(&f)?;
                    parts.push(Part { kind, size, bytes });
                }
            }
            let id = ops::create(c, parts, paused)?;
            Ok(format!("DOM{id} created{}\n", if paused { " (paused)" } else { "" }))
        }
    }
}
