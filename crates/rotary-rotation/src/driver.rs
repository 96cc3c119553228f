//! Runs one rotation: the four steps in order with one token, the completion check, and
//! failure handling (spec §5.3).

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rotary_auth::{Credential, Principal, PrincipalKind, SecretKey};
use rotary_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotary_core::rotation::{Completion, DueRotation, Pending, STEPS};
use rotary_core::Ctx;
use rotary_wire::dto::GetSecretValueRequest;

use crate::builtin;
use crate::engine::RotationEngine;
use crate::functions::{self, FunctionError, Invocation, RotationEvent, RotationFunction, Step};
use crate::history::{redact, redaction_terms, secs, AttemptRecord, StepRecord};
use crate::registry::{Builtin, Resolved};
use crate::webhook;

/// Timeout of a built-in step.
const BUILTIN_TIMEOUT: Duration = Duration::from_secs(30);

enum Exec {
    Builtin(Box<dyn RotationFunction>),
    External(Box<dyn RotationFunction>, Duration, bool),
}

fn step_of(i: u8) -> Step {
    match i {
        0 => Step::CreateSecret,
        1 => Step::SetSecret,
        2 => Step::TestSecret,
        _ => Step::FinishSecret,
    }
}

impl RotationEngine {
    fn executor(&self, lambda_arn: &str) -> Option<Exec> {
        match self.registry.resolve(lambda_arn)? {
            Resolved::Builtin(b) => Some(Exec::Builtin(builtin::executor(
                b,
                self.service.clone(),
                builtin::PasswordPolicy::default(),
            ))),
            Resolved::Registered(functions::FunctionSpec::Builtin {
                builtin: name, env, ..
            }) => {
                let b = Builtin::ALL.into_iter().find(|b| b.name() == name)?;
                let policy = builtin::PasswordPolicy::from_env(&env);
                Some(Exec::Builtin(builtin::executor(
                    b,
                    self.service.clone(),
                    policy,
                )))
            }
            Resolved::Registered(spec) => {
                let is_http = matches!(spec, functions::FunctionSpec::Http { .. });
                Some(Exec::External(
                    functions::executor(
                        &spec,
                        &self.config.http_signing_key,
                        self.registry.policy(),
                    )?,
                    spec.timeout(),
                    !is_http,
                ))
            }
        }
    }

    /// The master secret named by the secret's current value (`masterarn`, as AWS's
    /// alternating-users templates use it), as an ARN, if it exists.
    async fn master_secret_of(&self, arn: &str) -> Option<String> {
        let req = GetSecretValueRequest {
            secret_id: Some(arn.to_owned()),
            version_id: None,
            version_stage: Some(AWSCURRENT.to_owned()),
        };
        let value = self
            .service
            .get_secret_value(&Ctx::default(), req)
            .await
            .ok()?
            .secret_string?;
        let json: serde_json::Value = serde_json::from_str(value.expose()).ok()?;
        let master = json.get("masterarn")?.as_str()?.to_owned();
        self.service.arn_of(&master).await.ok().flatten()
    }

    /// Records a rotation step in the audit log: secret, version, step, function, outcome.
    async fn audit_step(
        &self,
        rotation_id: &str,
        arn: &str,
        token: &str,
        step: Step,
        function_arn: &str,
        failed: Option<&str>,
    ) {
        let Some(log) = &self.config.audit else {
            return;
        };
        use rotary_core::audit::{AuditRecord, Outcome};
        let outcome = failed.map_or(Outcome::Allowed, |e| Outcome::Error(e.to_owned()));
        let now_ms =
            i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                .unwrap_or(i64::MAX);
        let rec = AuditRecord::new(now_ms, rotation_id, format!("rotation:{step}"), outcome)
            .secret(arn)
            .version(token)
            .function(function_arn);
        if let Err(e) = log.record(rec).await {
            tracing::error!(secret_arn = %arn, error = %e, "Writing a rotation step's audit record failed");
        }
    }

