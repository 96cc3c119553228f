//! Rotary's rotation engine: the scheduler, the four-step driver, rotation functions,
//! rotation history, failure webhooks, compliance and schedule preview.
//!
//! The domain rules that must be atomic with a secret's versions (the AWSPENDING
//! placeholder, the completion check, the schedule) live in `rotary-core`; this crate
//! decides *when* to rotate and *runs* the steps.
//!
//! It must never log or store a secret value: function output is redacted before it is kept,
//! and history records carry ids, steps, times and error texts only.
//!
//! # Invariants
//! - One rotation per secret at a time (per process; leases come with multi-node stores).
//! - `(secret, token, next step)` is persisted before each step, so a crash resumes the same
//!   rotation with the same token.
//! - A failed rotation never moves AWSCURRENT.

pub mod api;
pub mod builtin;
pub mod driver;
pub mod engine;
pub mod functions;
pub mod history;
pub mod registry;
pub mod webhook;

pub use engine::{EngineConfig, RotationEngine, SessionShare};
pub use registry::FunctionRegistry;
