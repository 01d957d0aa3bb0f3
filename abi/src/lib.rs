//! hyperlaunch's hypercall ABI, defined once for the hypervisor, its test guest and any
//! tool: SMCCC fast calls (SMC64) in the vendor-specific hypervisor service range, made
//! with HVC (or SMC). x0 carries the function identifier, x1..x4 the arguments; x0 returns
//! a non-negative result or an error code, x1..x3 more results. Described in
//! docs/hypercalls.md.
#![no_std]

/// The interface version HL_VERSION returns (major 1, minor 0).
pub const VERSION: i64 = 1 << 16;

/// Function identifiers.
pub const HL_VERSION: u32 = 0xc600_0000;
/// x1: blob (see `BLOB_*`) → its size in bytes.
pub const HL_SIZE: u32 = 0xc600_0001;
/// x1: blob, x2: destination guest address, x3: offset, x4: length → bytes read.
pub const HL_READ: u32 = 0xc600_0002;
/// x1: index → x1 domid, x2 state (`STATE_*`), x3 functions.
pub const HL_DOMAIN_INFO: u32 = 0xc600_0003;
/// x1: domid: the Boot Domain starts a domain before finalization.
pub const HL_UNPAUSE: u32 = 0xc600_0004;
/// The Boot Domain is done: finalization follows.
pub const HL_DONE: u32 = 0xc600_0005;
/// x1: index → x1 the domid of a domain whose launch failed (Recovery Domain only).
pub const HL_FAILURE_INFO: u32 = 0xc600_0006;
/// x1: domid, x2: guest address, x3: length: a paused domain's kernel command line.
pub const HL_SET_BOOTARGS: u32 = 0xc600_0007;
/// x1: domid, x2: vCPU, x3: physical CPU: pins a paused domain's vCPU.
pub const HL_SET_AFFINITY: u32 = 0xc600_0008;
/// x1: domid, x2: guest address, x3: length of "PATH\0NAME\0VALUE": a device-tree
/// property of a paused domain.
pub const HL_SET_DT_PROPERTY: u32 = 0xc600_0009;
/// Control: x1: domid → x1 state | vCPUs << 8, x2 RAM bytes, x3 permissions << 32 | functions.
pub const HL_DOMCTL_QUERY: u32 = 0xc600_000a;
pub const HL_DOMCTL_PAUSE: u32 = 0xc600_000b;
pub const HL_DOMCTL_UNPAUSE: u32 = 0xc600_000c;
pub const HL_DOMCTL_DESTROY: u32 = 0xc600_000d;
/// x1: domid: rings the doorbell of the domain at the other end of a store connection.
pub const HL_STORE_NOTIFY: u32 = 0xc600_000e;
pub const HL_DOMCTL_RESTART: u32 = 0xc600_000f;

/// What HL_SIZE / HL_READ read: the launch configuration (the host device tree that holds
/// the LCM), or the Boot Domain's own `module,config`.
pub const BLOB_LCM: u64 = 0;
pub const BLOB_CONFIG: u64 = 1;

/// Longest command line HL_SET_BOOTARGS accepts.
pub const MAX_BOOTARGS: u64 = 1024;
/// Largest HL_SET_DT_PROPERTY buffer (path, name and value).
pub const MAX_DT_PROPERTY: u64 = 4096;

/// Return codes (SMCCC style).
pub const SUCCESS: i64 = 0;
pub const NOT_SUPPORTED: i64 = -1;
pub const INVALID: i64 = -2;
pub const DENIED: i64 = -3;

/// Domain states as HL_DOMAIN_INFO and HL_DOMCTL_QUERY report them.
pub const STATE_PAUSED: u64 = 0;
pub const STATE_RUNNING: u64 = 1;
pub const STATE_STOPPED: u64 = 2;
pub const STATE_RECLAIMED: u64 = 3;
pub const STATE_CTL_PAUSED: u64 = 4;
