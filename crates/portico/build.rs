//! Pins the CPython the binary is built against: an rpath to its LIBDIR, so
//! the binary never loads another libpython at run time. The directory comes
//! from the wsgi crate's build script (`links = "portico_python"`), which
//! does the same for its own test binaries.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_PORTICO_PYTHON_LIB_DIR");
    if let Ok(dir) = std::env::var("DEP_PORTICO_PYTHON_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,--disable-new-dtags,-rpath,{dir}");
    }
}
