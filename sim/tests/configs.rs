//! Every configuration shipped in configs/ loads and validates, and
//! configs/default.toml is exactly the built-in default.

use npukit_sim::NpuConfig;

#[test]
fn shipped_configs_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        // energy-area.toml is npukit-explore's energy and area table, not a
        // hardware configuration (explore's tests load it).
        let hardware = p.file_name().is_some_and(|f| f != "energy-area.toml");
        if hardware && p.extension().is_some_and(|x| x == "toml") {
            NpuConfig::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(n >= 5, "expected the shipped configs in {}", dir.display());
    assert_eq!(
        NpuConfig::load(&dir.join("default.toml")).unwrap(),
        NpuConfig::default()
    );
}

#[test]
fn load_reports_the_file_and_field() {
    let dir = std::env::temp_dir().join(format!("npukit-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.toml");
    std::fs::write(&p, "[array]\nrows = 0\n").unwrap();
    let e = NpuConfig::load(&p).unwrap_err().to_string();
    assert!(e.contains("array.rows"), "{e}");
    std::fs::write(&p, "[array\n").unwrap();
    let e = NpuConfig::load(&p).unwrap_err().to_string();
    assert!(e.contains("bad.toml"), "{e}");
    let e = NpuConfig::load(&dir.join("missing.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.toml"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
