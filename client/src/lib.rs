//! Release Pilot's HTTP client: JSON in, JSON or a problem out. The CLI's client
//! subcommands and the generated demo history both go through it, so they exercise the
//! same public API a CI pipeline does.

pub mod history;

use serde_json::Value;

/// Why a call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached or answered something that is not JSON.
    #[error("{0}")]
    Transport(#[from] reqwest::Error),
    /// The server refused, with a problem document.
    #[error("{status} {code}: {detail}")]
    Problem {
        /// The HTTP status.
        status: u16,
        /// The problem's stable code.
        code: String,
        /// What to do about it.
        detail: String,
        /// The whole document.
        body: Value,
    },
}

impl ClientError {
    /// The problem's stable code, when the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Problem { code, .. } => Some(code),
            Self::Transport(_) => None,
        }
    }
}

/// A connection to one Release Pilot server.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    /// A client for the server at `base` (such as `http://127.0.0.1:8080`).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, token: &str, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(self.http.post(self.url(path)).bearer_auth(token).json(body))
            .await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, token: &str, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(self.http.put(self.url(path)).bearer_auth(token).json(body))
            .await
    }

    /// `GET path` (with its query string).
    pub async fn get(&self, token: &str, path: &str) -> Result<Value, ClientError> {
        self.send(self.http.get(self.url(path)).bearer_auth(token))
            .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `request`, retrying a few times when another command changed the same
    /// resource at the same moment (nothing was appended, so a retry is safe).
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let mut attempt = 0_u64;
        loop {
            // A JSON or empty body can always be cloned; if one cannot, it is sent once.
            let Some(this) = request.try_clone() else {
                return self.send_once(request).await;
            };
            match self.send_once(this).await {
                Err(e) if e.code() == Some("concurrent_modification") && attempt < 8 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(5 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn send_once(&self, request: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(body);
        }
        let field = |name: &str| {
            body.get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Err(ClientError::Problem {
            status: status.as_u16(),
            code: field("code"),
            detail: field("detail"),
            body,
        })
    }
}
