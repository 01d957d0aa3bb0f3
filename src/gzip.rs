//! gzip (RFC 1952) kernels: the header, the raw DEFLATE stream (miniz_oxide, no_std, into a
//! caller's buffer) and the CRC-32 and size trailer, all checked.

use core::fmt;

use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};

/// Why a gzip stream could not be unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GzipError {
    /// Not a gzip stream (magic 1f 8b, method 8).
    NotGzip,
    /// The header or trailer is cut short.
    Truncated,
    /// The DEFLATE data is corrupt.
    Corrupt,
    /// The output buffer is smaller than the stream's contents.
    TooSmall,
    /// Unpacked, but the CRC-32 or the size in the trailer does not match.
    Checksum,
}

impl fmt::Display for GzipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GzipError::NotGzip => "not a gzip stream",
            GzipError::Truncated => "gzip stream is truncated",
            GzipError::Corrupt => "gzip stream is corrupt",
            GzipError::TooSmall => "gzip stream is larger than its size field says",
            GzipError::Checksum => "gzip CRC-32 or size does not match the data",
        })
    }
}

/// True when `data` starts like a gzip stream.
pub fn is_gzip(data: &[u8]) -> bool {
    data.len() >= 3 && data[0] == 0x1f && data[1] == 0x8b && data[2] == 8
}

/// The uncompressed size the trailer records (modulo 4 GiB).
pub fn unpacked_size(data: &[u8]) -> Result<usize, GzipError> {
    if !is_gzip(data) {
        return Err(GzipError::NotGzip);
    }
    let t = data.len().checked_sub(4).filter(|&t| t >= 18).ok_or(GzipError::Truncated)?;
    Ok(u32::from_le_bytes([data[t], data[t + 1], data[t + 2], data[t + 3]]) as usize)
}

fn header_len(data: &[u8]) -> Result<usize, GzipError> {
    const FHCRC: u8 = 1 << 1;
    const FEXTRA: u8 = 1 << 2;
    const FNAME: u8 = 1 << 3;
    const FCOMMENT: u8 = 1 << 4;
    let flags = *data.get(3).ok_or(GzipError::Truncated)?;
    let mut off = 10;
    if flags & FEXTRA != 0 {
        let b = data.get(off..off + 2).ok_or(GzipError::Truncated)?;
        off += 2 + usize::from(u16::from_le_bytes([b[0], b[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = data.get(off..).ok_or(GzipError::Truncated)?;
            off += rest.iter().position(|&c| c == 0).ok_or(GzipError::Truncated)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        off += 2;
    }
    if off > data.len() { Err(GzipError::Truncated) } else { Ok(off) }
}

/// CRC-32 (IEEE 802.3) remainders of every byte value, computed at build time.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            k += 1;
        }
        t[i] = crc;
        i += 1;
    }
    t
};

/// CRC-32 (IEEE 802.3), a table lookup per byte.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// Unpacks `data` into `out` (at least [`unpacked_size`] bytes); returns the length.
pub fn gunzip_into(data: &[u8], out: &mut [u8]) -> Result<usize, GzipError> {
    let size = unpacked_size(data)?;
    let start = header_len(data)?;
    let end = data.len() - 8;
    if start > end {
        return Err(GzipError::Truncated);
    }
    let mut d = DecompressorOxide::new();
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let (status, _, written) = decompress(&mut d, &data[start..end], out, 0, flags);
    match status {
        TINFLStatus::Done => {}
        TINFLStatus::HasMoreOutput => return Err(GzipError::TooSmall),
        TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress => {
            return Err(GzipError::Truncated);
        }
        _ => return Err(GzipError::Corrupt),
    }
    let t = &data[end..];
    let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
    if written != size || crc32(&out[..written]) != crc {
        return Err(GzipError::Checksum);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(payload: &[u8], name: bool) -> Vec<u8> {
        let mut v = vec![0x1f, 0x8b, 8, if name { 1 << 3 } else { 0 }, 0, 0, 0, 0, 0, 3];
        if name {
            v.extend_from_slice(b"Image\0");
        }
        v.extend(miniz_oxide::deflate::compress_to_vec(payload, 6));
        v.extend(crc32(payload).to_le_bytes());
        v.extend((payload.len() as u32).to_le_bytes());
        v
    }

    #[test]
    fn round_trip() {
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for name in [false, true] {
            let z = gzip(&payload, name);
            assert!(is_gzip(&z) && z.len() < payload.len());
            assert_eq!(unpacked_size(&z), Ok(payload.len()));
            let mut out = vec![0u8; payload.len()];
            assert_eq!(gunzip_into(&z, &mut out), Ok(payload.len()));
            assert_eq!(out, payload);
        }
    }

    #[test]
    fn damage_is_detected() {
        let payload = b"hyperlaunch kernel image ".repeat(100);
        let z = gzip(&payload, false);
        let mut out = vec![0u8; payload.len()];
        assert!(gunzip_into(&z[..z.len() - 20], &mut out).is_err());
        assert_eq!(gunzip_into(&z[..15], &mut out), Err(GzipError::Truncated));
        let mut bad = z.clone();
        let n = bad.len();
        bad[n - 6] ^= 0xff; // CRC
        assert_eq!(gunzip_into(&bad, &mut out), Err(GzipError::Checksum));
        let mut small = vec![0u8; payload.len() - 1];
        assert_eq!(gunzip_into(&z, &mut small), Err(GzipError::TooSmall));
        assert_eq!(unpacked_size(b"ARMd"), Err(GzipError::NotGzip));
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }
}
