//! The committed C header matches what the pinned cbindgen generates from src/ffi.rs.
//! Set ODELT_BLESS_HEADER=1 to rewrite it (scripts/gen-header.sh does the same with the
//! cbindgen binary).

#[test]
fn header_has_not_drifted() {
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = crate_dir.join("include/odelt.h");
    if std::env::var_os("ODELT_BLESS_HEADER").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &generated).expect("write header");
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "runtime/include/odelt.h is out of date with runtime/src/ffi.rs; run scripts/gen-header.sh \
         (or ODELT_BLESS_HEADER=1 cargo test -p odelt-runtime --test header) and commit it.\n--- generated ---\n{}",
        String::from_utf8_lossy(&generated)
    );
}
