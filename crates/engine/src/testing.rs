//! Test support shared by the engine's unit tests.

/// One step of a xorshift generator: the deterministic source of the generated documents and
/// programs in the differential tests.
pub(crate) fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
