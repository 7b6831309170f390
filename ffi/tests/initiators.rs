//! Initiator ids as docs/abi.md ("Initiator ids") documents them: every accepted spelling names
//! the same host as its canonical form, and outputs give the canonical form.

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use umbra::*;

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// A string output read in full.
///
/// # Safety
/// `f` is a string-output call of the ABI on live handles.
unsafe fn text(f: impl Fn(*mut c_char, usize, *mut usize) -> umbra_status) -> String {
    let mut n = 0usize;
    let st = f(ptr::null_mut(), 0, &mut n);
    assert!(st == UMBRA_OK || st == UMBRA_E_BUFFER_TOO_SMALL, "{st}");
    let mut buf = vec![0 as c_char; n + 1];
    assert_eq!(f(buf.as_mut_ptr(), buf.len(), &mut n), UMBRA_OK);
    // SAFETY: the call wrote a NUL-terminated string into `buf`.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn every_spelling_names_the_canonical_id() {
    // SAFETY: live handles, NUL-terminated strings and writable out-parameters only.
    unsafe {
        let mut array: *mut umbra_array = ptr::null_mut();
        assert_eq!(umbra_array_open(ptr::null(), &mut array), UMBRA_OK);
        let lun = c("data");
        let list = c(
            " IQN.1991-05.com.Microsoft:Host1 ;50:01:43:80:01:23:45:67;EUI.0123456789ABCDEF;\
                      naa.6001405ABCDEF0123456789ABCDEF012",
        );
        let st = umbra_lun_create(array, lun.as_ptr(), 1 << 20, list.as_ptr());
        assert_eq!(st, UMBRA_OK);
        let hosts = text(|b, l, o| umbra_lun_get_initiators(array, lun.as_ptr(), b, l, o));
        assert_eq!(
            hosts,
            "5001438001234567;eui.0123456789abcdef;iqn.1991-05.com.microsoft:host1;\
             naa.6001405abcdef0123456789abcdef012"
        );
        for spelling in [
            "5001438001234567",
            "50:01:43:80:01:23:45:67",
            "50-01-43-80-01-23-45-67",
            "0x5001438001234567",
            "naa.5001438001234567",
            "iqn.1991-05.com.microsoft:host1",
            "  iqn.1991-05.COM.MICROSOFT:HOST1  ",
            "eui.0123456789abcdef",
        ] {
            let id = c(spelling);
            let mut visible = false;
            let st = umbra_lun_is_visible(array, lun.as_ptr(), id.as_ptr(), &mut visible);
            assert_eq!(st, UMBRA_OK, "{spelling}");
            assert!(visible, "{spelling}");
        }
        for bad in [
            "",
            "0000000000000000",
            "50:01:43:80:01:23:45",
            "eui.0123",
            "naa.0123",
            "iqn.1991-13.com.example",
            "iqn.1991-05",
            "iqn.1991-05.com.example:a b",
            "host1",
        ] {
            let id = c(bad);
            let mut visible = false;
            let st = umbra_lun_is_visible(array, lun.as_ptr(), id.as_ptr(), &mut visible);
            assert_eq!(st, UMBRA_E_INVALID_INITIATOR, "{bad:?}");
        }
        umbra_array_free(array);
    }
}
