//! Rotary's KMS key operations (`X-Amz-Target: rotary.<Op>`, actions `rotary:<Op>`): they go
//! through the same pipeline as every call (SigV4, authorization, audit, metrics) and call
//! the domain service (`rotary-core/service/kms.rs`). No answer carries key material.

use rotary_core::{Ctx, SecretsService};
use rotary_wire::dto::KmsOperation;
use rotary_wire::{decode_request, ApiError};
use serde::Serialize;

fn encode<T: Serialize>(resp: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(resp).map_err(|_| ApiError::internal())
}

/// Runs one operation on a raw JSON body.
pub(crate) async fn handle(
    svc: &SecretsService,
    cx: &Ctx,
    op: KmsOperation,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    match op {
        KmsOperation::CreateKey => encode(&svc.create_key(cx, decode_request(body)?).await?),
        KmsOperation::ListKeys => encode(&svc.list_keys(cx, decode_request(body)?).await?),
        KmsOperation::DescribeKey => encode(&svc.describe_key(cx, decode_request(body)?).await?),
        KmsOperation::RotateKey => encode(&svc.rotate_key(cx, decode_request(body)?).await?),
    }
}
