//! `Operation` → service method, with JSON decoding of the request and encoding of the
//! response.

use rotary_core::Ctx;

use crate::router::{AppState, NamedIds};
use rotary_wire::{ApiError, Operation};
use serde::Serialize;

// Request bodies are decoded by the one rule the fuzz target `wire_request` exercises:
// empty bodies count as `{}`, and the error text never echoes input.
use rotary_wire::decode_request as decode;

fn encode<T: Serialize>(resp: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(resp).map_err(|_| ApiError::internal())
}

macro_rules! ops {
    ($svc:ident, $cx:ident, $op:ident, $body:ident;
     $( $variant:ident => $method:ident ),* ;
     $( $extra:tt )*) => {
        match $op {
            $( Operation::$variant => {
                encode(&Box::pin($svc.$method($cx, decode($body)?)).await?)
            } )*
            $( $extra )*
        }
    };
}

/// Runs one operation on a raw JSON body. The hot read also says in `named` which secret
/// and version it answered with, so that the audit record need not read the answer again.
///
/// Every operation but GetSecretValue runs boxed: a future is as large as the largest one it
/// may await, and the request's future (which holds this one) is moved a few times before
/// it runs, so the hot read would otherwise copy the state of the largest write.
pub(crate) async fn dispatch(
    st: &AppState,
    cx: &Ctx,
    op: Operation,
    body: &[u8],
    named: &mut Option<NamedIds>,
) -> Result<Vec<u8>, ApiError> {
    let svc = &st.service;
    let functions = st.rotation.registry().as_ref();
    ops!(svc, cx, op, body;
        CreateSecret => create_secret,
        BatchGetSecretValue => batch_get_secret_value,
        PutSecretValue => put_secret_value,
        UpdateSecret => update_secret,
        UpdateSecretVersionStage => update_secret_version_stage,
        DescribeSecret => describe_secret,
        ListSecrets => list_secrets,
        ListSecretVersionIds => list_secret_version_ids,
        DeleteSecret => delete_secret,
        RestoreSecret => restore_secret,
        TagResource => tag_resource,
        UntagResource => untag_resource,
        GetRandomPassword => get_random_password,
        PutResourcePolicy => put_resource_policy,
        GetResourcePolicy => get_resource_policy,
        DeleteResourcePolicy => delete_resource_policy,
        ValidateResourcePolicy => validate_resource_policy,
        ReplicateSecretToRegions => replicate_secret_to_regions,
        RemoveRegionsFromReplication => remove_regions_from_replication,
        StopReplicationToReplica => stop_replication_to_replica;
        Operation::RotateSecret => {
            encode(&Box::pin(svc.rotate_secret(cx, decode(body)?, functions)).await?)
        }
        Operation::CancelRotateSecret => {
            encode(&Box::pin(svc.cancel_rotate_secret(cx, decode(body)?)).await?)
        }
        Operation::GetSecretValue => {
            let r = svc.get_secret_value(cx, decode(body)?).await?;
            *named = Some(NamedIds {
                arn: r.arn.clone(),
                version_id: r.version_id.clone(),
                token: None,
            });
            Ok(r.to_json())
        }
    )
}
