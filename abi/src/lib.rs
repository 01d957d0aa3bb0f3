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
/// Control: x1: part (`PART_*`), x2: size in bytes: memory for one image of a domain to
/// create, in the hypervisor (replacing any earlier one; size 0 drops it).
pub const HL_DOMCTL_STAGE: u32 = 0xc600_0010;
/// Control: x1: part, x2: offset into it (= the bytes given so far), x3: guest address of
/// the bytes (the caller's RAM or its control window), x4: length → bytes taken.
pub const HL_DOMCTL_STAGE_WRITE: u32 = 0xc600_0011;
/// Control: x1: flags (`CREATE_*`), x2: guest address for an error message, x3: its room
/// → x1 the new domain's id. The staged parts are consumed either way.
pub const HL_DOMCTL_CREATE: u32 = 0xc600_0012;
/// Control: → x1 free memory in bytes, x2 domains that exist, x3 the most that can.
pub const HL_DOMCTL_FREE: u32 = 0xc600_0013;
/// The store domain only: x1: slot → x1 the slot's client domid, or `STORE_SLOT_FREE`.
pub const HL_STORE_CLIENT: u32 = 0xc600_0014;
/// What HL_STORE_CLIENT gives for a slot without a client.
pub const STORE_SLOT_FREE: u64 = 0xffff;

/// The parts of a domain to create: its configuration (a DTB with one `xen,domain` node),
/// its kernel (Image or gzip), its ramdisk, its partial device tree.
pub const PART_CONFIG: u64 = 0;
pub const PART_KERNEL: u64 = 1;
pub const PART_RAMDISK: u64 = 2;
pub const PART_DTB: u64 = 3;
/// The new domain stays paused (HL_DOMCTL_UNPAUSE starts it).
pub const CREATE_PAUSED: u64 = 1;
/// Largest configuration blob.
pub const MAX_CREATE_CONFIG: u64 = 64 * 1024;

/// The control device's registers (MMIO conduit, for domains whose user space makes calls):
/// 64-bit, at the `reg` of the guest device tree's `hyperlaunch,control-v1` node.
/// ID reads `CTL_MAGIC`; X1..X4 are a call's arguments; writing the function id to CALL
/// makes the call; R0..R3 hold its results (x0..x3). WINDOW/WINDOW_SIZE: the domain's
/// control window (memory it writes images into), 0 without one.
pub const CTL_ID: u64 = 0x00;
pub const CTL_WINDOW: u64 = 0x08;
pub const CTL_WINDOW_SIZE: u64 = 0x10;
pub const CTL_X1: u64 = 0x20;
pub const CTL_CALL: u64 = 0x40;
pub const CTL_R0: u64 = 0x48;
/// "HLCT", version 1.
pub const CTL_MAGIC: u64 = 0x484c_4354_0000_0001;

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
