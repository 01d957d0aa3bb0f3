//! The TCG crypto-agile event log (TCG PC Client Platform Firmware Profile, "Crypto Agile
//! Log Entry Format"): a `Spec ID Event03` header event in the SHA-1 log format, then one
//! `TCG_PCR_EVENT2` per measurement with a SHA-256 digest. All fields little-endian.

use alloc::vec::Vec;

use super::Digest;

/// `EV_NO_ACTION`: the header event, not extended.
pub const EV_NO_ACTION: u32 = 0x3;
/// `EV_IPL`: code or data loaded by the initial program loader, with a description.
pub const EV_IPL: u32 = 0xd;
/// `TPM_ALG_SHA256`.
pub const ALG_SHA256: u16 = 0x000b;

/// One measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub pcr: u32,
    pub kind: u32,
    pub digest: Digest,
    /// Event data: the description of what was measured (ASCII, no terminator).
    pub data: Vec<u8>,
}

/// A log under construction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventLog {
    pub events: Vec<Event>,
}

/// The header's event data: `TCG_EfiSpecIdEvent` for one algorithm, SHA-256.
fn spec_id() -> Vec<u8> {
    let mut v = Vec::with_capacity(33);
    v.extend_from_slice(b"Spec ID Event03\0");
    v.extend_from_slice(&0u32.to_le_bytes()); // platformClass: client
    v.extend_from_slice(&[0, 2, 0, 2]); // spec version 2.0 errata 0, uintnSize 2 (UINT64)
    v.extend_from_slice(&1u32.to_le_bytes()); // numberOfAlgorithms
    v.extend_from_slice(&ALG_SHA256.to_le_bytes());
    v.extend_from_slice(&32u16.to_le_bytes());
    v.push(0); // vendorInfoSize
    v
}

impl EventLog {
    pub fn new() -> Self {
        EventLog { events: Vec::new() }
    }

    pub fn push(&mut self, e: Event) {
        self.events.push(e);
    }

    /// The log in its binary format.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // The header, in the SHA-1 (TCG_PCClientPCREvent) format.
        let id = spec_id();
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&EV_NO_ACTION.to_le_bytes());
        out.extend_from_slice(&[0u8; 20]);
        out.extend_from_slice(&(id.len() as u32).to_le_bytes());
        out.extend_from_slice(&id);
        for e in &self.events {
            out.extend_from_slice(&e.pcr.to_le_bytes());
            out.extend_from_slice(&e.kind.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes()); // digests: count
            out.extend_from_slice(&ALG_SHA256.to_le_bytes());
            out.extend_from_slice(&e.digest);
            out.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
            out.extend_from_slice(&e.data);
        }
        out
    }
}

/// Why a binary log cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// It ends inside a record (byte offset of the record).
    Truncated(usize),
    /// The first record is not a `Spec ID Event03` header.
    NoHeader,
    /// A record has a digest other than one SHA-256 (byte offset of the record).
    Algorithm(usize),
}

struct Reader<'a> {
    buf: &'a [u8],
    off: usize,
    record: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.off.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(DecodeError::Truncated(self.record))?;
        let s = &self.buf[self.off..end];
        self.off = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
}

/// Reads a binary log this module wrote (one SHA-256 bank): its events after the header.
pub fn decode(buf: &[u8]) -> Result<Vec<Event>, DecodeError> {
    let mut r = Reader { buf, off: 0, record: 0 };
    let (_pcr, kind) = (r.u32()?, r.u32()?);
    r.take(20)?;
    let n = r.u32()? as usize;
    let id = r.take(n)?;
    if kind != EV_NO_ACTION || !id.starts_with(b"Spec ID Event03\0") {
        return Err(DecodeError::NoHeader);
    }
    let mut out = Vec::new();
    while r.off < buf.len() {
        r.record = r.off;
        let pcr = r.u32()?;
        let kind = r.u32()?;
        if r.u32()? != 1 || r.u16()? != ALG_SHA256 {
            return Err(DecodeError::Algorithm(r.record));
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(r.take(32)?);
        let n = r.u32()? as usize;
        let data = r.take(n)?.to_vec();
        out.push(Event { pcr, kind, digest, data });
    }
    Ok(out)
}
