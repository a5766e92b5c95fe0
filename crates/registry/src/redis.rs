//! The Redis store. (Being written.)

/// Placeholder until the Redis store lands.
pub struct RedisStore;
