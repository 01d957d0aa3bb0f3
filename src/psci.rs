//! The PSCI firmware interface as guests see it (through HVC, or a trapped SMC), and the
//! answers to SMCCC calls the hypervisor does not implement.

/// PSCI return codes.
pub const SUCCESS: i64 = 0;
pub const NOT_SUPPORTED: i64 = -1;
pub const INVALID_PARAMETERS: i64 = -2;
pub const DENIED: i64 = -3;
pub const ALREADY_ON: i64 = -4;
pub const ON_PENDING: i64 = -5;

/// PSCI 1.1, as reported by PSCI_VERSION.
pub const VERSION_1_1: i64 = (1 << 16) | 1;

const PSCI_VERSION: u32 = 0x8400_0000;
const CPU_SUSPEND: u32 = 0x8400_0001;
const CPU_OFF: u32 = 0x8400_0002;
const CPU_ON: u32 = 0x8400_0003;
const AFFINITY_INFO: u32 = 0x8400_0004;
const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
const SYSTEM_OFF: u32 = 0x8400_0008;
const SYSTEM_RESET: u32 = 0x8400_0009;
const PSCI_FEATURES: u32 = 0x8400_000a;
/// SMC64 versions of calls that take addresses have bit 30 set.
const SMC64: u32 = 0x4000_0000;

/// A call a guest made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Version,
    Features(u32),
    CpuSuspend,
    CpuOff,
    CpuOn {
        target: u64,
        entry: u64,
        context: u64,
    },
    AffinityInfo {
        target: u64,
        level: u64,
    },
    MigrateInfoType,
    SystemOff,
    SystemReset,
    /// Any other SMCCC function (TRNG, vendor hypervisor service, …): NOT_SUPPORTED.
    Unknown(u32),
}

/// Decodes x0..x3 of an HVC/SMC.
pub fn decode(x0: u64, x1: u64, x2: u64, x3: u64) -> Call {
    let fid = x0 as u32;
    // SMC32 calls pass 32-bit arguments.
    let (a1, a2, a3) =
        if fid & SMC64 == 0 { (x1 & 0xffff_ffff, x2 & 0xffff_ffff, x3 & 0xffff_ffff) } else { (x1, x2, x3) };
    match fid & !SMC64 {
        PSCI_VERSION if fid & SMC64 == 0 => Call::Version,
        PSCI_FEATURES if fid & SMC64 == 0 => Call::Features(a1 as u32),
        CPU_SUSPEND => Call::CpuSuspend,
        CPU_OFF if fid & SMC64 == 0 => Call::CpuOff,
        CPU_ON => Call::CpuOn { target: a1, entry: a2, context: a3 },
        AFFINITY_INFO => Call::AffinityInfo { target: a1, level: a2 },
        MIGRATE_INFO_TYPE if fid & SMC64 == 0 => Call::MigrateInfoType,
        SYSTEM_OFF if fid & SMC64 == 0 => Call::SystemOff,
        SYSTEM_RESET if fid & SMC64 == 0 => Call::SystemReset,
        _ => Call::Unknown(fid),
    }
}

/// PSCI_FEATURES: which functions are implemented.
pub fn features(fid: u32) -> i64 {
    match decode(u64::from(fid), 0, 0, 0) {
        Call::Unknown(_) | Call::CpuSuspend => NOT_SUPPORTED,
        _ => SUCCESS,
    }
}

/// A vCPU's power state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    Off,
    /// CPU_ON accepted; the vCPU starts at `entry` with `context` in x0.
    Pending {
        entry: u64,
        context: u64,
    },
    On,
}

/// CPU_ON on a target vCPU's state (the caller holds the *target's* lock).
pub fn cpu_on(target: &mut Power, entry: u64, context: u64) -> i64 {
    match *target {
        Power::Off => {
            *target = Power::Pending { entry, context };
            SUCCESS
        }
        Power::Pending { .. } => ON_PENDING,
        Power::On => ALREADY_ON,
    }
}

/// AFFINITY_INFO for one vCPU: 0 on, 1 off, 2 on pending.
pub fn affinity_info(state: Power) -> i64 {
    match state {
        Power::On => 0,
        Power::Off => 1,
        Power::Pending { .. } => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_psci_and_unknown_calls() {
        assert_eq!(decode(0x8400_0000, 0, 0, 0), Call::Version);
        assert_eq!(
            decode(0xc400_0003, 0x8000_0001, 0x4008_0000, 7),
            Call::CpuOn { target: 0x8000_0001, entry: 0x4008_0000, context: 7 }
        );
        // SMC32 CPU_ON truncates its arguments.
        assert_eq!(
            decode(0x8400_0003, 0x1_0000_0001, 0x1_0000_0002, 0),
            Call::CpuOn { target: 1, entry: 2, context: 0 }
        );
        assert_eq!(decode(0x8400_0008, 0, 0, 0), Call::SystemOff);
        // What Linux probes at boot: TRNG version and the vendor hypervisor UID.
        assert_eq!(decode(0x8400_0050, 0, 0, 0), Call::Unknown(0x8400_0050));
        assert_eq!(decode(0x8600_ff01, 0, 0, 0), Call::Unknown(0x8600_ff01));
        assert_eq!(features(0x8400_0003), SUCCESS);
        assert_eq!(features(0x8400_0050), NOT_SUPPORTED);
        assert_eq!(features(0x8400_0001), NOT_SUPPORTED);
    }

    #[test]
    fn cpu_on_state_machine() {
        let mut s = Power::Off;
        assert_eq!(affinity_info(s), 1);
        assert_eq!(cpu_on(&mut s, 0x1000, 5), SUCCESS);
        assert_eq!(s, Power::Pending { entry: 0x1000, context: 5 });
        assert_eq!(affinity_info(s), 2);
        // A second CPU_ON before the first took effect.
        assert_eq!(cpu_on(&mut s, 0x2000, 6), ON_PENDING);
        s = Power::On;
        assert_eq!(cpu_on(&mut s, 0x2000, 6), ALREADY_ON);
        assert_eq!(affinity_info(s), 0);
    }
}
