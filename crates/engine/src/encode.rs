//! Output encodings. (Being written.)
