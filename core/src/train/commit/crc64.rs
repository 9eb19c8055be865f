//! CRC-64/XZ (ECMA-182 polynomial, reflected): the checksum a checkpoint manifest records per file.
//!
//! `crc(m) = ¬ R(¬0 · x^{|m|} + m(x) · x^{64} mod P)` with `P = 0x42F0E1EBA9EA3693` (reflected
//! `0xC96C5795D7870F42`), computed a byte at a time from a 256-entry table. A CRC of degree 64 detects
//! every error burst of at most 64 bits (so every flipped byte, whatever the file's length) and misses
//! other random damage with probability `2^-64`; it is not a defence against deliberate tampering.

/// The reflected ECMA-182 polynomial.
const POLY: u64 = 0xC96C_5795_D787_0F42;

/// `TABLE[b]`: the CRC register after shifting the byte `b` through it.
const TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut crc = b as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[b] = crc;
        b += 1;
    }
    table
};

/// CRC-64/XZ of `bytes` (`crc64(b"123456789") = 0x995DC9BBDF1939FA`, the catalogue's check value).
pub fn crc64(bytes: &[u8]) -> u64 {
    let mut crc = !0u64;
    for &b in bytes {
        crc = TABLE[((crc ^ u64::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

/// The checksum as the manifest writes it: 16 lowercase hex digits.
pub fn crc64_hex(bytes: &[u8]) -> String {
    format!("{:016x}", crc64(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check values of the CRC catalogue (reveng) for CRC-64/XZ, and of the empty message.
    #[test]
    fn matches_the_catalogue() {
        assert_eq!(crc64(b"123456789"), 0x995D_C9BB_DF19_39FA);
        assert_eq!(crc64(b""), 0);
        assert_eq!(crc64_hex(b"123456789"), "995dc9bbdf1939fa");
    }

    /// Every single-byte change of a message changes the CRC (a burst of ≤ 8 bits < 64).
    #[test]
    fn every_flipped_byte_is_detected() {
        let msg: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        let base = crc64(&msg);
        for i in 0..msg.len() {
            for flip in [1u8, 0x80, 0xFF] {
                let mut m = msg.clone();
                m[i] ^= flip;
                assert_ne!(crc64(&m), base, "byte {i} ^ {flip:#x}");
            }
        }
    }
}
