//! The three TPM 2.0 commands the launch sends (TPM 2.0 Library, Part 3), encoded and their
//! responses checked: `TPM2_Startup(CLEAR)`, `TPM2_PCR_Extend` with one SHA-256 digest and
//! an empty password session, `TPM2_PCR_Read` of SHA-256 PCRs. Big-endian throughout.

use alloc::vec::Vec;

use super::Digest;
use super::log::ALG_SHA256;
use crate::fdt::be32;

const ST_NO_SESSIONS: u16 = 0x8001;
const ST_SESSIONS: u16 = 0x8002;
const CC_STARTUP: u32 = 0x144;
const CC_PCR_EXTEND: u32 = 0x182;
const CC_PCR_READ: u32 = 0x17e;
const SU_CLEAR: u16 = 0;
/// `TPM_RS_PW`: the password authorization session.
const RS_PW: u32 = 0x4000_0009;
/// `TPM_RC_INITIALIZE`: Startup was sent already (by the firmware).
pub const RC_INITIALIZE: u32 = 0x100;
/// The largest response the launch reads (a PCR_Read of a few PCRs is ~100 bytes).
pub const MAX_RESPONSE: usize = 512;

/// What went wrong with a command, past the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TpmError {
    /// The TPM answered with this response code.
    Rc(u32),
    /// The response is shorter than it says, or than its command's response must be.
    Malformed,
    /// PCR_Read did not return the PCRs asked for.
    Unexpected,
}

impl core::fmt::Display for TpmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TpmError::Rc(rc) => write!(f, "response code {rc:#x}"),
            TpmError::Malformed => f.write_str("malformed response"),
            TpmError::Unexpected => f.write_str("PCR_Read returned other PCRs than asked for"),
        }
    }
}

fn command(tag: u16, cc: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(10 + body.len());
    v.extend_from_slice(&tag.to_be_bytes());
    v.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    v.extend_from_slice(&cc.to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// `TPM2_Startup(TPM_SU_CLEAR)`.
pub fn startup() -> Vec<u8> {
    command(ST_NO_SESSIONS, CC_STARTUP, &SU_CLEAR.to_be_bytes())
}

/// `TPM2_PCR_Extend(pcr, {SHA-256: digest})` with an empty password session.
pub fn pcr_extend(pcr: u32, digest: &Digest) -> Vec<u8> {
    let mut b = Vec::with_capacity(55);
    b.extend_from_slice(&pcr.to_be_bytes());
    // The authorization area: its size, then TPMS_AUTH_COMMAND (handle, empty nonce,
    // attributes, empty password).
    b.extend_from_slice(&9u32.to_be_bytes());
    b.extend_from_slice(&RS_PW.to_be_bytes());
    b.extend_from_slice(&0u16.to_be_bytes());
    b.push(0);
    b.extend_from_slice(&0u16.to_be_bytes());
    // TPML_DIGEST_VALUES with one TPMT_HA.
    b.extend_from_slice(&1u32.to_be_bytes());
    b.extend_from_slice(&ALG_SHA256.to_be_bytes());
    b.extend_from_slice(digest);
    command(ST_SESSIONS, CC_PCR_EXTEND, &b)
}

/// The 3-byte PCR selection bitmap of `pcrs` (PCRs 0..24).
fn select(pcrs: &[u32]) -> [u8; 3] {
    let mut s = [0u8; 3];
    for &p in pcrs.iter().filter(|&&p| p < 24) {
        s[(p / 8) as usize] |= 1 << (p % 8);
    }
    s
}

/// `TPM2_PCR_Read` of the SHA-256 bank's `pcrs` (at most 8, below 24).
pub fn pcr_read(pcrs: &[u32]) -> Vec<u8> {
    let mut b = Vec::with_capacity(10);
    b.extend_from_slice(&1u32.to_be_bytes());
    b.extend_from_slice(&ALG_SHA256.to_be_bytes());
    b.push(3);
    b.extend_from_slice(&select(pcrs));
    command(ST_NO_SESSIONS, CC_PCR_READ, &b)
}

fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

/// The response code of a response, after checking its header's size.
pub fn response_code(resp: &[u8]) -> Result<u32, TpmError> {
    let size = be32(resp, 2).ok_or(TpmError::Malformed)? as usize;
    if size < 10 || size != resp.len() {
        return Err(TpmError::Malformed);
    }
    be32(resp, 6).ok_or(TpmError::Malformed)
}

/// Checks a response that carries nothing but success.
pub fn check(resp: &[u8]) -> Result<(), TpmError> {
    match response_code(resp)? {
        0 => Ok(()),
        rc => Err(TpmError::Rc(rc)),
    }
}

/// The digests of a PCR_Read response for `pcrs` (in PCR order, which is how the TPM
/// returns them).
pub fn parse_pcr_read(resp: &[u8], pcrs: &[u32]) -> Result<Vec<Digest>, TpmError> {
    check(resp)?;
    let bad = TpmError::Malformed;
    // pcrUpdateCounter, then the selection actually read.
    let mut off = 14;
    let count = be32(resp, off).ok_or(bad)?;
    off += 4;
    let mut got = [0u8; 3];
    for _ in 0..count {
        let alg = be16(resp, off).ok_or(bad)?;
        let n = *resp.get(off + 2).ok_or(bad)? as usize;
        let sel = resp.get(off + 3..off + 3 + n).ok_or(bad)?;
        if alg == ALG_SHA256 {
            for (g, s) in got.iter_mut().zip(sel) {
                *g |= s;
            }
        }
        off += 3 + n;
    }
    if got != select(pcrs) {
        return Err(TpmError::Unexpected);
    }
    let n = be32(resp, off).ok_or(bad)? as usize;
    off += 4;
    let mut sorted: Vec<u32> = pcrs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if n != sorted.len() {
        return Err(TpmError::Unexpected);
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let size = be16(resp, off).ok_or(bad)? as usize;
        let d = resp.get(off + 2..off + 2 + size).ok_or(bad)?;
        let d: Digest = d.try_into().map_err(|_| bad)?;
        out.push(d);
        off += 2 + size;
    }
    Ok(out)
}
