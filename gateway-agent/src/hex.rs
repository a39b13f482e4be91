//! Lowercase hex of digest bytes, by hand: it runs once per resource and per cluster name, and
//! the formatting machinery costs more than hashing a small resource.

/// Appends `bytes` as lowercase hex to `out`.
pub fn push_lower_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend(
        bytes
            .iter()
            .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]])
            .map(char::from),
    );
}
