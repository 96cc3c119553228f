//! PLACEHOLDER: being written; replaced before it lands.

use std::sync::Arc;

use async_trait::async_trait;

use super::SecretOps;
use crate::functions::{FunctionError, Invocation, Output, RotationFunction};

/// Rotator (placeholder).
#[allow(dead_code)]
pub struct MysqlRotator {
    ops: Arc<dyn SecretOps>,
    alternating: bool,
}

impl MysqlRotator {
    /// New.
    pub fn new(ops: Arc<dyn SecretOps>, alternating: bool) -> Self {
        Self { ops, alternating }
    }
}

#[async_trait]
impl RotationFunction for MysqlRotator {
    async fn invoke(&self, _inv: &Invocation) -> Result<Output, FunctionError> {
        Err(FunctionError::Failed {
            message: "not available yet".into(),
            output: Output::default(),
        })
    }
}
