//! `agentsh approvals` and `agentsh metrics`: clients of the running service's local API.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::api_client::{ApiArgs, ApiClient, ApiError};

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List approvals waiting for a person
    List,
    /// Allow a pending operation (once, or with --session for the rest of the session)
    Approve {
        id: u32,
        #[arg(long)]
        session: bool,
    },
    /// Deny a pending operation
    Deny { id: u32 },
}

#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    #[command(subcommand)]
    pub command: ApprovalsCommand,
    #[command(flatten)]
    pub api: ApiArgs,
}

pub fn run(args: ApprovalsArgs) -> ExitCode {
    finish(ApiClient::new(&args.api).and_then(|client| answer(&client, &args.command)))
}

fn answer(client: &ApiClient, command: &ApprovalsCommand) -> Result<String, ApiError> {
    match command {
        ApprovalsCommand::List => client.get("/v1/approvals").map(|body| {
            let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
            if list.is_empty() {
                return "no approvals pending\n".to_owned();
            }
            list.iter()
                .map(|a| {
                    format!(
                        "{:>4}  {}  pid {}  {} {}  rule {}  (times out in {} s): {}\n",
                        a["id"],
                        a["session_id"].as_str().unwrap_or(""),
                        a["process_id"],
                        a["operation"].as_str().unwrap_or(""),
                        a["path"].as_str().unwrap_or(""),
                        a["rule"].as_str().unwrap_or(""),
                        a["timeout_secs"],
                        a["message"].as_str().unwrap_or("")
                    )
                })
                .collect()
        }),
        ApprovalsCommand::Approve { id, session } => {
            let scope = if *session { "?scope=session" } else { "" };
            client.post(&format!("/v1/approvals/{id}/allow{scope}"))
        }
        ApprovalsCommand::Deny { id } => client.post(&format!("/v1/approvals/{id}/deny")),
    }
}

fn finish(result: Result<String, ApiError>) -> ExitCode {
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("agentsh: {e}");
            ExitCode::from(1)
        }
    }
}

/// `agentsh metrics`: the service's and the driver's metrics, with the guide's cache hit rate.
pub fn metrics(api: ApiArgs) -> ExitCode {
    finish(ApiClient::new(&api).and_then(|client| client.get("/v1/metrics")))
}
