//! Runs one rotation: the four steps in order with one token, the completion check, and
//! failure handling (spec §5.3).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rotary_auth::{Credential, Principal, PrincipalKind, SecretKey};
use rotary_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotary_core::rotation::{Completion, DueRotation, Pending};
use rotary_core::service::rotation_read::StoredValue;
use rotary_wire::ApiError;

use crate::builtin;
use crate::engine::RotationEngine;
use crate::functions::{
    self, FunctionError, Invocation, Output, RotationEvent, RotationFunction, Step,
};
use crate::history::{redact, redaction_terms, secs, AttemptRecord, Outcome, StepRecord};
use crate::registry::{Builtin, Resolved};
use crate::webhook;

/// Timeout of a built-in step.
const BUILTIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How a step runs.
enum Exec {
    /// In-process, against the service, with [`BUILTIN_TIMEOUT`].
    Builtin(Box<dyn RotationFunction>),
    /// A registered function outside the server.
    External {
        function: Box<dyn RotationFunction>,
        /// The function's own per-step timeout.
        timeout: Duration,
        /// Whether it gets temporary credentials in its environment (process and Python
        /// functions; an HTTP function gets none).
        with_credentials: bool,
    },
}

/// The values of the secret's versions that one run of the driver has opened, by version
/// id. A version's value never changes once written, so each is decrypted at most once per
/// run; versions without a value yet (the pending placeholder) are not remembered.
#[derive(Default)]
struct Opened(HashMap<String, StoredValue>);

