use alloc::vec;
use alloc::vec::Vec;

use super::log::{self, Event, EventLog};
use super::tis::{self, Bus, TisError};
use super::tpm::{self, TpmError};
use super::*;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn sha256_known_vectors() {
    // FIPS 180-2 examples.
    assert_eq!(hex(&sha256(b"")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(hex(&sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(
        hex(&sha256(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
    let million = vec![b'a'; 1_000_000];
    let mut h = Hasher::new();
    for c in million.chunks(4097) {
        h.update(c);
    }
    assert_eq!(hex(&h.finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

#[test]
fn extend_is_hash_of_old_and_new() {
    let zero = [0u8; 32];
    let d = sha256(b"abc");
    let mut cat = Vec::from(zero);
    cat.extend_from_slice(&d);
    assert_eq!(extend(&zero, &d), sha256(&cat));
    // Order matters: extending a then b differs from b then a.
    let e = sha256(b"e");
    assert_ne!(extend(&extend(&zero, &d), &e), extend(&extend(&zero, &e), &d));
}

fn sample_log() -> EventLog {
    let mut l = EventLog::new();
    l.push(Event {
        pcr: 12,
        kind: log::EV_IPL,
        digest: sha256(b"dtb"),
        data: b"hyperlaunch host-dtb".to_vec(),
    });
    l.push(Event {
        pcr: 13,
        kind: log::EV_IPL,
        digest: sha256(b"k"),
        data: b"hyperlaunch DOM1 kernel".to_vec(),
    });
    l
}

#[test]
fn event_log_header_is_spec_id_event03() {
    let b = sample_log().encode();
    // PCR 0, EV_NO_ACTION, a zero SHA-1 digest, the event size, then the Spec ID event.
    assert_eq!(&b[0..8], &[0, 0, 0, 0, 3, 0, 0, 0]);
    assert_eq!(&b[8..28], &[0u8; 20]);
    assert_eq!(u32::from_le_bytes(b[28..32].try_into().unwrap()), 33);
    assert_eq!(&b[32..48], b"Spec ID Event03\0");
    // Version 2.0, errata 0, UINT64; one algorithm: SHA-256 (0x000b) of 32 bytes.
    assert_eq!(&b[52..56], &[0, 2, 0, 2]);
    assert_eq!(&b[56..60], &[1, 0, 0, 0]);
    assert_eq!(&b[60..64], &[0x0b, 0, 32, 0]);
    assert_eq!(b[64], 0);
    // First TCG_PCR_EVENT2: PCR 12, EV_IPL, one SHA-256 digest, then its data.
    assert_eq!(&b[65..79], &[12, 0, 0, 0, 0xd, 0, 0, 0, 1, 0, 0, 0, 0x0b, 0]);
    assert_eq!(&b[79..111], &sha256(b"dtb"));
    assert_eq!(u32::from_le_bytes(b[111..115].try_into().unwrap()), 20);
    assert_eq!(&b[115..135], b"hyperlaunch host-dtb");
}

#[test]
fn event_log_round_trips_and_refuses_damage() {
    let l = sample_log();
    let b = l.encode();
    assert_eq!(log::decode(&b).unwrap(), l.events);
    assert!(matches!(log::decode(&b[..b.len() - 1]), Err(log::DecodeError::Truncated(_))));
    let mut bad = b.clone();
    bad[32] = b'X';
    assert_eq!(log::decode(&bad), Err(log::DecodeError::NoHeader));
    let mut sha1 = b.clone();
    sha1[77] = 4; // TPM_ALG_SHA1 in the first event
    assert_eq!(log::decode(&sha1), Err(log::DecodeError::Algorithm(65)));
}

#[test]
fn replay_extends_each_pcr_in_order() {
    let l = sample_log();
    let [(p12, v12), (p13, v13)] = replay(&l.events);
    assert_eq!((p12, p13), (12, 13));
    assert_eq!(v12, extend(&[0; 32], &sha256(b"dtb")));
    assert_eq!(v13, extend(&[0; 32], &sha256(b"k")));
}

#[test]
fn items_follow_the_configuration_and_shared_modules_hash_once() {
    let blob = crate::config::tests::two_linux_domains_blob();
    let (_, cfg) = crate::config::parse_blob(&blob).unwrap();
    let its = items(&cfg);
    let names: Vec<&str> = its.iter().map(|i| i.what.as_str()).collect();
    assert_eq!(
        names,
        [
            "hyperlaunch host-dtb",
            "hyperlaunch DOM1 kernel",
            "hyperlaunch DOM1 ramdisk",
            "hyperlaunch DOM2 kernel",
            "hyperlaunch DOM2 ramdisk"
        ]
    );
    assert_eq!(its.iter().map(|i| i.pcr).collect::<Vec<_>>(), [12, 13, 13, 13, 13]);
    let mut hashed = 0;
    let log = measure(&its, &mut |s| {
        hashed += 1;
        match s {
            Source::HostDtb => sha256(b"dtb"),
            Source::Module(r) => sha256(&r.start.to_le_bytes()),
        }
    });
    // Both domains share one kernel and one ramdisk: three ranges hashed, five events.
    assert_eq!(hashed, 3);
    assert_eq!(log.events.len(), 5);
    assert_eq!(log.events[1].digest, log.events[3].digest);
}

#[test]
fn host_dtb_is_measured_to_its_totalsize() {
    let blob = crate::config::tests::two_linux_domains_blob();
    let mut padded = blob.clone();
    padded.extend_from_slice(&[0xaa; 100]);
    assert_eq!(host_dtb(&padded), &blob[..]);
}

#[test]
fn tpm_commands_encode_as_the_library_spec_says() {
    assert_eq!(tpm::startup(), unhex("80010000000c000001440000"));
    let e = tpm::pcr_extend(12, &[0x11; 32]);
    assert_eq!(e.len(), 65);
    assert_eq!(&e[..14], &unhex("800200000041000001820000000c")[..]);
    assert_eq!(&e[14..27], &unhex("000000094000000900000000 00".replace(' ', "").as_str())[..]);
    assert_eq!(&e[27..33], &unhex("00000001000b")[..]);
    assert_eq!(&e[33..], &[0x11; 32]);
    assert_eq!(tpm::pcr_read(&[12, 13]), unhex("8001000000140000017e00000001000b03003000"));
}

fn pcr_read_response(digests: &[[u8; 32]], select: [u8; 3]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&7u32.to_be_bytes()); // update counter
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&0x000bu16.to_be_bytes());
    body.push(3);
    body.extend_from_slice(&select);
    body.extend_from_slice(&(digests.len() as u32).to_be_bytes());
    for d in digests {
        body.extend_from_slice(&32u16.to_be_bytes());
        body.extend_from_slice(d);
    }
    response(0, &body)
}

fn response(rc: u32, body: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&0x8001u16.to_be_bytes());
    r.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    r.extend_from_slice(&rc.to_be_bytes());
    r.extend_from_slice(body);
    r
}

#[test]
fn pcr_read_responses_are_checked() {
    let r = pcr_read_response(&[[1; 32], [2; 32]], [0, 0x30, 0]);
    assert_eq!(tpm::parse_pcr_read(&r, &[12, 13]).unwrap(), vec![[1; 32], [2; 32]]);
    // Other PCRs than asked, a short response, a lying size, an error code.
    let other = pcr_read_response(&[[1; 32]], [0, 0x10, 0]);
    assert_eq!(tpm::parse_pcr_read(&other, &[12, 13]), Err(TpmError::Unexpected));
    assert_eq!(tpm::parse_pcr_read(&r[..r.len() - 3], &[12, 13]), Err(TpmError::Malformed));
    let mut lie = r.clone();
    lie[5] = 0xff;
    assert_eq!(tpm::parse_pcr_read(&lie, &[12, 13]), Err(TpmError::Malformed));
    assert_eq!(tpm::parse_pcr_read(&response(0x98e, &[]), &[12, 13]), Err(TpmError::Rc(0x98e)));
}

/// A TPM behind the FIFO interface: the register behaviour of the profile, and the three
/// commands, with PCRs that really extend.
#[derive(Default)]
struct FakeTpm {
    clock: u64,
    active: bool,
    started: bool,
    ready: bool,
    input: Vec<u8>,
    output: Vec<u8>,
    out_pos: usize,
    pcrs: [[u8; 32]; 24],
    /// Never grants the locality.
    deaf: bool,
    /// Nothing there: every register reads all ones.
    absent: bool,
    /// Never completes a command.
    stuck: bool,
    /// Answers every extend with this code.
    extend_rc: u32,
    /// At most this many bytes per burst.
    burst: usize,
    commands: Vec<u32>,
}

impl FakeTpm {
    fn new() -> Self {
        FakeTpm { burst: 7, ..Default::default() }
    }

    fn expected_len(&self) -> Option<usize> {
        (self.input.len() >= 6).then(|| u32::from_be_bytes(self.input[2..6].try_into().unwrap()) as usize)
    }

    fn execute(&mut self) {
        let cc = u32::from_be_bytes(self.input[6..10].try_into().unwrap());
        self.commands.push(cc);
        self.output = match cc {
            0x144 if self.started => response(tpm::RC_INITIALIZE, &[]),
            0x144 => {
                self.started = true;
                response(0, &[])
            }
            0x182 if self.extend_rc != 0 => response(self.extend_rc, &[]),
            0x182 => {
                let pcr = u32::from_be_bytes(self.input[10..14].try_into().unwrap()) as usize;
                let d: [u8; 32] = self.input[33..65].try_into().unwrap();
                self.pcrs[pcr] = extend(&self.pcrs[pcr], &d);
                response(0, &[0, 0, 0, 0, 0, 0, 0, 0, 0])
            }
            0x17e => {
                let sel = [self.input[17], self.input[18], self.input[19]];
                let ds: Vec<[u8; 32]> =
                    (0..24).filter(|p| sel[p / 8] & (1 << (p % 8)) != 0).map(|p| self.pcrs[p]).collect();
                pcr_read_response(&ds, sel)
            }
            _ => response(0x143, &[]),
        };
        self.out_pos = 0;
        self.input.clear();
    }

    fn sts(&self) -> u32 {
        if self.absent {
            return u32::MAX;
        }
        let mut s = 0;
        if self.ready {
            s |= tis::STS_COMMAND_READY | tis::STS_VALID | (self.burst as u32) << 8;
            if self.expected_len().is_none_or(|n| self.input.len() < n) {
                s |= tis::STS_EXPECT;
            }
            if self.expected_len() == Some(self.input.len()) {
                s &= !(0xffff << 8);
            }
        }
        if self.out_pos < self.output.len() {
            let left = (self.output.len() - self.out_pos).min(self.burst);
            s |= tis::STS_VALID | tis::STS_DATA_AVAIL | (left as u32) << 8;
        }
        s
    }
}

impl Bus for FakeTpm {
    fn read8(&mut self, off: usize) -> u8 {
        self.clock += 10;
        match off {
            _ if self.absent => 0xff,
            tis::ACCESS => tis::ACCESS_VALID | if self.active { tis::ACCESS_ACTIVE } else { 0 },
            tis::DATA_FIFO => {
                let b = self.output.get(self.out_pos).copied().unwrap_or(0xff);
                self.out_pos += 1;
                b
            }
            _ => 0,
        }
    }

    fn write8(&mut self, off: usize, v: u8) {
        self.clock += 10;
        match off {
            tis::ACCESS if v == tis::ACCESS_REQUEST_USE => self.active = !self.deaf,
            tis::ACCESS if v == tis::ACCESS_ACTIVE => self.active = false,
            tis::STS if v as u32 == tis::STS_COMMAND_READY => {
                self.ready = true;
                self.input.clear();
                self.output.clear();
            }
            tis::STS if v as u32 == tis::STS_GO => {
                if !self.stuck && self.expected_len() == Some(self.input.len()) {
                    self.ready = false;
                    self.execute();
                }
            }
            tis::DATA_FIFO => self.input.push(v),
            _ => {}
        }
    }

    fn read32(&mut self, off: usize) -> u32 {
        self.clock += 10;
        match off {
            tis::STS => self.sts(),
            tis::DID_VID if self.absent => u32::MAX,
            tis::DID_VID => 0x0001_1014,
            _ => 0,
        }
    }

    fn now_us(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}

#[test]
fn the_tpm_gets_every_event_and_reads_back_the_replay() {
    let l = sample_log();
    let mut t = FakeTpm::new();
    let got = to_tpm(&mut t, &l).unwrap();
    assert_eq!(got, replay(&l.events));
    assert_eq!(t.commands, [0x144, 0x182, 0x182, 0x17e]);
    assert!(!t.active, "locality given up");
    // Started by the firmware already: TPM_RC_INITIALIZE is fine, and PCRs go on extending.
    let got2 = to_tpm(&mut t, &l).unwrap();
    assert_ne!(got2, got);
    assert_eq!(got2[0].1, extend(&got[0].1, &sha256(b"dtb")));
}

#[test]
fn a_tpm_that_does_not_answer_fails_in_bounded_time() {
    let l = sample_log();
    for (setup, want) in [
        ((|t: &mut FakeTpm| t.absent = true) as fn(&mut FakeTpm), Cause::Transport(TisError::Absent)),
        (|t| t.deaf = true, Cause::Transport(TisError::Locality)),
        (|t| t.stuck = true, Cause::Transport(TisError::Timeout)),
        (|t| t.extend_rc = 0x907, Cause::Tpm(TpmError::Rc(0x907))),
    ] {
        let mut t = FakeTpm::new();
        setup(&mut t);
        let e = to_tpm(&mut t, &l).unwrap_err();
        assert_eq!(e.cause, want);
        // The fake clock: 10 us per register access; the longest wait is 5 s.
        assert!(t.clock < 20_000_000, "gave up after {} us", t.clock);
        assert!(!t.active);
    }
}

#[test]
fn a_response_larger_than_the_launch_reads_is_refused() {
    struct Big(FakeTpm);
    impl Bus for Big {
        fn read8(&mut self, off: usize) -> u8 {
            let b = self.0.read8(off);
            // The size field of the response says 64 KiB.
            if off == tis::DATA_FIFO && self.0.out_pos == 4 { 0xff } else { b }
        }
        fn write8(&mut self, off: usize, v: u8) {
            self.0.write8(off, v)
        }
        fn read32(&mut self, off: usize) -> u32 {
            self.0.read32(off)
        }
        fn now_us(&mut self) -> u64 {
            self.0.now_us()
        }
    }
    let mut t = Big(FakeTpm::new());
    assert_eq!(tis::transact(&mut t, &tpm::startup()), Err(TisError::Response));
}

#[test]
fn the_log_goes_to_the_domains_that_verify_the_launch() {
    use crate::config::{DomainConfig, Functions, Permissions};
    let with = |p: u32, f: u32| {
        let mut d = DomainConfig::new("/d".into());
        d.permissions = Permissions(p);
        d.functions = Functions(f);
        d
    };
    let log = b"log";
    for (p, f, gets) in [
        (0, Functions::BOOT, true),
        (Permissions::HARDWARE, 0, true),
        (Permissions::CONTROL, 0, true),
        (0, Functions::CONSOLE, false),
        (0, Functions::RECOVERY | Functions::XENSTORE, false),
        (0, 0, false),
    ] {
        let a = for_domain(&with(p, f), log);
        assert_eq!(a.is_some(), gets, "permissions {p:#x} functions {f:#x}");
        if let Some(a) = a {
            assert_eq!(
                (a.path.as_str(), a.name.as_str(), &a.value[..]),
                ("/chosen", EVENT_LOG_PROPERTY, &log[..])
            );
        }
    }
    // No log (nothing measured): nothing added.
    assert!(for_domain(&with(Permissions::HARDWARE, 0), b"").is_none());
}
