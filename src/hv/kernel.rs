//! A domain's kernel for its build: its boot module in place (an arm64 Image), or a gzip
//! one unpacked into free memory for as long as the build takes.

use super::build::{BuildError, HostFacts};
use super::machine::{HostMem, Machine};
use super::pool::Pool;
use crate::config::DomainConfig;
use crate::image::ImageHeader;

/// A domain's kernel: its boot module in place, or unpacked into free memory for as long
/// as the build takes.
pub(super) struct Kernel {
    pub(super) bytes: HostMem,
    pub(super) hdr: ImageHeader,
    /// The memory it was unpacked into (given back after the build).
    unpacked: Option<HostMem>,
}

impl Kernel {
    pub(super) fn find(
        m: &dyn Machine,
        cfg: &DomainConfig,
        pool: &mut Pool,
        host: &HostFacts,
    ) -> Result<Kernel, BuildError> {
        let module = match &cfg.kernel {
            Some(k) => host.mem(k.range)?,
            None => return Err(BuildError::Kernel(crate::image::ImageError::TooShort)),
        };
        let mut head = [0u8; crate::image::HEADER_LEN];
        let n = head.len().min(module.len() as usize);
        m.read(module.sub(0, n as u64).ok_or(BuildError::Unsupported("an empty kernel"))?, &mut head[..n]);
        let (bytes, unpacked) = if crate::gzip::is_gzip(&head[..n]) {
            let out = Self::unpack(m, module, cfg.memory_kib * 1024, pool)?;
            m.read(
                out.0.sub(0, crate::image::HEADER_LEN.min(out.0.len() as usize) as u64).unwrap_or(out.0),
                &mut head,
            );
            (out.0, Some(out.1))
        } else {
            (module, None)
        };
        let hdr = ImageHeader::parse(&head[..crate::image::HEADER_LEN.min(bytes.len() as usize)])
            .map_err(BuildError::Kernel)?;
        // The module may be padded past the image: the header's image_size bounds it.
        let len = match hdr.image_size {
            0 => bytes.len(),
            n => bytes.len().min(n),
        };
        let bytes = bytes.sub(0, len).unwrap_or(bytes);
        Ok(Kernel { bytes, hdr, unpacked })
    }

    /// Unpacks a gzip module: (the kernel's bytes, the memory taken).
    fn unpack(
        m: &dyn Machine,
        module: HostMem,
        ram: u64,
        pool: &mut Pool,
    ) -> Result<(HostMem, HostMem), BuildError> {
        // The uncompressed size its trailer records.
        let trailer = module.len().checked_sub(4).filter(|&t| t >= 18).and_then(|t| module.sub(t, 4));
        let trailer = trailer.ok_or(BuildError::Gzip(crate::gzip::GzipError::Truncated))?;
        let mut size = [0u8; 4];
        m.read(trailer, &mut size);
        let size = u32::from_le_bytes(size) as usize;
        if size as u64 > ram {
            return Err(BuildError::GzipSize { size, ram });
        }
        let alloc = (size as u64).max(1);
        let out = pool.alloc(alloc).ok_or(BuildError::NoMemory { bytes: alloc })?;
        let mut r = Err(crate::gzip::GzipError::Truncated);
        m.with_slices(module, out, &mut |src, dst| {
            r = crate::gzip::gunzip_into(src, &mut dst[..size]);
        });
        match r {
            Ok(len) => Ok((out.sub(0, len as u64).unwrap_or(out), out)),
            Err(e) => {
                pool.free(out);
                Err(BuildError::Gzip(e))
            }
        }
    }

    pub(super) fn release(self, pool: &mut Pool) {
        if let Some(u) = self.unpacked {
            pool.free(u);
        }
    }

    /// Its boot module in place (its pages may be shared).
    pub(super) fn in_place(&self) -> bool {
        self.unpacked.is_none()
    }
}
