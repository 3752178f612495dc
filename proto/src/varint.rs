//! Unsigned LEB128 varints, as frame lengths and the screen codec write them.

/// Appends `v` in the shortest LEB128 form.
pub(crate) fn put(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
