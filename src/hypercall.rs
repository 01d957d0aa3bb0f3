//! hyperlaunch's own hypercalls (SMCCC, vendor-specific hypervisor service range, SMC64
//! fast calls through HVC), and which domain may make each. The ABI is described in
//! docs/hypercalls.md.

pub use hyperlaunch_abi::*;

/// What HL_SIZE / HL_READ read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blob {
    /// The launch configuration: the host device tree that holds the LCM.
    Lcm,
    /// The Boot Domain's own `module,config`.
    Config,
}

/// A decoded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Version,
    Size(Blob),
    Read {
        blob: Blob,
        dst: u64,
        offset: u64,
        len: u64,
    },
    DomainInfo {
        index: u64,
    },
    Unpause {
        domid: u16,
    },
    Done,
    FailureInfo {
        index: u64,
    },
    /// Replace a paused domain's kernel command line with the string at `src` (`len` bytes)
    /// in the caller's RAM.
    SetBootargs {
        domid: u16,
        src: u64,
        len: u64,
    },
    /// Pin vCPU `vcpu` of a paused domain to physical CPU `cpu`.
    SetAffinity {
        domid: u16,
        vcpu: u64,
        cpu: u64,
    },
    /// Add a property to a paused domain's device tree: the caller's buffer at `src`
    /// (`len` bytes) holds "PATH\0NAME\0VALUE" (see `guest_dtb::DtAddition`).
    SetDtProperty {
        domid: u16,
        src: u64,
        len: u64,
    },
    /// Control: a domain's state, vCPUs, memory and roles.
    DomctlQuery {
        domid: u16,
    },
    /// Control: stop a running domain's vCPUs until it is unpaused.
    DomctlPause {
        domid: u16,
    },
    /// Control: let a domain paused by DomctlPause run again.
    DomctlUnpause {
        domid: u16,
    },
    /// Control: stop a domain for good and reclaim its memory.
    DomctlDestroy {
        domid: u16,
    },
    /// Control: start a stopped (or paused) domain again from its boot modules.
    DomctlRestart {
        domid: u16,
    },
    /// Control: memory for one part of a domain to create (`PART_*`).
    Stage {
        part: u64,
        size: u64,
    },
    /// Control: the next `len` bytes of a staged part, from the caller's address `src`.
    StageWrite {
        part: u64,
        offset: u64,
        src: u64,
        len: u64,
    },
    /// Control: create a domain from the staged parts; an error message goes to `msg`.
    Create {
        flags: u64,
        msg: u64,
        room: u64,
    },
    /// Control: free memory and domain slots.
    Free,
    /// Ring the doorbell of the domain at the other end of a store connection.
    StoreNotify {
        domid: u16,
    },
    /// The store domain asks which domain holds a slot.
    StoreClient {
        slot: u64,
    },
    /// In the range, but not a call this version knows.
    Unknown(u32),
}

/// As the Debug form, but guest addresses in hex (for the NOTICEs that name a call).
impl core::fmt::Display for Call {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Call::Read { blob, dst, offset, len } => {
                write!(f, "Read {{ blob: {blob:?}, dst: {dst:#x}, offset: {offset:#x}, len: {len:#x} }}")
            }
            Call::SetBootargs { domid, src, len } => {
                write!(f, "SetBootargs {{ domid: {domid}, src: {src:#x}, len: {len} }}")
            }
            Call::SetDtProperty { domid, src, len } => {
                write!(f, "SetDtProperty {{ domid: {domid}, src: {src:#x}, len: {len} }}")
            }
            Call::StageWrite { part, offset, src, len } => {
                write!(f, "StageWrite {{ part: {part}, offset: {offset:#x}, src: {src:#x}, len: {len:#x} }}")
            }
            ref other => write!(f, "{other:?}"),
        }
    }
}

