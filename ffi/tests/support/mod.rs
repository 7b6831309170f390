//! Shared by the integration tests that run outside tools (gcc, g++, valgrind, cbindgen, make,
//! pkg-config, readelf) or call the C ABI; the policy for a missing tool is the workspace's one
//! (`umbra_test_support::tools`).

#[allow(unused_imports)] // not every test crate that includes this module runs tools
pub use umbra_test_support::tools::{assert_success, tool_missing};

/// Where cargo put libumbra.so and libumbra.a for this test run: next to the test executable
/// (`target/<profile>/deps/`) or one level up. None on an unusual runner.
#[allow(dead_code)] // not every test crate that includes this module installs the library
pub fn built_by_this_run() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    let found = [Some(deps), deps.parent()]
        .into_iter()
        .flatten()
        .find(|d| d.join("libumbra.so").is_file() && d.join("libumbra.a").is_file())
        .map(std::path::Path::to_path_buf);
    found
}

/// This thread's last libumbra failure message (`umbra_last_error`).
#[allow(dead_code)] // not every test crate that includes this module calls the C ABI
pub fn last_error() -> String {
    // SAFETY: (NULL, 0) is a length query; the buffer then has room for the message and its NUL.
    unsafe {
        let n = umbra::umbra_last_error(std::ptr::null_mut(), 0);
        let mut buf = vec![0u8; n + 1];
        umbra::umbra_last_error(buf.as_mut_ptr().cast(), buf.len());
        std::ffi::CStr::from_bytes_until_nul(&buf)
            .expect("NUL-terminated")
            .to_string_lossy()
            .into_owned()
    }
}

/// Asserts that a C ABI call succeeded, with libumbra's message if not.
#[allow(dead_code)] // as last_error
#[track_caller]
pub fn ok(status: umbra::umbra_status) {
    assert_eq!(status, umbra::UMBRA_OK, "{}", last_error());
}

/// `s` as a C string.
#[allow(dead_code)] // as last_error
pub fn c(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).expect("no NUL")
}
