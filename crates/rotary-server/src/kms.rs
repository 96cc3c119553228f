//! Rotary's KMS key operations (`X-Amz-Target: rotary.<Op>`, actions `rotary:<Op>`): they go
//! through the same pipeline as every call (SigV4, authorization, audit, metrics) and call
//! the domain service (`rotary-core/service/kms.rs`). No answer carries key material.

use rotary_core::{Ctx, SecretsService};
use rotary_wire::{decode_request, ApiError};
use serde::Serialize;

/// Operations of this module.
pub const OPERATIONS: &[&str] = &["CreateKey", "ListKeys", "DescribeKey", "RotateKey"];

fn encode<T: Serialize>(resp: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(resp).map_err(|_| ApiError::internal())
}

/// Runs one of [`OPERATIONS`] on a raw JSON body.
pub(crate) async fn handle(
    svc: &SecretsService,
    cx: &Ctx,
    op: &str,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    match op {
        "CreateKey" => encode(&svc.create_key(cx, decode_request(body)?).await?),
        "ListKeys" => encode(&svc.list_keys(cx, decode_request(body)?).await?),
        "DescribeKey" => encode(&svc.describe_key(cx, decode_request(body)?).await?),
        "RotateKey" => encode(&svc.rotate_key(cx, decode_request(body)?).await?),
        _ => Err(ApiError::internal()),
    }
}
