//! The control device as Linux user space reaches it: found in the domain's device tree
//! (`/proc/device-tree/hyperlaunch-control@…`), its registers and control window mapped
//! from `/dev/mem` (a region no Linux driver claims, which `STRICT_DEVMEM` allows), every
//! access 64-bit and volatile (Linux maps it as device memory).

use std::fs;
use std::path::Path;

use hyperlaunch_abi as abi;

use crate::ops::{Conduit, Error};

/// The device's registers (address, size), and its control window if it has one.
pub type Reg = ((u64, u64), Option<(u64, u64)>);

/// The device's `reg` property read.
pub fn parse_reg(reg: &[u8]) -> Option<Reg> {
    if reg.len() != 16 && reg.len() != 32 {
        return None;
    }
    let w: Vec<u64> = reg.chunks(8).map(|c| u64::from_be_bytes(c.try_into().unwrap_or([0; 8]))).collect();
    Some(((w[0], w[1]), (w.len() == 4).then(|| (w[2], w[3]))))
}

/// The device's `reg` from the device tree under `root` (`/proc/device-tree`).
pub fn find(root: &Path) -> Result<Reg, Error> {
    let no = || {
        Error::Io(format!(
            "no hyperlaunch control device in {} (not running under hyperlaunch, or a direct-mapped domain)",
            root.display()
        ))
    };
    let dir = fs::read_dir(root).map_err(|_| no())?;
    let node = dir
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("hyperlaunch-control@"))
        .ok_or_else(no)?;
    let reg = fs::read(node.path().join("reg"))
        .map_err(|e| Error::Io(format!("{}/reg: {e}", node.path().display())))?;
    parse_reg(&reg)
        .ok_or_else(|| Error::Io(format!("{}/reg: unexpected size {}", node.path().display(), reg.len())))
}

/// The mapped device.
pub struct DevMem {
    regs: *mut u64,
    window: Option<(u64, *mut u64, u64)>,
}

fn map(fd: i32, pa: u64, len: u64) -> Result<*mut u64, Error> {
    // SAFETY: a fresh shared mapping of `len` bytes of /dev/mem at `pa`; the kernel checks
    // the range (STRICT_DEVMEM) and the pointer is only used inside it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            pa as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(Error::Io(format!(
            "mapping /dev/mem at {pa:#x}: {} (is this root, and the kernel's /dev/mem usable?)",
            std::io::Error::last_os_error()
        )));
    }
    Ok(p.cast())
}

impl DevMem {
    pub fn open(((regs, regs_len), window): Reg) -> Result<DevMem, Error> {
        let path = c"/dev/mem";
        // SAFETY: opening a file by a NUL-terminated path.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_SYNC) };
        if fd < 0 {
            return Err(Error::Io(format!("/dev/mem: {}", std::io::Error::last_os_error())));
        }
        let r = map(fd, regs, regs_len).and_then(|r| {
            let w = match window {
                Some((at, len)) => Some((at, map(fd, at, len)?, len)),
                None => None,
            };
            Ok(DevMem { regs: r, window: w })
        });
        // SAFETY: closing the descriptor opened above; the mappings stay.
        unsafe { libc::close(fd) };
        let d = r?;
        if d.reg(abi::CTL_ID) != abi::CTL_MAGIC {
            return Err(Error::Io(format!(
                "the control device at {regs:#x} does not answer as hyperlaunch's"
            )));
        }
        Ok(d)
    }

    fn reg(&self, off: u64) -> u64 {
        // SAFETY: `off` is one of the device's register offsets, inside the 4 KiB mapped.
        unsafe { self.regs.add((off / 8) as usize).read_volatile() }
    }

    fn set(&self, off: u64, v: u64) {
        // SAFETY: as for `reg`.
        unsafe { self.regs.add((off / 8) as usize).write_volatile(v) }
    }
}

impl Conduit for DevMem {
    fn call(&mut self, fid: u32, x: [u64; 4]) -> [u64; 4] {
        for (i, v) in x.iter().enumerate() {
            self.set(abi::CTL_X1 + 8 * i as u64, *v);
        }
        self.set(abi::CTL_CALL, u64::from(fid));
        [0, 1, 2, 3].map(|i| self.reg(abi::CTL_R0 + 8 * i))
    }

    fn window(&self) -> (u64, u64) {
        self.window.map_or((0, 0), |(at, _, len)| (at, len))
    }

    fn window_write(&mut self, data: &[u8]) {
        let Some((_, p, len)) = self.window else { return };
        for (i, c) in data.chunks(8).take((len / 8) as usize).enumerate() {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            // SAFETY: word `i` lies inside the window mapped (`take` bounds it).
            unsafe { p.add(i).write_volatile(u64::from_le_bytes(w)) };
        }
    }

    fn window_read(&mut self, len: usize) -> Vec<u8> {
        let Some((_, p, size)) = self.window else { return Vec::new() };
        let words = len.div_ceil(8).min((size / 8) as usize);
        let mut out = Vec::with_capacity(words * 8);
        for i in 0..words {
            // SAFETY: word `i` lies inside the window mapped.
            out.extend(unsafe { p.add(i).read_volatile() }.to_le_bytes());
        }
        out.truncate(len);
        out
    }
}
