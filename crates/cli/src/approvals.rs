//! `agentsh approvals` and `agentsh metrics`: clients of the running service's local API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::service_cmd::{DEFAULT_API, default_token_file};

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The service's API address
    #[arg(long, default_value = DEFAULT_API, global = true)]
    pub api: SocketAddr,
    /// The service's API token file
    #[arg(long, global = true)]
    pub api_token_file: Option<PathBuf>,
}

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

fn call(api: &ApiArgs, method: &str, path: &str) -> Result<String, String> {
    let token_file = api
        .api_token_file
        .clone()
        .unwrap_or_else(default_token_file);
    let token = std::fs::read_to_string(&token_file).map_err(|e| {
        format!(
            "cannot read the API token `{}`: {e} (is `agentsh service run` running?)",
            token_file.display()
        )
    })?;
    let url = format!("http://{}{path}", api.api);
    let auth = format!("Bearer {}", token.trim());
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let result = match method {
        "POST" => agent.post(&url).header("Authorization", &auth).send_empty(),
        _ => agent.get(&url).header("Authorization", &auth).call(),
    };
    let mut resp = result.map_err(|e| format!("cannot reach the service at {}: {e}", api.api))?;
    let status = resp.status();
    let body = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("{status}: {}", body.trim()))
    }
}

pub fn run(args: ApprovalsArgs) -> ExitCode {
    let result = match &args.command {
        ApprovalsCommand::List => call(&args.api, "GET", "/v1/approvals").map(|body| {
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
            call(
                &args.api,
                "POST",
                &format!("/v1/approvals/{id}/allow{scope}"),
            )
        }
        ApprovalsCommand::Deny { id } => {
            call(&args.api, "POST", &format!("/v1/approvals/{id}/deny"))
        }
    };
    finish(result)
}

fn finish(result: Result<String, String>) -> ExitCode {
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
    finish(call(&api, "GET", "/v1/metrics"))
}