    /// Temporary credentials for one step: the rotation operations on `arn`, and reading
    /// `read_only` (its master secret).
    fn session_credentials(
        &self,
        arn: &str,
        read_only: Option<String>,
    ) -> (String, String, String) {
        use rand::distributions::{Alphanumeric, DistString};
        let mut rng = rand::rngs::OsRng;
        let akid = format!(
            "ASIA{}",
            Alphanumeric.sample_string(&mut rng, 16).to_uppercase()
        );
        let secret = Alphanumeric.sample_string(&mut rng, 40);
        let token = Alphanumeric.sample_string(&mut rng, 96);
        let principal = Principal {
            account_id: self.service.account_id().to_owned(),
            arn: format!(
                "arn:aws:sts::{}:assumed-role/rotary-rotation/{}",
                self.service.account_id(),
                &akid
            ),
            access_key_id: akid.clone(),
            kind: PrincipalKind::Session {
                session_name: format!("rotation-{akid}"),
                scope: std::iter::once(arn.to_owned()).chain(read_only).collect(),
            },
        };
        self.credentials.insert(
            akid.clone(),
            Credential {
                secret_access_key: SecretKey::new(secret.clone()),
                session_token: Some(token.clone()),
                principal,
            },
        );
        (akid, secret, token)
    }

    /// Values to redact from function output: the secret's current, previous and pending
    /// values.
    async fn redaction_terms(&self, arn: &str, token: &str) -> Vec<String> {
        let cx = Ctx::default();
        let mut terms = Vec::new();
        let reads = [
            (None, AWSCURRENT),
            (None, AWSPREVIOUS),
            (Some(token.to_owned()), AWSPENDING),
        ];
        for (version_id, stage) in reads {
            let req = GetSecretValueRequest {
                secret_id: Some(arn.to_owned()),
                version_id,
                version_stage: Some(stage.to_owned()),
            };
            if let Ok(v) = self.service.get_secret_value(&cx, req).await {
                if let Some(s) = v.secret_string {
                    terms.extend(redaction_terms(s.expose()));
                }
            }
        }
        terms
    }