/// Decodes x0..x4 when x0 is in hyperlaunch's range; `None` for every other function.
pub fn decode(x: [u64; 5]) -> Option<Call> {
    let fid = x[0] as u32;
    if x[0] >> 32 != 0 || fid & 0xffff_0000 != 0xc600_0000 {
        return None;
    }
    let blob = |v: u64| match v {
        BLOB_LCM => Some(Blob::Lcm),
        BLOB_CONFIG => Some(Blob::Config),
        _ => None,
    };
    Some(match fid {
        HL_VERSION => Call::Version,
        HL_SIZE => blob(x[1]).map_or(Call::Unknown(fid), Call::Size),
        HL_READ => match blob(x[1]) {
            Some(b) => Call::Read { blob: b, dst: x[2], offset: x[3], len: x[4] },
            None => Call::Unknown(fid),
        },
        HL_DOMAIN_INFO => Call::DomainInfo { index: x[1] },
        HL_UNPAUSE => match u16::try_from(x[1]) {
            Ok(domid) => Call::Unpause { domid },
            Err(_) => Call::Unknown(fid),
        },
        HL_DONE => Call::Done,
        HL_FAILURE_INFO => Call::FailureInfo { index: x[1] },
        HL_SET_BOOTARGS => match u16::try_from(x[1]) {
            Ok(domid) => Call::SetBootargs { domid, src: x[2], len: x[3] },
            Err(_) => Call::Unknown(fid),
        },
        HL_SET_AFFINITY => match u16::try_from(x[1]) {
            Ok(domid) => Call::SetAffinity { domid, vcpu: x[2], cpu: x[3] },
            Err(_) => Call::Unknown(fid),
        },
        HL_SET_DT_PROPERTY => match u16::try_from(x[1]) {
            Ok(domid) => Call::SetDtProperty { domid, src: x[2], len: x[3] },
            Err(_) => Call::Unknown(fid),
        },
        HL_DOMCTL_QUERY | HL_DOMCTL_PAUSE | HL_DOMCTL_UNPAUSE | HL_DOMCTL_DESTROY | HL_DOMCTL_RESTART => {
            match u16::try_from(x[1]) {
                Ok(domid) => match fid {
                    HL_DOMCTL_QUERY => Call::DomctlQuery { domid },
                    HL_DOMCTL_PAUSE => Call::DomctlPause { domid },
                    HL_DOMCTL_UNPAUSE => Call::DomctlUnpause { domid },
                    HL_DOMCTL_RESTART => Call::DomctlRestart { domid },
                    _ => Call::DomctlDestroy { domid },
                },
                Err(_) => Call::Unknown(fid),
            }
        }
        HL_DOMCTL_STAGE => Call::Stage { part: x[1], size: x[2] },
        HL_DOMCTL_STAGE_WRITE => Call::StageWrite { part: x[1], offset: x[2], src: x[3], len: x[4] },
        HL_DOMCTL_CREATE => Call::Create { flags: x[1], msg: x[2], room: x[3] },
        HL_DOMCTL_FREE => Call::Free,
        HL_STORE_NOTIFY => match u16::try_from(x[1]) {
            Ok(domid) => Call::StoreNotify { domid },
            Err(_) => Call::Unknown(fid),
        },
        HL_STORE_CLIENT => Call::StoreClient { slot: x[1] },
        _ => Call::Unknown(fid),
    })
}

/// Who is calling, as far as the permission table is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// It is the Boot Domain and the launch is in its boot phase.
    pub running_boot_domain: bool,
    /// It has the Recovery function.
    pub recovery: bool,
    /// It has the Control permission.
    pub control: bool,
}

