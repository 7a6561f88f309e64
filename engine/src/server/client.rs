//! A small blocking HTTP client for a flowrun server on this machine, used
//! by deployments (reload), `flowrun serve status` (ping) and batch
//! inference (invocations).
//!
//! It always connects to a loopback address (127.0.0.1, or ::1 for a server
//! bound to an IPv6 address) on the server's port, whatever address the
//! server bound, so it never sends traffic off the machine. A server bound
//! to one specific non-loopback address is not reachable this way; such a
//! server still follows the registry by polling it.

use super::ReloadOutcome;
use super::daemon::ServerInfo;
use super::router::VERSION_HEADER;
use std::time::Duration;

/// Errors from talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No response: the server is down or the port is wrong.
    #[error("failed to reach the flowrun server at {url}: {source}")]
    Unreachable {
        /// The URL requested.
        url: String,
        /// The underlying error.
        #[source]
        source: ureq::Error,
    },

    /// The server responded with an error status.
    #[error("the flowrun server answered {status} to {url}: {message}")]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The error message of the response body.
        message: String,
    },

    /// The response body is not what the route returns.
    #[error("the flowrun server sent an invalid response to {url}: {reason}")]
    Invalid {
        /// The URL requested.
        url: String,
        /// The problem found.
        reason: String,
    },
}

/// The response to a scoring request.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// One prediction per row.
    pub predictions: Vec<f64>,
    /// The `x-flowrun-model-version` header: `NAME/VERSION`.
    pub model_version: String,
}

/// A client for one server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    /// Returns a client for the server on `port` of 127.0.0.1 with a
    /// 60-second timeout per request.
    pub fn local(port: u16) -> Self {
        Self::with_base(format!("http://127.0.0.1:{port}"), Duration::from_secs(60))
    }

    /// Returns a client for a server described by its state file.
    pub fn for_server(info: &ServerInfo) -> Self {
        let ipv6 = info
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_ipv6());
        let host = if ipv6 { "[::1]" } else { "127.0.0.1" };
        Self::with_base(
            format!("http://{host}:{}", info.port),
            Duration::from_secs(60),
        )
    }

    fn with_base(base: String, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Client { base, agent }
    }

    /// Returns the base URL, such as `http://127.0.0.1:8080`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends `GET /ping` and returns the status: 200 with a model loaded,
    /// 503 without. Fails only when the server does not answer.
    pub fn ping(&self) -> Result<u16, ClientError> {
        let url = format!("{}/ping", self.base);
        let response = self
            .agent
            .get(&url)
            .config()
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .call()
            .map_err(|source| ClientError::Unreachable {
                url: url.clone(),
                source,
            })?;
        Ok(response.status().as_u16())
    }

    /// Sends `GET path` and returns the JSON body of a 2xx answer.
    pub fn get_json(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let response = self
            .agent
            .get(&url)
            .call()
            .map_err(|source| ClientError::Unreachable {
                url: url.clone(),
                source,
            })?;
        read_json(&url, response)
    }

    /// Asks the server to load the registry's production version and
    /// returns what it loaded, or its load error as [`ClientError::Status`].
    pub fn reload(&self) -> Result<ReloadOutcome, ClientError> {
        let url = format!("{}/admin/reload", self.base);
        let response =
            self.agent
                .post(&url)
                .send_empty()
                .map_err(|source| ClientError::Unreachable {
                    url: url.clone(),
                    source,
                })?;
        let body = read_json(&url, response)?;
        serde_json::from_value(body).map_err(|e| ClientError::Invalid {
            url,
            reason: e.to_string(),
        })
    }

    /// Sends a JSON scoring request to `/invocations`.
    pub fn invoke(&self, body: &serde_json::Value) -> Result<Invocation, ClientError> {
        let url = format!("{}/invocations", self.base);
        let response = self
            .agent
            .post(&url)
            .header("content-type", "application/json")
            .send(body.to_string())
            .map_err(|source| ClientError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let model_version = response
            .headers()
            .get(VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        let body = read_json(&url, response)?;
        let invalid = |reason: &str| ClientError::Invalid {
            url: url.clone(),
            reason: reason.to_string(),
        };
        let predictions = body
            .get("predictions")
            .and_then(|p| p.as_array())
            .ok_or_else(|| invalid("no `predictions` list"))?
            .iter()
            .map(|v| v.as_f64().unwrap_or(f64::NAN))
            .collect();
        Ok(Invocation {
            predictions,
            model_version,
        })
    }
}

/// Reads a JSON body, turning a non-2xx status into [`ClientError::Status`]
/// with the server's message.
fn read_json(
    url: &str,
    mut response: http::Response<ureq::Body>,
) -> Result<serde_json::Value, ClientError> {
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .map_err(|source| ClientError::Unreachable {
            url: url.to_string(),
            source,
        })?;
    let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    if !(200..300).contains(&status) {
        let message = json
            .as_ref()
            .and_then(|j| j.get("message"))
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .unwrap_or(text);
        return Err(ClientError::Status {
            url: url.to_string(),
            status,
            message,
        });
    }
    json.ok_or_else(|| ClientError::Invalid {
        url: url.to_string(),
        reason: "the body is not JSON".to_string(),
    })
}
