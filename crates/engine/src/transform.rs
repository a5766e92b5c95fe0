//! jq transforms. (Being written.)
