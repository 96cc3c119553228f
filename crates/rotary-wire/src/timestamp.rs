//! Timestamps on the wire: epoch seconds as a JSON number with millisecond precision.

use serde::{Serialize, Serializer};

/// A point in time in milliseconds since the Unix epoch, sent as fractional seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1000 == 0 {
            s.serialize_i64(self.0 / 1000)
        } else {
            s.serialize_f64(self.0 as f64 / 1000.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_epoch_seconds() {
        assert_eq!(
            serde_json::to_string(&Timestamp(1523477145713)).unwrap(),
            "1523477145.713"
        );
        assert_eq!(
            serde_json::to_string(&Timestamp(1523404800000)).unwrap(),
            "1523404800"
        );
    }
}
