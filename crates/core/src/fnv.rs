//! FNV-1a, 64 bits: the one non-cryptographic hash kfp-tenant uses, where a
//! value must be the same on every run and machine (a saved plan's
//! fingerprints, a cluster's label value, an identity record's keys, a lock
//! ID's seed, retry jitter). Never for anything secret.

/// The hash's starting state.
pub const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0100_0000_01b3;

/// The hash of `bytes`.
pub fn hash(bytes: &[u8]) -> u64 {
    hash_from(OFFSET, bytes)
}

/// The hash of `bytes` continued from `state`.
pub fn hash_from(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// The hash of everything written to it, without holding it.
#[derive(Clone, Copy, Debug)]
pub struct Hasher(pub u64);

impl Default for Hasher {
    fn default() -> Self {
        Hasher(OFFSET)
    }
}

impl std::io::Write for Hasher {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 = hash_from(self.0, bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_and_streaming_agree() {
        // The FNV-1a 64 reference values.
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        let mut streamed = Hasher::default();
        std::io::Write::write_all(&mut streamed, b"ab").unwrap();
        assert_eq!(streamed.0, hash(b"ab"));
    }
}
