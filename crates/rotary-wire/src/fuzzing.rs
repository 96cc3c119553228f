//! Entry points for the fuzz targets (`fuzz/`) and property tests; not an API.
//!
//! [`decode_and_check`] runs what the server does with a body before any business rule:
//! decode it into the operation's request shape with [`decode_request`], then check the
//! model constraints. The shape of each operation mirrors `rotary-server`'s `dispatch.rs`.

use std::fmt::Debug;

use serde::de::DeserializeOwned;

use crate::decode::decode_request;
use crate::dto::{
    BatchGetSecretValueRequest, CreateSecretRequest, DeleteSecretRequest, GetRandomPasswordRequest,
    GetSecretValueRequest, ListSecretVersionIdsRequest, ListSecretsRequest,
    PutResourcePolicyRequest, PutSecretValueRequest, RemoveRegionsFromReplicationRequest,
    ReplicateSecretToRegionsRequest, RotateSecretRequest, SecretIdRequest, TagResourceRequest,
    UntagResourceRequest, UpdateSecretRequest, UpdateSecretVersionStageRequest,
    ValidateResourcePolicyRequest,
};
use crate::error::ApiError;
use crate::validate::Validate;
use crate::Operation;

/// A request that decoded, as far as a property check needs to see it.
#[derive(Debug)]
pub struct Checked {
    /// The request's `Debug` text (which must not show secret values).
    pub debug: String,
    /// The model-constraint check: `Ok` or a `ValidationException`.
    pub check: Result<(), ApiError>,
}

/// Decodes `body` as a request of `op` and checks its model constraints.
pub fn decode_and_check(op: Operation, body: &[u8]) -> Result<Checked, ApiError> {
    use Operation as Op;
    match op {
        Op::CreateSecret => run::<CreateSecretRequest>(body),
        Op::GetSecretValue => run::<GetSecretValueRequest>(body),
        Op::BatchGetSecretValue => run::<BatchGetSecretValueRequest>(body),
        Op::PutSecretValue => run::<PutSecretValueRequest>(body),
        Op::UpdateSecret => run::<UpdateSecretRequest>(body),
        Op::UpdateSecretVersionStage => run::<UpdateSecretVersionStageRequest>(body),
        Op::ListSecrets => run::<ListSecretsRequest>(body),
        Op::ListSecretVersionIds => run::<ListSecretVersionIdsRequest>(body),
        Op::DeleteSecret => run::<DeleteSecretRequest>(body),
        Op::TagResource => run::<TagResourceRequest>(body),
        Op::UntagResource => run::<UntagResourceRequest>(body),
        Op::GetRandomPassword => run::<GetRandomPasswordRequest>(body),
        Op::PutResourcePolicy => run::<PutResourcePolicyRequest>(body),
        Op::ValidateResourcePolicy => run::<ValidateResourcePolicyRequest>(body),
        Op::RotateSecret => run::<RotateSecretRequest>(body),
        Op::ReplicateSecretToRegions => run::<ReplicateSecretToRegionsRequest>(body),
        Op::RemoveRegionsFromReplication => run::<RemoveRegionsFromReplicationRequest>(body),
        Op::DescribeSecret
        | Op::RestoreSecret
        | Op::GetResourcePolicy
        | Op::DeleteResourcePolicy
        | Op::CancelRotateSecret
        | Op::StopReplicationToReplica => run::<SecretIdRequest>(body),
    }
}

fn run<T: DeserializeOwned + Validate + Debug>(body: &[u8]) -> Result<Checked, ApiError> {
    let req: T = decode_request(body)?;
    Ok(Checked {
        debug: format!("{req:?}"),
        check: req.check(),
    })
}

/// The `Debug` text of the empty request of `op`: the words any request's `Debug` shows.
pub fn empty_debug(op: Operation) -> String {
    decode_and_check(op, b"{}")
        .map(|c| c.debug)
        .unwrap_or_default()
}
