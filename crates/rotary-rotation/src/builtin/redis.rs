//! PLACEHOLDER: being written; replaced before it lands.

use std::sync::Arc;

use async_trait::async_trait;

use super::SecretOps;
use crate::functions::{FunctionError, Invocation, Output, RotationFunction};

/// Rotator (placeholder).
#[allow(dead_code)]
pub struct RedisRotator {
    ops: Arc<dyn SecretOps>,
}

impl RedisRotator {
    /// New.
    pub fn new(ops: Arc<dyn SecretOps>) -> Self {
        Self { ops }
    }
}

#[async_trait]
impl RotationFunction for RedisRotator {
    async fn invoke(&self, _inv: &Invocation) -> Result<Output, FunctionError> {
        Err(FunctionError::Failed {
            message: "not available yet".into(),
            output: Output::default(),
        })
    }
}
