//! hlctl against a fake hypervisor: the calls it makes, what it shows, and its errors.

use hyperlaunch_abi as abi;

use crate::cli::{self, Command};
use crate::dts;
use crate::ops::{self, Conduit, Error};

/// A hypervisor with domains 1 (Control, running) and 2 (paused by Control), a control
/// window of `window` bytes, which records what is staged.
struct Fake {
    window: Vec<u8>,
    staged: Vec<(u64, Vec<u8>)>,
    calls: Vec<(u32, [u64; 4])>,
    create: Result<u16, &'static str>,
}

const WINDOW_AT: u64 = 0x2600_0000;

impl Fake {
    fn new(window: usize) -> Fake {
        Fake { window: vec![0; window], staged: Vec::new(), calls: Vec::new(), create: Ok(7) }
    }
}

impl Conduit for Fake {
    fn call(&mut self, fid: u32, x: [u64; 4]) -> [u64; 4] {
        self.calls.push((fid, x));
        let ok = |a, b, c| [0, a, b, c];
        match fid {
            abi::HL_DOMAIN_INFO => match x[0] {
                0 => ok(1, 1, 0),
                1 => ok(2, 4, 4),
                _ => [abi::INVALID as u64, 0, 0, 0],
            },
            abi::HL_DOMCTL_QUERY => match x[0] {
                1 => ok(1 | 2 << 8, 512 << 20, 1 << 32),
                2 => ok(4 | 1 << 8, 256 << 20, 4),
                _ => [abi::INVALID as u64, 0, 0, 0],
            },
            abi::HL_DOMCTL_FREE => ok(300 << 20, 2, 64),
            abi::HL_DOMCTL_STAGE => {
                self.staged.push((x[0], Vec::new()));
                ok(0, 0, 0)
            }
            abi::HL_DOMCTL_STAGE_WRITE => {
                let (part, offset, src, len) = (x[0], x[1], x[2], x[3]);
                let s = self.staged.last_mut().unwrap();
                assert_eq!(
                    (s.0, s.1.len() as u64, src),
                    (part, offset, WINDOW_AT),
                    "in order, from the window"
                );
                s.1.extend_from_slice(&self.window[..len as usize]);
                [len, 0, 0, 0]
            }
            abi::HL_DOMCTL_CREATE => match self.create {
                Ok(id) => ok(u64::from(id), 0, 0),
                Err(msg) => {
                    self.window[..msg.len()].copy_from_slice(msg.as_bytes());
                    self.window[msg.len()] = 0;
                    [abi::INVALID as u64, msg.len() as u64 + 1, 0, 0]
                }
            },
            abi::HL_DOMCTL_PAUSE => [abi::DENIED as u64, 0, 0, 0],
            _ => ok(0, 0, 0),
        }
    }

    fn window(&self) -> (u64, u64) {
        if self.window.is_empty() { (0, 0) } else { (WINDOW_AT, self.window.len() as u64) }
    }

    fn window_write(&mut self, data: &[u8]) {
        self.window[..data.len()].copy_from_slice(data);
    }

    fn window_read(&mut self, len: usize) -> Vec<u8> {
        self.window[..len].to_vec()
    }
}

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

const CONFIG: &str = r#"
/dts-v1/;
// A domain for run-time creation.
/ {
    guest: domU {
        compatible = "xen,domain";
        memory = <0x0 0x40000>;   /* 256 MiB */
        cpus = <2>;
        bootargs = "console=ttyAMA0", "x";
        domain-uuid = [00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff];
        big = /bits/ 64 <0x100000000>;
        vpl011;
    };
};
"#;

#[test]
fn device_tree_source_compiles_like_the_blob_written_directly() {
    let got = dts::compile(CONFIG.as_bytes()).unwrap();
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let r = w.begin_node("").unwrap();
    let n = w.begin_node("domU").unwrap();
    w.property_string("compatible", "xen,domain").unwrap();
    w.property_array_u32("memory", &[0, 0x40000]).unwrap();
    w.property_u32("cpus", 2).unwrap();
    w.property_string_list("bootargs", vec!["console=ttyAMA0".into(), "x".into()]).unwrap();
    w.property("domain-uuid", &(0u8..16).map(|i| i * 0x11).collect::<Vec<u8>>()).unwrap();
    w.property_u64("big", 1 << 32).unwrap();
    w.property_null("vpl011").unwrap();
    w.end_node(n).unwrap();
    w.end_node(r).unwrap();
    assert_eq!(got, w.finish().unwrap());
    // A blob passes through as it is.
    assert_eq!(dts::compile(&got).unwrap(), got);
}

