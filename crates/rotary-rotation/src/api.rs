//! Rotary's own API (`X-Amz-Target: rotary.<Op>`): rotation functions, rotation history,
//! compliance, schedule preview, and the test clock.

use std::sync::Arc;

use rotary_core::rotation::{schedule_of, RotationConfig};
use rotary_core::schedule::Schedule;
use rotary_core::{Ctx, OffsetClock};
use rotary_wire::dto::{RotationRulesType, SecretIdRequest};
use rotary_wire::rotary_api::{
    AdvanceTestClockRequest, AdvanceTestClockResponse, ComplianceReport, CreateFunctionRequest,
    Finding, FunctionDescription, FunctionNameRequest, ListFunctionsResponse, NonCompliantSecret,
    PreviewScheduleRequest, PreviewScheduleResponse, RotaryOperation, RotationHistoryRequest,
    RotationHistoryResponse, ScheduleWindow,
};
use rotary_wire::{api_error, ApiError, ErrorCode, Timestamp};
use serde::Serialize;

use crate::engine::RotationEngine;
use crate::functions::FunctionSpec;
use crate::history::AttemptRecord;
use crate::registry::{Builtin, RegistryError};

pub use rotary_wire::rotary_api::TARGET_PREFIX;

/// Store key of the test clock's offset (milliseconds, decimal text).
pub const TEST_CLOCK_META: &str = "test-clock-offset-ms";

/// A registered function as the API shows it: its spec with `Env` replaced by `EnvNames`,
/// because Env values may be credentials and are stored sealed.
fn public_spec(spec: &FunctionSpec) -> serde_json::Map<String, serde_json::Value> {
    let Ok(serde_json::Value::Object(mut obj)) = serde_json::to_value(spec) else {
        return serde_json::Map::new();
    };
    obj.remove("Env");
    let names: Vec<&str> = spec.env().iter().map(|(k, _)| k.as_str()).collect();
    obj.insert("EnvNames".to_owned(), names.into());
    // One word for the kind, the same in ListFunctions and DescribeFunction (`Type` is the
    // stored tag and `BuiltIn` marks only the server's own built-ins).
    let kind = match spec {
        FunctionSpec::Process { .. } => "process",
        FunctionSpec::PythonHandler { .. } => "python",
        FunctionSpec::Http { .. } => "http",
        FunctionSpec::Builtin { .. } => BUILT_IN_KIND,
    };
    obj.insert("Kind".to_owned(), kind.into());
    obj
}

/// `Kind` of the built-ins and of functions registered with `--builtin`.
const BUILT_IN_KIND: &str = "built-in";

fn decode<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|_| {
        api_error!(
            SerializationException,
            "The request body is not valid JSON for this operation."
        )
    })
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(v).map_err(|_| ApiError::internal())
}

fn registry_error(e: RegistryError) -> ApiError {
    match e {
        RegistryError::Invalid(m) => ApiError::new(ErrorCode::InvalidParameterException, m),
        e @ RegistryError::Exists(_) => {
            ApiError::new(ErrorCode::ResourceExistsException, e.to_string())
        }
        e @ RegistryError::NotFound(_) => {
            ApiError::new(ErrorCode::ResourceNotFoundException, e.to_string())
        }
        RegistryError::Store(e) => {
            tracing::error!(error = %e, "Function registry storage failed");
            ApiError::internal()
        }
        RegistryError::Seal(e) => {
            tracing::error!(error = %e, "Sealing a function's Env failed");
            ApiError::internal()
        }
    }
}

/// Runs one operation of Rotary's API. `test_clock` is set only when the server runs with
/// `--test-clock`.
pub async fn handle(
    engine: &Arc<RotationEngine>,
    test_clock: Option<&OffsetClock>,
    cx: &Ctx,
    op: RotaryOperation,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    match op {
        RotaryOperation::CreateFunction => create_function(engine, decode(body)?).await,
        RotaryOperation::ListFunctions => {
            let mut out: Vec<FunctionDescription> =
                Builtin::ALL.iter().map(|b| builtin(engine, *b)).collect();
            out.extend(engine.registry().list().into_iter().map(|(name, spec)| {
                FunctionDescription {
                    function_arn: engine.registry().arn(&name),
                    name,
                    built_in: false,
                    description: None,
                    spec: public_spec(&spec),
                }
            }));
            encode(&ListFunctionsResponse { functions: out })
        }
        RotaryOperation::DescribeFunction => {
            let req: FunctionNameRequest = decode(body)?;
            let name = req.name.unwrap_or_default();
            let name = engine.registry().name_of(&name).unwrap_or(&name).to_owned();
            if let Some(b) = Builtin::ALL.into_iter().find(|b| b.name() == name) {
                return encode(&builtin(engine, b));
            }
            let spec = engine
                .registry()
                .list()
                .into_iter()
                .find(|(n, _)| *n == name)
                .map(|(_, s)| s)
                .ok_or_else(|| {
                    api_error!(
                        ResourceNotFoundException,
                        "No function named {name} is registered."
                    )
                })?;
            encode(&FunctionDescription {
                function_arn: engine.registry().arn(&name),
                name,
                built_in: false,
                description: None,
                spec: public_spec(&spec),
            })
        }
        RotaryOperation::DeleteFunction => {
            let req: FunctionNameRequest = decode(body)?;
            let name = req.name.unwrap_or_default();
            if req.force != Some(true) {
                refuse_delete_in_use(engine, &name).await?;
            }
            engine
                .registry()
                .delete(&name)
                .await
                .map_err(registry_error)?;
            encode(&serde_json::json!({}))
        }
        RotaryOperation::GetRotationHistory => history(engine, cx, decode(body)?).await,
        RotaryOperation::GetComplianceReport => compliance(engine).await,
        RotaryOperation::PreviewSchedule => preview(engine, decode(body)?),
        RotaryOperation::AdvanceTestClock => {
            let Some(clock) = test_clock else {
                return Err(api_error!(
                    InvalidRequestException,
                    "The test clock is off; start the server with --test-clock to use it."
                ));
            };
            let req: AdvanceTestClockRequest = decode(body)?;
            let now = clock.advance(req.seconds.unwrap_or(0).saturating_mul(1000));
            // Kept across restarts, so a test can stop the server and have time pass.
            let offset = clock.offset_ms().to_string();
            if let Err(e) = engine
                .service()
                .store()
                .put_meta(TEST_CLOCK_META, offset.as_bytes())
                .await
            {
                tracing::warn!(error = %e, "Storing the test clock offset failed");
            }
            engine.service().rotation_wakeup().notify_one();
            encode(&AdvanceTestClockResponse {
                now: Timestamp(now),
            })
        }
    }
}

