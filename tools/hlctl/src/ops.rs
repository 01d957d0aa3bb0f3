//! What each command does, over a [`Conduit`] to the hypervisor (the control device on a
//! real domain, a fake in tests), and how its answer is shown.

use std::fmt::Write as _;
use std::io::Read;

use hyperlaunch_abi as abi;

/// The way to the hypervisor: a call with x1..x4 giving x0..x3, and the control window.
pub trait Conduit {
    fn call(&mut self, fid: u32, x: [u64; 4]) -> [u64; 4];
    /// The control window's guest address and size (0, 0 without one).
    fn window(&self) -> (u64, u64);
    /// Writes `data` at the window's start.
    fn window_write(&mut self, data: &[u8]);
    /// Reads `len` bytes from the window's start.
    fn window_read(&mut self, len: usize) -> Vec<u8>;
}

/// Why a command failed; each has its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The hypervisor refused (code, and its message when it gave one).
    Refused(i64, String),
    /// Bad command line.
    Usage(String),
    /// The control device or a file could not be used.
    Io(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Refused(..) => 1,
            Error::Usage(_) => 2,
            Error::Io(_) => 3,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Refused(code, msg) => {
                let what = match *code {
                    abi::DENIED => "denied: this domain does not hold the Control permission",
                    abi::NOT_SUPPORTED => "not supported by this hypervisor",
                    _ => "refused",
                };
                if msg.is_empty() {
                    write!(f, "{what} (the hypervisor's log says why)")
                } else {
                    write!(f, "{what}: {msg}")
                }
            }
            Error::Usage(m) | Error::Io(m) => f.write_str(m),
        }
    }
}

fn check(r: [u64; 4]) -> Result<[u64; 4], Error> {
    let x0 = r[0] as i64;
    if x0 < 0 { Err(Error::Refused(x0, String::new())) } else { Ok(r) }
}

pub fn state_name(s: u64) -> &'static str {
    match s {
        abi::STATE_PAUSED => "paused (launch)",
        abi::STATE_RUNNING => "running",
        abi::STATE_STOPPED => "stopped",
        abi::STATE_RECLAIMED => "destroyed",
        abi::STATE_CTL_PAUSED => "paused",
        _ => "unknown",
    }
}

fn flags(v: u32, names: &[(u32, &str)]) -> String {
    let mut out: Vec<String> = names.iter().filter(|(b, _)| v & b != 0).map(|(_, n)| n.to_string()).collect();
    let known: u32 = names.iter().map(|(b, _)| b).fold(0, |a, b| a | b);
    if v & !known != 0 {
        out.push(format!("{:#x}", v & !known));
    }
    if out.is_empty() { "-".into() } else { out.join(",") }
}

pub fn permissions(v: u32) -> String {
    flags(v, &[(1, "control"), (2, "hardware")])
}

pub fn functions(v: u32) -> String {
    flags(v, &[(1, "boot"), (2, "recovery"), (4, "console"), (1 << 30, "xenstore"), (1 << 31, "legacy-dom0")])
}

/// One domain as HL_DOMCTL_QUERY reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub domid: u16,
    pub state: u64,
    pub vcpus: u64,
    pub ram: u64,
    pub permissions: u32,
    pub functions: u32,
}

pub fn info(c: &mut dyn Conduit, domid: u16) -> Result<Info, Error> {
    let r = check(c.call(abi::HL_DOMCTL_QUERY, [u64::from(domid), 0, 0, 0]))?;
    Ok(Info {
        domid,
        state: r[1] & 0xff,
        vcpus: (r[1] >> 8) & 0xff,
        ram: r[2],
        permissions: (r[3] >> 32) as u32,
        functions: r[3] as u32,
    })
}

/// Every domain, in the hypervisor's order.
pub fn domains(c: &mut dyn Conduit) -> Result<Vec<Info>, Error> {
    let mut out = Vec::new();
    for index in 0..4096u64 {
        let r = c.call(abi::HL_DOMAIN_INFO, [index, 0, 0, 0]);
        match r[0] as i64 {
            abi::SUCCESS => out.push(info(c, r[1] as u16)?),
            abi::INVALID => break,
            code => return Err(Error::Refused(code, String::new())),
        }
    }
    Ok(out)
}