#[test]
fn source_errors_name_the_line() {
    let cases = [
        ("/ { a = <1>; };", "line 1: no /dts-v1/; header"),
        ("/dts-v1/;\n/ {\n  a = <&label>;\n};", "line 3: expected a number"),
        ("/dts-v1/;\n/ {\n  a = <0x1 zz>;\n};", "line 3: 'zz' is not a number"),
        ("/dts-v1/;\n/ {\n  n { a; \n", "line 4: node 'n' not closed"),
        ("/dts-v1/;\n/include/ \"x.dtsi\"\n", "line 2: /include/ is not supported"),
        ("/dts-v1/;\n/ { s = \"open;\n};", "line 2: string not closed on its line"),
        ("/dts-v1/;\n/ { c = <0x100000000>; };", "line 2: 0x100000000 does not fit 32 bits"),
        ("/dts-v1/;\n/* never closed", "line 2: comment not closed"),
    ];
    for (src, want) in cases {
        let e = dts::compile(src.as_bytes()).unwrap_err();
        assert!(e.starts_with(want), "{src:?}: {e}");
    }
}

#[test]
fn command_lines() {
    assert_eq!(cli::parse(&args("list")), Ok(Command::List));
    assert_eq!(cli::parse(&args("destroy 4")), Ok(Command::Domctl(abi::HL_DOMCTL_DESTROY, 4)));
    assert_eq!(
        cli::parse(&args("create d.dts --paused --kernel k --ramdisk r")),
        Ok(Command::Create {
            config: "d.dts".into(),
            kernel: Some("k".into()),
            ramdisk: Some("r".into()),
            dtb: None,
            paused: true
        })
    );
    for bad in
        ["create d.dts", "create --kernel k", "info", "info x", "list extra", "frob", "create d --kernel"]
    {
        let e = cli::parse(&args(bad)).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{bad}: {e}");
    }
}

#[test]
fn list_is_a_table_with_free_memory() {
    let out = ops::list(&mut Fake::new(4096)).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].split_whitespace().eq(["ID", "STATE", "VCPUS", "MEMORY", "PERMISSIONS", "FUNCTIONS"]));
    assert!(
        lines[1].split_whitespace().eq(["1", "running", "2", "512", "MiB", "control", "-"]),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].split_whitespace().eq(["2", "paused", "1", "256", "MiB", "-", "console"]),
        "{}",
        lines[2]
    );
    assert_eq!(lines[3], "free memory: 300 MiB; 2 of 64 domain slots in use");
}

#[test]
fn create_stages_every_part_a_window_at_a_time() {
    let mut f = Fake::new(4096);
    let kernel: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let parts = vec![
        ops::Part { kind: abi::PART_CONFIG, size: 3, bytes: Box::new(&b"cfg"[..]) },
        ops::Part { kind: abi::PART_KERNEL, size: kernel.len() as u64, bytes: Box::new(&kernel[..]) },
    ];
    assert_eq!(ops::create(&mut f, parts, true), Ok(7));
    assert_eq!(f.staged, vec![(abi::PART_CONFIG, b"cfg".to_vec()), (abi::PART_KERNEL, kernel)]);
    let writes = f.calls.iter().filter(|(fid, _)| *fid == abi::HL_DOMCTL_STAGE_WRITE).count();
    assert_eq!(writes, 1 + 3, "10000 bytes through a 4 KiB window: 3 calls");
    let (fid, x) = *f.calls.last().unwrap();
    assert_eq!((fid, x[0]), (abi::HL_DOMCTL_CREATE, abi::CREATE_PAUSED));
}

#[test]
fn refusals_carry_the_hypervisors_message_and_exit_code() {
    let mut f = Fake::new(4096);
    f.create = Err("out-of-memory: domains need 512 MiB of memory but only 300 MiB of RAM is free");
    let parts = vec![ops::Part { kind: abi::PART_CONFIG, size: 1, bytes: Box::new(&b"c"[..]) }];
    let e = ops::create(&mut f, parts, false).unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert_eq!(
        e.to_string(),
        "refused: out-of-memory: domains need 512 MiB of memory but only 300 MiB of RAM is free"
    );
    let e = ops::domctl(&mut f, abi::HL_DOMCTL_PAUSE, 2).unwrap_err();
    assert_eq!(e, Error::Refused(abi::DENIED, String::new()));
    assert!(e.to_string().starts_with("denied: this domain does not hold the Control permission"));
    // No control window: refused before anything is staged.
    let mut none = Fake::new(0);
    let e = ops::create(&mut none, Vec::new(), false).unwrap_err();
    assert!(e.to_string().contains("does not hold the Control permission"), "{e}");
    assert!(none.calls.is_empty());
}

#[test]
fn the_device_reg_gives_registers_and_window() {
    let mut reg = Vec::new();
    for v in [0x2280_0000u64, 0x1000, 0x2600_0000, 0x10_0000] {
        reg.extend(v.to_be_bytes());
    }
    let got = crate::device::parse_reg(&reg);
    assert_eq!(got, Some(((0x2280_0000, 0x1000), Some((0x2600_0000, 0x10_0000)))));
    assert_eq!(crate::device::parse_reg(&reg[..16]), Some(((0x2280_0000, 0x1000), None)));
    assert_eq!(crate::device::parse_reg(&reg[..12]), None);
}