    /// After createSecret: the pending version must hold a value of the same shape as
    /// AWSCURRENT (string vs binary; a JSON object keeps every member), so a function bug
    /// cannot make a malformed credential current. The message never includes values.
    async fn check_shape(&self, arn: &str, token: &str) -> Result<(), String> {
        let cx = Ctx::default();
        let read = |version_id: Option<String>, stage: &str| GetSecretValueRequest {
            secret_id: Some(arn.to_owned()),
            version_id,
            version_stage: Some(stage.to_owned()),
        };
        let pending = self
            .service
            .get_secret_value(&cx, read(Some(token.to_owned()), AWSPENDING))
            .await
            .map_err(|_| "the function did not store a value for the pending version (PutSecretValue with this ClientRequestToken and VersionStages [\"AWSPENDING\"])".to_owned())?;
        let Ok(current) = self
            .service
            .get_secret_value(&cx, read(None, AWSCURRENT))
            .await
        else {
            return Ok(());
        };
        match (&current.secret_string, &pending.secret_string) {
            (Some(_), None) => Err("the pending value is binary but AWSCURRENT is a string".into()),
            (None, Some(_)) => Err("the pending value is a string but AWSCURRENT is binary".into()),
            (Some(c), Some(p)) => {
                let object = |s: &str| match serde_json::from_str::<serde_json::Value>(s) {
                    Ok(serde_json::Value::Object(m)) => Some(m),
                    _ => None,
                };
                match (object(c.expose()), object(p.expose())) {
                    (Some(c), Some(p)) => {
                        let missing: Vec<&str> = c
                            .keys()
                            .filter(|k| !p.contains_key(*k))
                            .map(String::as_str)
                            .collect();
                        if missing.is_empty() {
                            Ok(())
                        } else {
                            Err(format!(
                                "the pending value lacks members of AWSCURRENT: {}",
                                missing.join(", ")
                            ))
                        }
                    }
                    (Some(_), None) => {
                        Err("AWSCURRENT is a JSON object but the pending value is not".into())
                    }
                    _ => Ok(()),
                }
            }
            (None, None) => Ok(()),
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.config.retry_base.as_millis() as f64;
        let exp = base * 2f64.powi(attempt.saturating_sub(1).min(20) as i32);
        let capped = exp.min(self.config.retry_cap.as_millis() as f64);
        let jitter = rand::thread_rng().gen_range(0.5..1.5);
        Duration::from_millis((capped * jitter) as u64)
    }

    async fn save(&self, uid: &str, started_ms: i64, rec: &AttemptRecord) {
        match serde_json::to_string(rec) {
            Ok(json) => {
                if let Err(e) = self
                    .service
                    .store()
                    .put_history(&rec.id, uid, started_ms, &json)
                    .await
                {
                    tracing::warn!(error = %e, "Writing rotation history failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "Encoding rotation history failed"),
        }
    }

    async fn load_record(&self, due: &DueRotation) -> AttemptRecord {
        let s = &due.state;
        if !due.started_now {
            if let Ok(records) = self.service.store().list_history(&due.uid, 20).await {
                for r in records {
                    if let Ok(rec) = serde_json::from_str::<AttemptRecord>(&r) {
                        if rec.id == s.history_id {
                            return rec;
                        }
                    }
                }
            }
        }
        AttemptRecord {
            id: s.history_id.clone(),
            arn: due.arn.clone(),
            token: s.token.clone(),
            trigger: s.trigger.clone(),
            attempt: s.attempt,
            late: s.late,
            test_only: s.test_only,
            started_at: secs(self.service.clock().now_ms()),
            outcome: "InProgress".into(),
            ..Default::default()
        }
    }

    /// Takes the due secret `uid` and runs its rotation to the end of this attempt.
    pub(crate) async fn drive(self: &Arc<Self>, uid: &str) {
        let due = match self.service.prepare_rotation(uid).await {
            Ok(Some(d)) => d,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(secret_uid = uid, error = %e, "Preparing a rotation failed");
                return;
            }
        };
        self.metrics
            .observe_lag(self.service.clock().now_ms() - due.due_ms);
        let started_ms = self.service.clock().now_ms();
        let mut rec = self.load_record(&due).await;
        if rec.steps.is_empty() && due.state.late {
            tracing::warn!(secret_arn = %due.arn, "Running a rotation whose window was missed");
        }
        self.save(uid, started_ms, &rec).await;
        let arn = due.arn.clone();
        let token = due.state.token.clone();

        let Some(exec) = self.executor(&due.lambda_arn) else {
            let msg = format!("The rotation function {} does not exist.", due.lambda_arn);
            self.attempt_failed(&due, &mut rec, started_ms, None, msg)
                .await;
            return;
        };
        let steps: Vec<u8> = if due.state.test_only {
            vec![2]
        } else {
            (due.state.next_step..4).collect()
        };
        for i in steps {
            let step = step_of(i);
            match self.service.pending_status(&arn, &token).await {
                Ok(Pending::Pending) => {}
                Ok(Pending::Abandoned) => {
                    self.abandoned(&due, &mut rec, started_ms).await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(secret_arn = %arn, error = %e, "Checking a rotation failed; will retry");
                    return;
                }
            }
            let event = RotationEvent {
                step,
                secret_id: arn.clone(),
                client_request_token: token.clone(),
                rotation_token: due.state.rotation_token.clone(),
            };
            let mut srec = StepRecord {
                step: STEPS[i as usize].to_owned(),
                started_at: secs(self.service.clock().now_ms()),
                ..Default::default()
            };
            // The step's temporary credentials: redacted from its output like the values.
            let mut credential_terms: Vec<String> = Vec::new();
            let result = match &exec {
                Exec::Builtin(f) => {
                    let inv = Invocation {
                        event,
                        env: Vec::new(),
                        timeout: BUILTIN_TIMEOUT,
                    };
                    match tokio::time::timeout(BUILTIN_TIMEOUT, f.invoke(&inv)).await {
                        Ok(r) => r,
                        Err(_) => Err(FunctionError::Timeout(BUILTIN_TIMEOUT, Default::default())),
                    }
                }
                Exec::External(f, timeout, with_credentials) => {
                    let mut env = vec![
                        (
                            "SECRETS_MANAGER_ENDPOINT".to_owned(),
                            self.config.endpoint_url.clone(),
                        ),
                        (
                            "AWS_ENDPOINT_URL_SECRETS_MANAGER".to_owned(),
                            self.config.endpoint_url.clone(),
                        ),
                        ("AWS_REGION".to_owned(), self.service.region().to_owned()),
                        (
                            "AWS_DEFAULT_REGION".to_owned(),
                            self.service.region().to_owned(),
                        ),
                    ];
                    let akid = if *with_credentials {
                        let master = self.master_secret_of(&arn).await;
                        let (akid, secret, session) = self.session_credentials(&arn, master);
                        credential_terms.push(secret.clone());
                        credential_terms.push(session.clone());
                        env.push(("AWS_ACCESS_KEY_ID".to_owned(), akid.clone()));
                        env.push(("AWS_SECRET_ACCESS_KEY".to_owned(), secret));
                        env.push(("AWS_SESSION_TOKEN".to_owned(), session));
                        Some(akid)
                    } else {
                        None
                    };
                    let inv = Invocation {
                        event,
                        env,
                        timeout: *timeout,
                    };
                    let r = f.invoke(&inv).await;
                    if let Some(akid) = akid {
                        self.credentials.remove(&akid);
                    }
                    r
                }
            };
            let result = match result {
                Ok(output) if step == Step::CreateSecret && !due.state.test_only => {
                    match self.check_shape(&arn, &token).await {
                        Ok(()) => Ok(output),
                        Err(message) => Err(FunctionError::Failed { message, output }),
                    }
                }
                r => r,
            };
            srec.ended_at = Some(secs(self.service.clock().now_ms()));
            let mut terms = self.redaction_terms(&arn, &token).await;
            terms.append(&mut credential_terms);
            match result {
                Ok(out) => {
                    self.audit_step(&rec.id, &arn, &token, step, &due.lambda_arn, None)
                        .await;
                    srec.outcome = Some("Succeeded".into());
                    srec.output = (!out.log.is_empty()).then(|| redact(&out.log, &terms));
                    rec.steps.push(srec);
                    if !due.state.test_only {
                        match self.service.step_completed(&arn, &token, i).await {
                            Ok(true) => {}
                            Ok(false) => {
                                self.abandoned(&due, &mut rec, started_ms).await;
                                return;
                            }
                            Err(e) => {
                                tracing::warn!(secret_arn = %arn, error = %e, "Recording a step failed; will retry");
                                return;
                            }
                        }
                    }
                    self.save(uid, started_ms, &rec).await;
                }
                Err(e) => {
                    let output = e
                        .output()
                        .map(|o| redact(&o.log, &terms))
                        .filter(|o| !o.is_empty());
                    let msg = redact(&e.to_string(), &terms);
                    self.audit_step(
                        &rec.id,
                        &arn,
                        &token,
                        step,
                        &due.lambda_arn,
                        Some("StepFailed"),
                    )
                    .await;
                    srec.outcome = Some("Failed".into());
                    srec.error = Some(msg.clone());
                    srec.output = output;
                    rec.steps.push(srec);
                    let step_name = STEPS[i as usize];
                    let text = if msg.starts_with(step_name) {
                        msg.clone()
                    } else {
                        format!("{step_name} failed: {msg}")
                    };
                    self.attempt_failed(&due, &mut rec, started_ms, Some(STEPS[i as usize]), text)
                        .await;
                    return;
                }
            }
        }
        if due.state.test_only {
            if let Err(e) = self.service.finish_test_rotation(&arn, &token, None).await {
                tracing::warn!(secret_arn = %arn, error = %e, "Ending a test rotation failed");
            }
            self.finished(uid, started_ms, &mut rec, "Succeeded", None)
                .await;
            return;
        }
        match self.service.complete_rotation(&arn, &token).await {
            Ok(Completion::Succeeded) => {
                tracing::info!(secret_arn = %arn, version_id = %token, "Rotation succeeded");
                self.finished(uid, started_ms, &mut rec, "Succeeded", None)
                    .await;
            }
            Ok(Completion::NotCurrent) => {
                let msg = format!(
                    "finishSecret completed but AWSCURRENT is not on version {token}: the function must move it."
                );
                self.attempt_failed(&due, &mut rec, started_ms, Some("finishSecret"), msg)
                    .await;
            }
            Ok(Completion::Gone) => self.abandoned(&due, &mut rec, started_ms).await,
            Err(e) => {
                tracing::warn!(secret_arn = %arn, error = %e, "Completing a rotation failed; will retry")
            }
        }
    }

    async fn finished(
        &self,
        uid: &str,
        started_ms: i64,
        rec: &mut AttemptRecord,
        outcome: &str,
        error: Option<String>,
    ) {
        rec.outcome = outcome.to_owned();
        rec.error = error;
        rec.ended_at = Some(secs(self.service.clock().now_ms()));
        self.save(uid, started_ms, rec).await;
        self.metrics.outcome(outcome);
        if outcome == "Succeeded" {
            if let Some(w) = self.config.webhook.clone().filter(|w| w.on_success) {
                let event = if rec.test_only {
                    "TestRotationSucceeded"
                } else {
                    "RotationSucceeded"
                };
                webhook::notify(self.http.clone(), w, event, rec.clone());
            }
        }
    }

    async fn abandoned(&self, due: &DueRotation, rec: &mut AttemptRecord, started_ms: i64) {
        tracing::info!(secret_arn = %due.arn, "Rotation abandoned: a new value was written meanwhile");
        if let Err(e) = self
            .service
            .abandon_rotation(&due.arn, &due.state.token)
            .await
        {
            tracing::warn!(error = %e, "Recording an abandoned rotation failed");
        }
        let msg = "A new version was written during the rotation; the rotation was abandoned.";
        self.finished(&due.uid, started_ms, rec, "Abandoned", Some(msg.into()))
            .await;
    }

    async fn attempt_failed(
        &self,
        due: &DueRotation,
        rec: &mut AttemptRecord,
        started_ms: i64,
        step: Option<&str>,
        message: String,
    ) {
        rec.failed_step = step.map(str::to_owned);
        let arn = &due.arn;
        let token = &due.state.token;
        if due.state.test_only {
            if let Err(e) = self
                .service
                .finish_test_rotation(arn, token, Some(&message))
                .await
            {
                tracing::warn!(error = %e, "Ending a failed test rotation failed");
            }
            self.final_failure(due, rec, started_ms, message, "TestRotationFailed")
                .await;
            return;
        }
        if due.state.attempt < self.config.max_attempts {
            let delay = self.backoff(due.state.attempt);
            let at = self.service.clock().now_ms() + delay.as_millis() as i64;
            tracing::warn!(secret_arn = %arn, attempt = due.state.attempt, retry_in_ms = delay.as_millis() as u64, "Rotation attempt failed: {message}");
            if let Err(e) = self
                .service
                .fail_rotation(arn, token, &message, Some(at))
                .await
            {
                tracing::warn!(error = %e, "Recording a failed attempt failed");
            }
            rec.next_attempt_at = Some(secs(at));
            self.finished(&due.uid, started_ms, rec, "Retrying", Some(message))
                .await;
            return;
        }
        if let Err(e) = self.service.fail_rotation(arn, token, &message, None).await {
            tracing::warn!(error = %e, "Recording a failed rotation failed");
        }
        self.final_failure(due, rec, started_ms, message, "RotationFailed")
            .await;
    }

    async fn final_failure(
        &self,
        due: &DueRotation,
        rec: &mut AttemptRecord,
        started_ms: i64,
        message: String,
        event: &'static str,
    ) {
        tracing::error!(secret_arn = %due.arn, "Rotation failed: {message}");
        self.finished(&due.uid, started_ms, rec, "Failed", Some(message))
            .await;
        if let Some(w) = self.config.webhook.clone() {
            webhook::notify(self.http.clone(), w, event, rec.clone());
        }
    }
}
