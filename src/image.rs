//! The arm64 Linux `Image` header (Documentation/arch/arm64/booting.rst): the format of
//! the hypervisor's own image and of the guest kernels it loads.

use core::fmt;

/// Length of the header.
pub const HEADER_LEN: usize = 64;
/// `ARM\x64` at offset 0x38, little-endian.
pub const MAGIC: u32 = 0x644d_5241;

/// The fields of an Image header that matter for loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// Offset from a 2 MiB-aligned base at which the image expects to be placed.
    pub text_offset: u64,
    /// Bytes the image occupies once running (file, BSS, stacks); 0 in very old kernels.
    pub image_size: u64,
    pub flags: u64,
}

/// Why a blob is not a loadable arm64 Image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageError {
    /// Shorter than the 64-byte header.
    TooShort,
    /// No `ARM\x64` magic at 0x38.
    BadMagic,
    /// The header says big-endian.
    BigEndian,
    /// `image_size` is smaller than the file itself.
    SizeTooSmall,
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageError::TooShort => "image shorter than the 64-byte arm64 header",
            ImageError::BadMagic => "no arm64 Image magic (ARM\\x64 at 0x38)",
            ImageError::BigEndian => "big-endian image",
            ImageError::SizeTooSmall => "image_size is smaller than the image file",
        })
    }
}

fn le64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

impl ImageHeader {
    /// Flags bit 0: big-endian kernel.
    pub const FLAG_BE: u64 = 1 << 0;
    /// Flags bit 3: may be placed anywhere in physical memory (else near the start of RAM).
    pub const FLAG_ANYWHERE: u64 = 1 << 3;

    /// Parses the header at the start of `image`.
    pub fn parse(image: &[u8]) -> Result<Self, ImageError> {
        if image.len() < HEADER_LEN {
            return Err(ImageError::TooShort);
        }
        let magic = u32::from_le_bytes([image[0x38], image[0x39], image[0x3a], image[0x3b]]);
        if magic != MAGIC {
            return Err(ImageError::BadMagic);
        }
        let h =
            ImageHeader { text_offset: le64(image, 8), image_size: le64(image, 16), flags: le64(image, 24) };
        if h.flags & Self::FLAG_BE != 0 {
            return Err(ImageError::BigEndian);
        }
        if h.image_size != 0 && h.image_size < image.len() as u64 {
            return Err(ImageError::SizeTooSmall);
        }
        Ok(h)
    }

    /// Page size the image was built for, from flags bits 1–2 (None: unspecified).
    pub fn page_size(&self) -> Option<u64> {
        match (self.flags >> 1) & 3 {
            1 => Some(4096),
            2 => Some(16384),
            3 => Some(65536),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text_offset: u64, image_size: u64, flags: u64) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&0x1400_0010u32.to_le_bytes()); // b +0x40
        h[8..16].copy_from_slice(&text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&image_size.to_le_bytes());
        h[24..32].copy_from_slice(&flags.to_le_bytes());
        h[0x38..0x3c].copy_from_slice(b"ARM\x64");
        h
    }

    #[test]
    fn parses_a_linux_style_header() {
        let h = ImageHeader::parse(&header(0x20_0000, 0x10_0000, 0xa)).unwrap();
        assert_eq!(h.text_offset, 0x20_0000);
        assert_eq!(h.image_size, 0x10_0000);
        assert_eq!(h.page_size(), Some(4096));
        assert!(h.flags & ImageHeader::FLAG_ANYWHERE != 0);
    }

    #[test]
    fn rejects_bad_images() {
        assert_eq!(ImageHeader::parse(&[0u8; 10]), Err(ImageError::TooShort));
        let mut h = header(0, 0, 2);
        h[0x38] = b'X';
        assert_eq!(ImageHeader::parse(&h), Err(ImageError::BadMagic));
        assert_eq!(ImageHeader::parse(&header(0, 0, 1)), Err(ImageError::BigEndian));
        let mut big = header(0, 0x40, 2);
        big.resize(0x100, 0);
        assert_eq!(ImageHeader::parse(&big), Err(ImageError::SizeTooSmall));
    }
}
