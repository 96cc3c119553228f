//! The `rotary` client commands: a signed client of a running server's Rotary API.
//!
//! Endpoint: `--endpoint-url`, else `AWS_ENDPOINT_URL_SECRETS_MANAGER`, else
//! `AWS_ENDPOINT_URL`, else the profile's `endpoint_url`, else `http://127.0.0.1:8750`.
//! Credentials and region come from the usual AWS environment variables and `~/.aws`
//! profiles (the AWS SDK's default chain; `--profile` picks one).

pub(crate) mod audit;
mod client;
mod commands;
mod iam;
mod kms;
mod policy;
mod reset;
mod schedule;
mod secret;

pub(crate) use commands::{is_api_error, run, ClientArgs, ClientCommand};
