//! Profile-guided builds (`scripts/pgo.sh`): a worker leaves with `_exit`,
//! which skips the atexit hook where LLVM's profiling runtime writes its
//! counters, so a training build (feature `pgo-train`, compiled with
//! `-Cprofile-generate`) writes them itself first. In every other build this
//! is nothing.

/// Writes this process's profile counters, in a training build only.
pub(crate) fn write_training_profile() {
    #[cfg(feature = "pgo-train")]
    {
        unsafe extern "C" {
            fn __llvm_profile_write_file() -> libc::c_int;
        }
        // SAFETY: the LLVM profiling runtime linked by `-Cprofile-generate`
        // defines it; it writes to the path that runtime was given.
        unsafe { __llvm_profile_write_file() };
    }
}
