//! Fuzzes the whole configuration path the hypervisor runs on a host DTB: the Device Tree
//! reader, the platform description, LCM/dom0less/classic parsing, validation and the plan.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((_, cfg)) = hyperlaunch::config::parse_blob(data) {
        let _ = hyperlaunch::config::Plan::lines(&cfg);
    }
});
