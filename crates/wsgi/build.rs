//! Pins the CPython this crate is built against: an rpath to its LIBDIR (so
//! the binary never picks up another libpython at run time) and its
//! executable path and version, baked in for the start-up banner and for
//! locating the standard library when no virtualenv is used.

fn main() {
    let config = pyo3_build_config::get();
    // (A statically linked interpreter, scripts/release-build.sh, needs none.)
    if let Some(dir) = config.lib_dir().filter(|_| config.shared()) {
        println!("cargo:rustc-link-arg=-Wl,--disable-new-dtags,-rpath,{dir}");
        // Passed to the binary's build script as DEP_PORTICO_PYTHON_LIB_DIR.
        println!("cargo:lib_dir={dir}");
    }
    let executable = config.executable().unwrap_or_default();
    println!("cargo:rustc-env=PORTICO_PYTHON_EXECUTABLE={executable}");
    println!(
        "cargo:rustc-env=PORTICO_PYTHON_VERSION={}.{}",
        config.version().major,
        config.version().minor
    );
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
