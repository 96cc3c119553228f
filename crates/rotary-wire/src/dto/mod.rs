//! Request and response shapes, named as in botocore's service model.
//!
//! Every request member is `Option` so that a missing required member is reported as AWS
//! does (`ValidationException`, "Member must not be null") rather than as a JSON error, and
//! `null` is treated as absent. Responses skip `None` members.

mod kms;
mod password;
mod policy;
mod rotation;
mod secret;
mod shared;

pub use kms::*;
pub use password::*;
pub use policy::*;
pub use rotation::*;
pub use secret::*;
pub use shared::*;
