//! How the daemon's heap gives memory back. glibc's malloc raises its mmap threshold
//! each time a large block is freed (up to 32 MiB), so the transient buffers of a zone
//! import or a Raft snapshot end up in the heap and stay there after they are freed:
//! about 5 MiB of a 10,000-record import was never returned (`bench/run.sh`'s RSS).
//! Fixing the mmap and trim thresholds at 128 KiB (glibc's starting values) sends
//! blocks that large to `mmap` and trims the heap's top past that, so an idle node
//! holds what it uses. The DNS path does not allocate blocks that large; its buffers
//! are reused.

/// Both thresholds, in bytes.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const THRESHOLD_BYTES: libc::c_int = 128 << 10;

/// Sets the thresholds. Called once, at the start of `serve`, before the runtime
/// starts any thread. A no-op where the C library is not glibc.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (param, name) in [
        (libc::M_MMAP_THRESHOLD, "M_MMAP_THRESHOLD"),
        (libc::M_TRIM_THRESHOLD, "M_TRIM_THRESHOLD"),
    ] {
        // SAFETY: `mallopt` takes two integers and touches only malloc's own
        // parameters, under malloc's lock (glibc documents it MT-Safe); no pointer
        // crosses the call. The workspace's second `unsafe`: see ARCHITECTURE.md.
        #[allow(unsafe_code)]
        let accepted = unsafe { libc::mallopt(param, THRESHOLD_BYTES) };
        if accepted == 0 {
            tracing::warn!(param = name, "glibc refused a malloc threshold");
        }
    }
}
