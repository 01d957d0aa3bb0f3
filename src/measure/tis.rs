//! The TPM's FIFO interface (TCG PC Client Platform TPM Profile, "TIS"), locality 0, over
//! whatever reaches its registers ([`Bus`]): the arch layer's MMIO on hardware, a model in
//! host tests. Every wait has a time limit: a TPM that does not answer costs at most a few
//! seconds, never a hang.

use alloc::vec::Vec;

use super::tpm::MAX_RESPONSE;

/// Register offsets (locality 0).
pub const ACCESS: usize = 0x00;
pub const STS: usize = 0x18;
pub const DATA_FIFO: usize = 0x24;
pub const DID_VID: usize = 0xf00;

pub const ACCESS_VALID: u8 = 0x80;
pub const ACCESS_ACTIVE: u8 = 0x20;
pub const ACCESS_REQUEST_USE: u8 = 0x02;

pub const STS_VALID: u32 = 0x80;
pub const STS_COMMAND_READY: u32 = 0x40;
pub const STS_GO: u32 = 0x20;
pub const STS_DATA_AVAIL: u32 = 0x10;
pub const STS_EXPECT: u32 = 0x08;

/// Time limits (the profile's TIMEOUT_A and TIMEOUT_B, and a command's longest run).
const TIMEOUT_A_US: u64 = 750_000;
const TIMEOUT_B_US: u64 = 2_000_000;
const COMMAND_US: u64 = 5_000_000;

/// The TPM's registers, and a clock.
pub trait Bus {
    fn read8(&mut self, off: usize) -> u8;
    fn write8(&mut self, off: usize, v: u8);
    fn read32(&mut self, off: usize) -> u32;
    /// Microseconds from some fixed point.
    fn now_us(&mut self) -> u64;
}

/// How a command failed in transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TisError {
    /// No TPM answers at the address (registers read as all ones or zero).
    Absent,
    /// Locality 0 was not granted in time.
    Locality,
    /// The TPM did not become ready for a command.
    NotReady,
    /// It stopped expecting bytes before the command ended, or still expects after.
    Expect,
    /// The command did not complete in time.
    Timeout,
    /// The response's header is malformed or larger than the launch reads.
    Response,
}

impl core::fmt::Display for TisError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            TisError::Absent => "no TPM answers at its address",
            TisError::Locality => "locality 0 not granted in time",
            TisError::NotReady => "not ready for a command in time",
            TisError::Expect => "did not take the command as sent",
            TisError::Timeout => "command did not complete in time",
            TisError::Response => "malformed response",
        })
    }
}

/// Waits until `ready` holds, for at most `limit_us`.
fn wait<B: Bus + ?Sized>(bus: &mut B, limit_us: u64, mut ready: impl FnMut(&mut B) -> bool) -> bool {
    let start = bus.now_us();
    loop {
        if ready(bus) {
            return true;
        }
        if bus.now_us().saturating_sub(start) > limit_us {
            return false;
        }
        core::hint::spin_loop();
    }
}

fn burst<B: Bus + ?Sized>(bus: &mut B) -> usize {
    ((bus.read32(STS) >> 8) & 0xffff) as usize
}

/// Sends one command at locality 0 and returns its response. The locality is requested
/// first and given up after, whatever happens.
pub fn transact<B: Bus + ?Sized>(bus: &mut B, cmd: &[u8]) -> Result<Vec<u8>, TisError> {
    let access = bus.read8(ACCESS);
    if access == 0xff || access & ACCESS_VALID == 0 && bus.read32(DID_VID).wrapping_add(1) <= 1 {
        return Err(TisError::Absent);
    }
    bus.write8(ACCESS, ACCESS_REQUEST_USE);
    let granted = wait(bus, TIMEOUT_A_US, |b| {
        let a = b.read8(ACCESS);
        a & (ACCESS_VALID | ACCESS_ACTIVE) == ACCESS_VALID | ACCESS_ACTIVE
    });
    if !granted {
        return Err(TisError::Locality);
    }
    let r = exchange(bus, cmd);
    // Idle again, and the locality given up.
    bus.write8(STS, STS_COMMAND_READY as u8);
    bus.write8(ACCESS, ACCESS_ACTIVE);
    r
}

fn exchange<B: Bus + ?Sized>(bus: &mut B, cmd: &[u8]) -> Result<Vec<u8>, TisError> {
    bus.write8(STS, STS_COMMAND_READY as u8);
    if !wait(bus, TIMEOUT_B_US, |b| b.read32(STS) & STS_COMMAND_READY != 0) {
        return Err(TisError::NotReady);
    }
    // The command, a burst at a time.
    let mut sent = 0;
    while sent < cmd.len() {
        let mut n = 0;
        if !wait(bus, TIMEOUT_A_US, |b| {
            n = burst(b);
            n > 0
        }) {
            return Err(TisError::Timeout);
        }
        for &byte in &cmd[sent..(sent + n).min(cmd.len())] {
            bus.write8(DATA_FIFO, byte);
        }
        sent = (sent + n).min(cmd.len());
        let mut sts = 0;
        if !wait(bus, TIMEOUT_A_US, |b| {
            sts = b.read32(STS);
            sts & STS_VALID != 0
        }) {
            return Err(TisError::Timeout);
        }
        let expect = sts & STS_EXPECT != 0;
        if expect != (sent < cmd.len()) {
            return Err(TisError::Expect);
        }
    }
    bus.write8(STS, STS_GO as u8);
    let done = STS_VALID | STS_DATA_AVAIL;
    if !wait(bus, COMMAND_US, |b| b.read32(STS) & done == done) {
        return Err(TisError::Timeout);
    }
    // The header says how long the response is.
    let mut resp = Vec::with_capacity(64);
    let mut want = 10;
    while resp.len() < want {
        let mut n = 0;
        if !wait(bus, TIMEOUT_A_US, |b| {
            n = burst(b);
            n > 0 && b.read32(STS) & STS_DATA_AVAIL != 0
        }) {
            return Err(TisError::Response);
        }
        for _ in 0..n.min(want - resp.len()) {
            resp.push(bus.read8(DATA_FIFO));
        }
        if resp.len() >= 10 && want == 10 {
            want = u32::from_be_bytes([resp[2], resp[3], resp[4], resp[5]]) as usize;
            if !(10..=MAX_RESPONSE).contains(&want) {
                return Err(TisError::Response);
            }
        }
    }
    Ok(resp)
}