/// Refuses to delete a function that live secrets name as their rotation function: their
/// next rotation would fail. Says which secrets, in Rotary's terms.
async fn refuse_delete_in_use(engine: &RotationEngine, name: &str) -> Result<(), ApiError> {
    let name = engine.registry().name_of(name).unwrap_or(name).to_owned();
    if !engine.registry().list().iter().any(|(n, _)| *n == name) {
        return Ok(()); // Not registered: the delete answers ResourceNotFoundException.
    }
    let users: Vec<String> = engine
        .service()
        .rotation_standings()
        .await?
        .into_iter()
        .filter(|s| {
            s.rotation
                .as_ref()
                .and_then(|r| r.lambda_arn.as_deref())
                .and_then(|a| engine.registry().name_of(a))
                .is_some_and(|n| n == name)
        })
        .map(|s| s.name)
        .collect();
    if users.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = users.iter().take(10).map(String::as_str).collect();
    let more = if users.len() > shown.len() {
        format!(" and {} more", users.len() - shown.len())
    } else {
        String::new()
    };
    Err(api_error!(
        InvalidRequestException,
        "Rotation function {name} is used by {} secret(s): {}{more}. Point them at another function (rotate-secret --rotation-lambda-arn) or delete it anyway with Force (rotary function delete --force); their next rotation would then fail.",
        users.len(),
        shown.join(", ")
    ))
}

fn builtin(engine: &RotationEngine, b: Builtin) -> FunctionDescription {
    FunctionDescription {
        name: b.name().to_owned(),
        function_arn: engine.registry().arn(b.name()),
        built_in: true,
        description: Some(b.description().to_owned()),
        spec: serde_json::Map::from_iter([("Kind".to_owned(), BUILT_IN_KIND.into())]),
    }
}

async fn create_function(
    engine: &RotationEngine,
    req: CreateFunctionRequest,
) -> Result<Vec<u8>, ApiError> {
    let name = req
        .name
        .clone()
        .ok_or_else(|| api_error!(InvalidParameterException, "Name is required."))?;
    let env: Vec<(String, String)> = req.env.into_iter().collect();
    let timeout_seconds = req.timeout_seconds.unwrap_or(30);
    let spec = match (req.command, req.python_handler, req.url, req.builtin) {
        (Some(command), None, None, None) => FunctionSpec::Process {
            command,
            env,
            timeout_seconds,
        },
        (None, None, None, Some(builtin)) => FunctionSpec::Builtin {
            builtin,
            env,
            timeout_seconds,
        },
        (None, Some(handler), None, None) => FunctionSpec::PythonHandler {
            handler,
            code_dir: req.code_dir.ok_or_else(|| {
                api_error!(
                    InvalidParameterException,
                    "CodeDir is required with PythonHandler."
                )
            })?,
            env,
            timeout_seconds,
        },
        (None, None, Some(url), None) => FunctionSpec::Http {
            url,
            env,
            timeout_seconds,
        },
        _ => {
            return Err(api_error!(
                InvalidParameterException,
                "Give exactly one of Command, PythonHandler (with CodeDir), Url or Builtin."
            ))
        }
    };
    engine
        .registry()
        .create(&name, spec.clone())
        .await
        .map_err(registry_error)?;
    encode(&FunctionDescription {
        function_arn: engine.registry().arn(&name),
        name,
        built_in: false,
        description: None,
        spec: public_spec(&spec),
    })
}

