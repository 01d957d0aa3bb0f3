//! Host tests of the Device Tree reader.

use super::*;
use vm_fdt::FdtWriter;

fn sample() -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_string("model", "test").unwrap();
    let a = w.begin_node("a@1").unwrap();
    w.property_u32("x", 7).unwrap();
    let b = w.begin_node("b").unwrap();
    w.property_string_list("compatible", vec!["one".into(), "two".into()]).unwrap();
    w.end_node(b).unwrap();
    let c = w.begin_node("c").unwrap();
    w.property_u32("phandle", 5).unwrap();
    w.end_node(c).unwrap();
    w.end_node(a).unwrap();
    let d = w.begin_node("d").unwrap();
    w.end_node(d).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

#[test]
fn walks_nodes_properties_and_paths() {
    let blob = sample();
    let fdt = Fdt::new(&blob).unwrap();
    let names: Vec<_> = fdt.all_nodes().map(|n| (n.name(), n.depth())).collect();
    assert_eq!(names, vec![("", 0), ("a@1", 1), ("b", 2), ("c", 2), ("d", 1)]);
    let kids: Vec<_> = fdt.root().children().map(|n| n.name()).collect();
    assert_eq!(kids, vec!["a@1", "d"]);
    let b = fdt.find("/a/b").unwrap();
    assert!(b.is_compatible("two") && !b.is_compatible("three"));
    assert_eq!(b.path().to_string(), "/a@1/b");
    assert_eq!(fdt.root().path().to_string(), "/");
    assert_eq!(fdt.find("/a@1").unwrap().property("x").unwrap().u32(), Some(7));
    assert_eq!(fdt.by_phandle(5).unwrap().name(), "c");
    assert_eq!(fdt.parent(&b).unwrap().name(), "a@1");
    let below_a: Vec<_> = fdt.find("/a").unwrap().descendants().map(|n| n.name()).collect();
    assert_eq!(below_a, vec!["b", "c"]);
    assert!(fdt.find("/nope").is_none());
    assert_eq!(fdt.root().property("model").unwrap().as_str(), Some("test"));
}

#[test]
fn rejects_damaged_blobs() {
    let blob = sample();
    assert_eq!(Fdt::new(&blob[..20]).err(), Some(FdtError::Truncated));
    assert_eq!(Fdt::new(&blob[..blob.len() - 1]).err(), Some(FdtError::Truncated));
    let mut bad = blob.clone();
    bad[0] = 0;
    assert_eq!(Fdt::new(&bad).err(), Some(FdtError::BadMagic));
    // Corrupt the first token of the structure block.
    let mut bad = blob.clone();
    let off = u32::from_be_bytes(bad[8..12].try_into().unwrap()) as usize;
    bad[off..off + 4].copy_from_slice(&77u32.to_be_bytes());
    assert!(matches!(Fdt::new(&bad).err(), Some(FdtError::BadStructure(_))));
}

#[test]
fn every_truncation_and_byte_flip_is_handled() {
    // Exhaustive over this small blob: no panic, and every accepted blob walks.
    let blob = sample();
    for len in 0..blob.len() {
        let _ = Fdt::new(&blob[..len]).map(|f| f.all_nodes().count());
    }
    for i in 0..blob.len() {
        for v in [0u8, 1, 2, 3, 4, 9, 0x80, 0xff] {
            let mut b = blob.clone();
            b[i] = v;
            if let Ok(f) = Fdt::new(&b) {
                for n in f.all_nodes() {
                    let _ = n.path().to_string();
                    let _ = n.properties().count();
                    let _ = n.children().count();
                    let _ = f.reg(&n).map(|r| r.count());
                }
            }
        }
    }
}

#[test]
fn property_decoding() {
    let p = Property { name: "reg", value: &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4] };
    let pairs: Vec<_> = p.reg_pairs(1, 1).unwrap().collect();
    assert_eq!(pairs, vec![(1, 2), (3, 4)]);
    let pairs: Vec<_> = p.reg_pairs(2, 2).unwrap().collect();
    assert_eq!(pairs, vec![(0x1_0000_0002, 0x3_0000_0004)]);
    assert!(p.reg_pairs(3, 1).is_none());
    assert!(p.reg_pairs(2, 1).is_none()); // 16 bytes is not a multiple of 12
    let s = Property { name: "s", value: b"ab\0cd\0" };
    assert_eq!(s.strings().collect::<Vec<_>>(), vec!["ab", "cd"]);
    assert_eq!(s.as_str(), None);
    assert_eq!(Property { name: "s", value: b"ab\0" }.as_str(), Some("ab"));
}