/// One attempt of one rotation as the driver runs it.
struct Run {
    /// What the scheduler took: the secret, function and persisted state.
    due: DueRotation,
    /// The attempt's history record, saved after each step.
    rec: AttemptRecord,
    /// When this run began (the history record's store key).
    started_ms: i64,
    /// Values opened so far.
    opened: Opened,
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
                Some(Exec::External {
                    function: functions::executor(
                        &spec,
                        &self.config.http_signing_key,
                        self.registry.policy(),
                    )?,
                    timeout: spec.timeout(),
                    with_credentials: !is_http,
                })
            }
        }
    }

    /// The master secret named by the secret's current value (`masterarn`, as AWS's
    /// alternating-users templates use it), as an ARN, if it exists.
    async fn master_secret_of(&self, arn: &str, opened: &mut Opened) -> Option<String> {
        let value = self.stage_value(arn, AWSCURRENT, opened).await.ok()??;
        let json: serde_json::Value = serde_json::from_str(value.text()?).ok()?;
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

    /// Over a shared store: publishes the step's credentials (just put in this node's table)
    /// for the other nodes, valid for the step's timeout and a minute more.
    async fn share_session(&self, akid: &str, timeout: Duration) {
        let Some(share) = &self.config.sessions else {
            return;
        };
        let Some(credential) = rotary_auth::CredentialSource::lookup(&*self.credentials, akid)
        else {
            return;
        };
        let lifetime =
            i64::try_from((timeout + Duration::from_secs(60)).as_millis()).unwrap_or(i64::MAX);
        #[expect(
            clippy::disallowed_methods,
            reason = "shared session credentials expire on the wall clock, as SigV4 timestamps do"
        )]
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        share
            .publish(akid, &credential, now.saturating_add(lifetime))
            .await;
    }

    /// The value of version `version_id` of `arn`, opened once per run (see [`Opened`]),
    /// without recording an access. `None` if it has no value (yet).
    async fn version_value(
        &self,
        arn: &str,
        version_id: &str,
        opened: &mut Opened,
    ) -> Result<Option<StoredValue>, ApiError> {
        if let Some(v) = opened.0.get(version_id) {
            return Ok(Some(v.clone()));
        }
        let value = self.service.peek_value(arn, Some(version_id), None).await?;
        if let Some(v) = &value {
            opened.0.insert(version_id.to_owned(), v.clone());
        }
        Ok(value)
    }

    /// The value of the version of `arn` holding `stage`, as [`Self::version_value`].
    async fn stage_value(
        &self,
        arn: &str,
        stage: &str,
        opened: &mut Opened,
    ) -> Result<Option<StoredValue>, ApiError> {
        let versions = self.service.versions_of(arn).await?.unwrap_or_default();
        match versions.into_iter().find(|v| v.has_stage(stage)) {
            Some(v) if v.has_value => self.version_value(arn, &v.version_id, opened).await,
            _ => Ok(None),
        }
    }

    /// Values to redact from function output: the secret's current, previous and pending
    /// values. Labels are read each time (a step may move them); values are opened once.
    async fn redaction_terms(&self, arn: &str, token: &str, opened: &mut Opened) -> Vec<String> {
        let Ok(Some(versions)) = self.service.versions_of(arn).await else {
            return Vec::new();
        };
        let mut terms = Vec::new();
        for v in versions {
            let wanted = v.version_id == token
                || v.has_stage(AWSCURRENT)
                || v.has_stage(AWSPREVIOUS)
                || v.has_stage(AWSPENDING);
            if !wanted || !v.has_value {
                continue;
            }
            if let Ok(Some(value)) = self.version_value(arn, &v.version_id, opened).await {
                if let Some(s) = value.text() {
                    terms.extend(redaction_terms(s));
                }
            }
        }
        terms.sort_by_key(|t| std::cmp::Reverse(t.len()));
        terms
    }

    /// After createSecret: the pending version must hold a value of the same shape as
    /// AWSCURRENT (string vs binary; a JSON object keeps every member), so a function bug
    /// cannot make a malformed credential current. The message never includes values.
    async fn check_shape(&self, arn: &str, token: &str, opened: &mut Opened) -> Result<(), String> {
        let not_stored = || {
            "the function did not store a value for the pending version (PutSecretValue with this ClientRequestToken and VersionStages [\"AWSPENDING\"])".to_owned()
        };
        let versions = self
            .service
            .versions_of(arn)
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        if !versions
            .iter()
            .any(|v| v.version_id == token && v.has_value && v.has_stage(AWSPENDING))
        {
            return Err(not_stored());
        }
        let pending = self
            .version_value(arn, token, opened)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(not_stored)?;
        let Ok(Some(current)) = self.stage_value(arn, AWSCURRENT, opened).await else {
            return Ok(());
        };
        match (current.text(), pending.text()) {
            (Some(_), None) => Err("the pending value is binary but AWSCURRENT is a string".into()),
            (None, Some(_)) => Err("the pending value is a string but AWSCURRENT is binary".into()),
            (Some(c), Some(p)) => {
                let object = |s: &str| match serde_json::from_str::<serde_json::Value>(s) {
                    Ok(serde_json::Value::Object(m)) => Some(m),
                    _ => None,
                };
                match (object(c), object(p)) {
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

    /// The history record of the attempt `due` continues, or a new one.
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
            trigger: s.trigger,
            attempt: s.attempt,
            late: s.late,
            test_only: s.test_only,
            started_at: secs(self.service.clock().now_ms()),
            ended_at: None,
            outcome: Outcome::InProgress,
            failed_step: None,
            error: None,
            next_attempt_at: None,
            steps: Vec::new(),
        }
    }

    /// Takes the due secret `uid` and runs its rotation to the end of this attempt:
    /// each remaining step in turn, then the completion check.
    pub(crate) async fn drive(self: &Arc<Self>, uid: &str) {
        let Some(mut run) = self.start_run(uid).await else {
            return;
        };
        let Some(exec) = self.executor(&run.due.lambda_arn) else {
            let msg = format!(
                "The rotation function {} does not exist.",
                run.due.lambda_arn
            );
            self.attempt_failed(&mut run, None, msg, true).await;
            return;
        };
        for step in run.due.state.remaining_steps() {
            if self.run_step(&mut run, &exec, step).await.is_break() {
                return;
            }
        }
        self.conclude(&mut run).await;
    }

    /// Takes the due secret (see `SecretsService::prepare_rotation`) and opens the
    /// attempt's history record. `None` when there is nothing to run now.
    async fn start_run(&self, uid: &str) -> Option<Run> {
        let due = match self.service.prepare_rotation(uid).await {
            Ok(Some(d)) => d,
            Ok(None) => return None,
            Err(e) => {
                let at = self.back_off(uid);
                tracing::warn!(secret_uid = uid, error = %e, retry_at_ms = at, "Preparing a rotation failed; will retry");
                return None;
            }
        };
        let started_ms = self.service.clock().now_ms();
        self.metrics.observe_lag(started_ms - due.due_ms);
        let rec = self.load_record(&due).await;
        if rec.steps.is_empty() && due.state.late {
            tracing::warn!(secret_arn = %due.arn, "Running a rotation whose window was missed");
        }
        self.save(uid, started_ms, &rec).await;
        Some(Run {
            due,
            rec,
            started_ms,
            opened: Opened::default(),
        })
    }

    /// One step: checks the rotation is still pending, invokes the function, checks what
    /// createSecret stored, redacts the output, and records the step (or the attempt's
    /// failure). `Break` when the attempt ends here.
    async fn run_step(&self, run: &mut Run, exec: &Exec, step: Step) -> ControlFlow<()> {
        let (arn, token) = (run.due.arn.clone(), run.due.state.token.clone());
        match self.service.pending_status(&arn, &token).await {
            Ok(Pending::Pending) => {}
            Ok(Pending::Abandoned) => {
                self.abandoned(run).await;
                return ControlFlow::Break(());
            }
            Err(e) => {
                self.retry_later(&run.due, "Checking a rotation", &e).await;
                return ControlFlow::Break(());
            }
        }
        let started_at = secs(self.service.clock().now_ms());
        let (mut result, mut credential_terms) = self.invoke(run, exec, step).await;
        if step == Step::CreateSecret && !run.due.state.test_only {
            if let Ok(output) = result {
                result = match self.check_shape(&arn, &token, &mut run.opened).await {
                    Ok(()) => Ok(output),
                    Err(message) => Err(FunctionError::Failed { message, output }),
                };
            }
        }
        let mut srec = StepRecord {
            step,
            started_at,
            ended_at: Some(secs(self.service.clock().now_ms())),
            outcome: None,
            error: None,
            output: None,
        };
        // Values are opened only when there is output to redact.
        let has_output = result.as_ref().map_or(true, |out| !out.log.is_empty());
        let mut terms = if has_output {
            self.redaction_terms(&arn, &token, &mut run.opened).await
        } else {
            Vec::new()
        };
        terms.append(&mut credential_terms);
        match result {
            Ok(out) => {
                srec.outcome = Some(Outcome::Succeeded);
                srec.output = (!out.log.is_empty()).then(|| redact(&out.log, &terms));
                self.step_succeeded(run, srec).await
            }
            Err(e) => {
                srec.outcome = Some(Outcome::Failed);
                srec.error = Some(redact(&e.to_string(), &terms));
                srec.output = e
                    .output()
                    .map(|o| redact(&o.log, &terms))
                    .filter(|o| !o.is_empty());
                // A configuration error in the secret fails at once: a retry would only
                // repeat it.
                let retryable = !matches!(e, FunctionError::Config(_));
                self.step_failed(run, srec, retryable).await;
                ControlFlow::Break(())
            }
        }
    }

    /// Invokes `step` of the function: a built-in in-process with [`BUILTIN_TIMEOUT`], a
    /// registered function with its own timeout, its environment and, for process and
    /// Python functions, temporary credentials that end with the step. Returns the result
    /// and the credentials to redact from its output.
    async fn invoke(
        &self,
        run: &mut Run,
        exec: &Exec,
        step: Step,
    ) -> (Result<Output, FunctionError>, Vec<String>) {
        let event = RotationEvent {
            step,
            secret_id: run.due.arn.clone(),
            client_request_token: run.due.state.token.clone(),
            rotation_token: run.due.state.rotation_token.clone(),
        };
        match exec {
            Exec::Builtin(f) => {
                let inv = Invocation {
                    event,
                    env: Vec::new(),
                    timeout: BUILTIN_TIMEOUT,
                };
                let result = match tokio::time::timeout(BUILTIN_TIMEOUT, f.invoke(&inv)).await {
                    Ok(r) => r,
                    Err(_) => Err(FunctionError::Timeout(BUILTIN_TIMEOUT, Default::default())),
                };
                (result, Vec::new())
            }
            Exec::External {
                function,
                timeout,
                with_credentials,
            } => {
                let mut env = self.function_env();
                let mut terms = Vec::new();
                let akid = if *with_credentials {
                    let master = self.master_secret_of(&run.due.arn, &mut run.opened).await;
                    let (akid, secret, session) = self.session_credentials(&run.due.arn, master);
                    terms.push(secret.clone());
                    terms.push(session.clone());
                    env.push(("AWS_ACCESS_KEY_ID".to_owned(), akid.clone()));
                    env.push(("AWS_SECRET_ACCESS_KEY".to_owned(), secret));
                    env.push(("AWS_SESSION_TOKEN".to_owned(), session));
                    self.share_session(&akid, *timeout).await;
                    Some(akid)
                } else {
                    None
                };
                let inv = Invocation {
                    event,
                    env,
                    timeout: *timeout,
                };
                let result = function.invoke(&inv).await;
                if let Some(akid) = akid {
                    self.credentials.remove(&akid);
                    if let Some(share) = &self.config.sessions {
                        share.revoke(&akid).await;
                    }
                }
                (result, terms)
            }
        }
    }

    /// Where a registered function finds Rotary: the endpoint and region, as the AWS SDKs
    /// and AWS's rotation templates read them.
    fn function_env(&self) -> Vec<(String, String)> {
        let endpoint = &self.config.endpoint_url;
        let region = self.service.region();
        [
            ("SECRETS_MANAGER_ENDPOINT", endpoint.as_str()),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint.as_str()),
            ("AWS_REGION", region),
            ("AWS_DEFAULT_REGION", region),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Records a step that succeeded: audit, history, and (for a real rotation) the
    /// persistent next step. `Break` when the rotation is no longer the one in progress.
    async fn step_succeeded(&self, run: &mut Run, srec: StepRecord) -> ControlFlow<()> {
        let step = srec.step;
        let (arn, token) = (&run.due.arn, &run.due.state.token);
        self.audit_step(&run.rec.id, arn, token, step, &run.due.lambda_arn, None)
            .await;
        run.rec.steps.push(srec);
        if !run.due.state.test_only {
            match self.service.step_completed(arn, token, step).await {
                Ok(true) => {}
                Ok(false) => {
                    self.abandoned(run).await;
                    return ControlFlow::Break(());
                }
                Err(e) => {
                    self.retry_later(&run.due, "Recording a step", &e).await;
                    return ControlFlow::Break(());
                }
            }
        }
        self.save(&run.due.uid, run.started_ms, &run.rec).await;
        ControlFlow::Continue(())
    }

    /// Records a step that failed and ends the attempt (retried later if `retryable`).
    async fn step_failed(&self, run: &mut Run, srec: StepRecord, retryable: bool) {
        let step = srec.step;
        let msg = srec.error.clone().unwrap_or_default();
        self.audit_step(
            &run.rec.id,
            &run.due.arn,
            &run.due.state.token,
            step,
            &run.due.lambda_arn,
            Some("StepFailed"),
        )
        .await;
        run.rec.steps.push(srec);
        let text = if msg.starts_with(step.as_str()) {
            msg
        } else {
            format!("{step} failed: {msg}")
        };
        self.attempt_failed(run, Some(step), text, retryable).await;
    }

    /// After the last step: a test rotation ends; a real one passes the completion check
    /// (AWSCURRENT on the new version) or fails.
    async fn conclude(&self, run: &mut Run) {
        let (arn, token) = (run.due.arn.clone(), run.due.state.token.clone());
        if run.due.state.test_only {
            if let Err(e) = self.service.finish_test_rotation(&arn, &token, None).await {
                tracing::warn!(secret_arn = %arn, error = %e, "Ending a test rotation failed");
            }
            self.finished(run, Outcome::Succeeded, None).await;
            return;
        }
        // The history records success before the completion commits: a node that dies
        // between the two leaves a rotation still in progress, which is resumed and checked
        // again (and the record corrected if the check fails), never a finished rotation
        // whose record says InProgress.
        run.rec.outcome = Outcome::Succeeded;
        run.rec.ended_at = Some(secs(self.service.clock().now_ms()));
        self.save(&run.due.uid, run.started_ms, &run.rec).await;
        match self.service.complete_rotation(&arn, &token).await {
            Ok(Completion::Succeeded) => {
                tracing::info!(secret_arn = %arn, version_id = %token, "Rotation succeeded");
                self.finished(run, Outcome::Succeeded, None).await;
            }
            Ok(Completion::NotCurrent) => {
                let msg = format!(
                    "finishSecret completed but AWSCURRENT is not on version {token}: the function must move it."
                );
                self.attempt_failed(run, Some(Step::FinishSecret), msg, true)
                    .await;
            }
            Ok(Completion::Gone) => self.abandoned(run).await,
            Err(e) => {
                run.rec.outcome = Outcome::InProgress;
                run.rec.ended_at = None;
                self.save(&run.due.uid, run.started_ms, &run.rec).await;
                self.retry_later(&run.due, "Completing a rotation", &e)
                    .await
            }
        }
    }

    /// Counts an error of Rotary's own on secret `uid` and returns the instant (ms) before
    /// which the scheduler leaves it alone: the attempt backoff, growing with each error in
    /// a row.
    fn back_off(&self, uid: &str) -> i64 {
        let mut deferred = self.deferred.lock();
        let entry = deferred.entry(uid.to_owned()).or_insert((0, 0));
        entry.0 = entry.0.saturating_add(1);
        let delay = i64::try_from(self.backoff(entry.0).as_millis()).unwrap_or(i64::MAX);
        entry.1 = self.service.clock().now_ms().saturating_add(delay);
        entry.1
    }

    /// An error of Rotary's own (the store, most likely) stopped the rotation between
    /// steps. Its state is kept, and it resumes after a backoff rather than at the next
    /// scheduler poll, which would re-run a lasting fault every second. See: #13
    async fn retry_later(&self, due: &DueRotation, what: &str, error: &rotary_wire::ApiError) {
        let at = self.back_off(&due.uid);
        tracing::warn!(secret_arn = %due.arn, error = %error, retry_at_ms = at, "{what} failed; will retry");
        if let Err(e) = self
            .service
            .defer_rotation(&due.arn, &due.state.token, at)
            .await
        {
            tracing::warn!(secret_arn = %due.arn, error = %e, "Deferring a rotation failed");
        }
    }

    /// Ends the attempt: history record, metrics, and the success webhook.
    async fn finished(&self, run: &mut Run, outcome: Outcome, error: Option<String>) {
        let rec = &mut run.rec;
        self.deferred.lock().remove(&run.due.uid);
        rec.outcome = outcome;
        rec.error = error;
        rec.ended_at = Some(secs(self.service.clock().now_ms()));
        self.save(&run.due.uid, run.started_ms, rec).await;
        self.metrics.outcome(outcome);
        if outcome == Outcome::Succeeded {
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

    async fn abandoned(&self, run: &mut Run) {
        let due = &run.due;
        tracing::info!(secret_arn = %due.arn, "Rotation abandoned: a new value was written meanwhile");
        if let Err(e) = self
            .service
            .abandon_rotation(&due.arn, &due.state.token)
            .await
        {
            tracing::warn!(error = %e, "Recording an abandoned rotation failed");
        }
        let msg = "A new version was written during the rotation; the rotation was abandoned.";
        self.finished(run, Outcome::Abandoned, Some(msg.into()))
            .await;
    }

    /// A failed attempt: a test rotation ends; a real one is retried after a backoff while
    /// attempts remain (and the error is `retryable`), else given up.
    async fn attempt_failed(
        &self,
        run: &mut Run,
        step: Option<Step>,
        message: String,
        retryable: bool,
    ) {
        run.rec.failed_step = step;
        let (arn, token) = (run.due.arn.clone(), run.due.state.token.clone());
        if run.due.state.test_only {
            if let Err(e) = self
                .service
                .finish_test_rotation(&arn, &token, Some(&message))
                .await
            {
                tracing::warn!(error = %e, "Ending a failed test rotation failed");
            }
            self.final_failure(run, message, "TestRotationFailed").await;
            return;
        }
        let attempt = run.due.state.attempt;
        if retryable && attempt < self.config.max_attempts {
            let delay = self.backoff(attempt);
            let at = self.service.clock().now_ms() + delay.as_millis() as i64;
            tracing::warn!(secret_arn = %arn, attempt, retry_in_ms = delay.as_millis() as u64, "Rotation attempt failed: {message}");
            if let Err(e) = self
                .service
                .fail_rotation(&arn, &token, &message, Some(at))
                .await
            {
                tracing::warn!(error = %e, "Recording a failed attempt failed");
            }
            run.rec.next_attempt_at = Some(secs(at));
            self.finished(run, Outcome::Retrying, Some(message)).await;
            return;
        }
        if let Err(e) = self
            .service
            .fail_rotation(&arn, &token, &message, None)
            .await
        {
            tracing::warn!(error = %e, "Recording a failed rotation failed");
        }
        self.final_failure(run, message, "RotationFailed").await;
    }

    async fn final_failure(&self, run: &mut Run, message: String, event: &'static str) {
        tracing::error!(secret_arn = %run.due.arn, "Rotation failed: {message}");
        self.finished(run, Outcome::Failed, Some(message)).await;
        if let Some(w) = self.config.webhook.clone() {
            webhook::notify(self.http.clone(), w, event, run.rec.clone());
        }
    }
}