async fn history(
    engine: &RotationEngine,
    cx: &Ctx,
    req: RotationHistoryRequest,
) -> Result<Vec<u8>, ApiError> {
    let id = req.secret_id.clone().unwrap_or_default();
    let d = engine
        .service()
        .describe_secret(
            cx,
            SecretIdRequest {
                secret_id: Some(id.clone()),
            },
        )
        .await?;
    let (uid, _, _, _) = engine.service().rotation_of(&id).await?;
    let limit = req.max_results.unwrap_or(50).clamp(1, 1000);
    let records = engine
        .service()
        .store()
        .list_history(&uid, limit)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "Reading rotation history failed");
            ApiError::internal()
        })?;
    let rotations: Vec<AttemptRecord> = records
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect();
    encode(&RotationHistoryResponse {
        arn: d.arn,
        name: d.name,
        rotations,
    })
}

fn findings(
    rotation: Option<&RotationConfig>,
    stuck: bool,
    due_ms: Option<i64>,
    now: i64,
) -> Vec<Finding> {
    let mut out = Vec::new();
    // A rotation whose earlier attempts failed and that waits for its next one: it is not
    // "failed" yet (the attempts are not used up), but it needs attention now. Once
    // AWSPENDING is gone (`rotary rotation reset`) the retry will only be abandoned.
    if let Some((r, state)) = rotation.filter(|_| stuck).and_then(|r| {
        r.in_progress
            .as_ref()
            .filter(|s| s.attempt > 1 && !s.test_only)
            .map(|s| (r, s))
    }) {
        let next = match due_ms {
            Some(at) if at > now => {
                format!("; attempt {} is due at {}", state.attempt, utc(at))
            }
            _ => format!("; attempt {} is running", state.attempt),
        };
        out.push(Finding {
            check: "RotationFailing",
            detail: format!(
                "{} failed attempt(s): {}{next}",
                state.attempt - 1,
                r.last_error.as_deref().unwrap_or("the step failed")
            ),
        });
    }
    match rotation {
        Some(r) if r.enabled => {
            if let Some(next) = r.next_rotation_ms.filter(|n| *n < now) {
                out.push(Finding {
                    check: "RotationOverdue",
                    detail: format!(
                        "Rotation was due by {} and has not succeeded since.",
                        Timestamp(next).millis() / 1000
                    ),
                });
            }
        }
        _ => out.push(Finding {
            check: "RotationDisabled",
            detail: "Automatic rotation is not enabled.".into(),
        }),
    }
    if let Some(r) = rotation.filter(|r| r.last_failed()) {
        out.push(Finding {
            check: "LastRotationFailed",
            detail: r
                .last_error
                .clone()
                .unwrap_or_else(|| "The last rotation failed.".into()),
        });
    }
    if stuck && rotation.is_none_or(|r| r.in_progress.is_none()) {
        out.push(Finding {
            check: "PendingOnNonCurrentVersion",
            detail: "AWSPENDING is on a version that is not AWSCURRENT and no rotation is running: RotateSecret will re-drive it.".into(),
        });
    }
    out
}

/// `2026-01-31T08:00:00Z`, for messages people read.
fn utc(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| (ms / 1000).to_string())
}

async fn compliance(engine: &RotationEngine) -> Result<Vec<u8>, ApiError> {
    let now = engine.service().clock().now_ms();
    let standings = engine.service().rotation_standings().await?;
    let total = standings.len();
    let secrets: Vec<_> = standings
        .into_iter()
        .filter_map(|s| {
            let f = findings(s.rotation.as_ref(), s.pending_on_non_current, s.due_ms, now);
            (!f.is_empty()).then_some(NonCompliantSecret {
                arn: s.arn,
                name: s.name,
                findings: f,
            })
        })
        .collect();
    encode(&ComplianceReport {
        secrets_checked: total,
        non_compliant: secrets.len(),
        secrets,
    })
}

fn preview(engine: &RotationEngine, req: PreviewScheduleRequest) -> Result<Vec<u8>, ApiError> {
    let schedule = Schedule::parse(
        req.automatically_after_days,
        req.schedule_expression.as_deref(),
        req.duration.as_deref(),
    )
    .map_err(|e| ApiError::new(ErrorCode::InvalidParameterException, e.message))?;
    let now = req.start_time.map_or_else(
        || engine.service().clock().now_ms(),
        |s| (s * 1000.0) as i64,
    );
    let last = req.last_rotated_date.map(|s| (s * 1000.0) as i64);
    let count = req.count.unwrap_or(10).clamp(1, 100);
    let windows: Vec<_> = schedule
        .preview(now, last, count)
        .into_iter()
        .map(|w| ScheduleWindow {
            start: Timestamp(w.start_ms),
            end: Timestamp(w.end_ms),
            next_rotation_date: Timestamp(w.next_rotation_date_ms()),
        })
        .collect();
    let rules = RotationRulesType {
        automatically_after_days: req.automatically_after_days,
        duration: req.duration,
        schedule_expression: req.schedule_expression,
    };
    let days = schedule_of(Some(&rules)).map(|s| s.automatically_after_days());
    encode(&PreviewScheduleResponse {
        automatically_after_days: days,
        windows,
    })
}