/// The permission table: may `caller` make `call`?
pub fn allowed(call: &Call, caller: Caller) -> bool {
    match call {
        Call::Version | Call::Unknown(_) => true,
        Call::DomainInfo { .. } => caller.running_boot_domain || caller.control,
        Call::DomctlQuery { .. }
        | Call::DomctlPause { .. }
        | Call::DomctlUnpause { .. }
        | Call::DomctlDestroy { .. }
        | Call::DomctlRestart { .. }
        | Call::Stage { .. }
        | Call::StageWrite { .. }
        | Call::Create { .. }
        | Call::Free => caller.control,
        Call::Size(_)
        | Call::Read { .. }
        | Call::Unpause { .. }
        | Call::Done
        | Call::SetBootargs { .. }
        | Call::SetAffinity { .. }
        | Call::SetDtProperty { .. } => caller.running_boot_domain,
        Call::FailureInfo { .. } => caller.recovery,
        // Whether the two ends are connected is the store plan's to say.
        Call::StoreNotify { .. } | Call::StoreClient { .. } => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_name_guest_addresses_in_hex() {
        let read = Call::Read { blob: Blob::Lcm, dst: 0x4200_0000, offset: 16, len: 64 };
        assert_eq!(alloc::format!("{read}"), "Read { blob: Lcm, dst: 0x42000000, offset: 0x10, len: 0x40 }");
        assert_eq!(alloc::format!("{}", Call::DomainInfo { index: 0 }), "DomainInfo { index: 0 }");
    }

    #[test]
    fn decodes_only_its_range() {
        assert_eq!(decode([0x8400_0000, 0, 0, 0, 0]), None, "PSCI is not ours");
        assert_eq!(decode([0xc600_0000, 0, 0, 0, 0]), Some(Call::Version));
        assert_eq!(
            decode([0xc600_0002, 1, 0x4100_0000, 8, 64]),
            Some(Call::Read { blob: Blob::Config, dst: 0x4100_0000, offset: 8, len: 64 })
        );
        assert_eq!(decode([0xc600_0002, 7, 0, 0, 0]), Some(Call::Unknown(HL_READ)));
        assert_eq!(decode([0xc600_0004, 0x7ff5, 0, 0, 0]), Some(Call::Unpause { domid: 0x7ff5 }));
        assert_eq!(decode([0xc600_0004, 0x1_0000, 0, 0, 0]), Some(Call::Unknown(HL_UNPAUSE)));
        assert_eq!(decode([0xc600_0099, 0, 0, 0, 0]), Some(Call::Unknown(0xc600_0099)));
        assert_eq!(decode([0x1_c600_0000, 0, 0, 0, 0]), None);
    }

    #[test]
    fn permission_table() {
        let boot = Caller { running_boot_domain: true, recovery: false, control: false };
        let other = Caller { running_boot_domain: false, recovery: false, control: false };
        let recovery = Caller { running_boot_domain: false, recovery: true, control: false };
        let control = Caller { running_boot_domain: false, recovery: false, control: true };
        assert_eq!(
            decode([0xc600_0007, 3, 0x4100_0000, 12, 0]),
            Some(Call::SetBootargs { domid: 3, src: 0x4100_0000, len: 12 })
        );
        for c in [
            Call::Size(Blob::Lcm),
            Call::Unpause { domid: 1 },
            Call::Done,
            Call::SetBootargs { domid: 1, src: 0, len: 1 },
            Call::SetAffinity { domid: 1, vcpu: 0, cpu: 2 },
            Call::SetDtProperty { domid: 1, src: 0, len: 1 },
        ] {
            assert!(allowed(&c, boot), "{c:?}");
            assert!(!allowed(&c, other), "{c:?}");
            assert!(!allowed(&c, recovery), "{c:?}");
        }
        assert_eq!(decode([0xc600_0008, 2, 1, 3, 0]), Some(Call::SetAffinity { domid: 2, vcpu: 1, cpu: 3 }));
        assert_eq!(
            decode([0xc600_0009, 2, 0x4000_1000, 40, 0]),
            Some(Call::SetDtProperty { domid: 2, src: 0x4000_1000, len: 40 })
        );
        assert!(allowed(&Call::FailureInfo { index: 0 }, recovery));
        // Control: listing and the domain-management calls; nothing of the launch.
        for c in [
            Call::DomctlQuery { domid: 2 },
            Call::DomctlPause { domid: 2 },
            Call::DomctlUnpause { domid: 2 },
            Call::DomctlDestroy { domid: 2 },
            Call::DomctlRestart { domid: 2 },
        ] {
            assert!(allowed(&c, control), "{c:?}");
            for who in [boot, other, recovery] {
                assert!(!allowed(&c, who), "{c:?} {who:?}");
            }
        }
        assert!(allowed(&Call::DomainInfo { index: 0 }, control));
        assert!(allowed(&Call::DomainInfo { index: 0 }, boot));
        assert!(!allowed(&Call::DomainInfo { index: 0 }, other));
        assert!(!allowed(&Call::Unpause { domid: 1 }, control));
        assert!(!allowed(&Call::Done, control));
        assert_eq!(decode([0xc600_000b, 3, 0, 0, 0]), Some(Call::DomctlPause { domid: 3 }));
        assert_eq!(decode([0xc600_000d, 0x1_0000, 0, 0, 0]), Some(Call::Unknown(HL_DOMCTL_DESTROY)));
        assert!(!allowed(&Call::FailureInfo { index: 0 }, boot));
        assert!(allowed(&Call::Version, other));
    }
}