/// Free memory (bytes), domains that exist, and the most that can.
pub fn free(c: &mut dyn Conduit) -> Result<(u64, u64, u64), Error> {
    let r = check(c.call(abi::HL_DOMCTL_FREE, [0; 4]))?;
    Ok((r[1], r[2], r[3]))
}

fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// `hlctl list`: a table, then free memory.
pub fn list(c: &mut dyn Conduit) -> Result<String, Error> {
    let all = domains(c)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>5}  {:<16} {:>5}  {:>10}  {:<17} FUNCTIONS",
        "ID", "STATE", "VCPUS", "MEMORY", "PERMISSIONS"
    );
    for d in &all {
        let _ = writeln!(
            out,
            "{:>5}  {:<16} {:>5}  {:>10}  {:<17} {}",
            d.domid,
            state_name(d.state),
            d.vcpus,
            mib(d.ram),
            permissions(d.permissions),
            functions(d.functions)
        );
    }
    let (bytes, exist, most) = free(c)?;
    let _ = writeln!(out, "free memory: {}; {exist} of {most} domain slots in use", mib(bytes));
    Ok(out)
}

/// `hlctl info ID`.
pub fn show(c: &mut dyn Conduit, domid: u16) -> Result<String, Error> {
    let d = info(c, domid)?;
    Ok(format!(
        "domid: {}\nstate: {}\nvcpus: {}\nmemory: {}\npermissions: {}\nfunctions: {}\n",
        d.domid,
        state_name(d.state),
        d.vcpus,
        mib(d.ram),
        permissions(d.permissions),
        functions(d.functions)
    ))
}

/// `hlctl pause|unpause|destroy|restart ID`.
pub fn domctl(c: &mut dyn Conduit, fid: u32, domid: u16) -> Result<(), Error> {
    check(c.call(fid, [u64::from(domid), 0, 0, 0])).map(|_| ())
}

/// A domain without a control window cannot create domains.
pub fn no_window() -> Error {
    Error::Refused(abi::DENIED, "no control window in this domain's device tree".into())
}

/// A part of a domain to create: its kind, its size, and where its bytes come from.
pub struct Part<'a> {
    pub kind: u64,
    pub size: u64,
    pub bytes: Box<dyn Read + 'a>,
}

/// `hlctl create`: every part staged through the control window, a window-full per call,
/// then the domain created. Returns its id.
pub fn create(c: &mut dyn Conduit, parts: Vec<Part<'_>>, paused: bool) -> Result<u16, Error> {
    let (window, room) = c.window();
    if room == 0 {
        return Err(no_window());
    }
    let chunk = room.min(1 << 20);
    let mut buf = vec![0u8; chunk as usize];
    for mut p in parts {
        check(c.call(abi::HL_DOMCTL_STAGE, [p.kind, p.size, 0, 0]))?;
        let mut offset = 0u64;
        while offset < p.size {
            let n = (p.size - offset).min(chunk) as usize;
            p.bytes
                .read_exact(&mut buf[..n])
                .map_err(|e| Error::Io(format!("reading part {}: {e}", p.kind)))?;
            c.window_write(&buf[..n]);
            let r = check(c.call(abi::HL_DOMCTL_STAGE_WRITE, [p.kind, offset, window, n as u64]))?;
            if r[0] != n as u64 {
                return Err(Error::Io(format!("the hypervisor took {} of {n} bytes", r[0])));
            }
            offset += n as u64;
        }
    }
    let flags = if paused { abi::CREATE_PAUSED } else { 0 };
    let r = c.call(abi::HL_DOMCTL_CREATE, [flags, window, room.min(4096), 0]);
    match r[0] as i64 {
        abi::SUCCESS => Ok(r[1] as u16),
        code => {
            let raw = c.window_read(r[1].min(4096) as usize);
            let msg = String::from_utf8_lossy(raw.split(|&b| b == 0).next().unwrap_or(&[])).into_owned();
            Err(Error::Refused(code, msg))
        }
    }
}
