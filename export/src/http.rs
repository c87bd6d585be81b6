//! OTLP/HTTP: an `ExportTraceServiceRequest` as protobuf, POSTed to
//! `{endpoint}/v1/traces` with `Content-Type: application/x-protobuf`
//! (OTLP spec, "OTLP/HTTP"). Throttling and unavailability (429, 502, 503,
//! 504) are retried a few times, after the server's `Retry-After` when it
//! gives one (capped) or a doubling delay; any other failure is returned at
//! once, with the collector's status and the start of its answer.

use std::io::Read;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

/// How long one POST may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts of a retryable POST, the first included.
const ATTEMPTS: u32 = 4;
/// The first wait before a retry; doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest `Retry-After` obeyed.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// How much of an error answer is read, and how much of it is shown.
const BODY_READ: u64 = 64 * 1024;
const BODY_SHOWN: usize = 300;

/// What a POST can meet.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "the collector at {url} refused the spans: HTTP {status}{}",
        excerpt(body)
    )]
    Refused {
        url: String,
        status: u16,
        /// The start of the answer's body, as text.
        body: String,
    },
    #[error("cannot send the spans to {url}")]
    Transport {
        url: String,
        #[source]
        source: ureq::Error,
    },
    #[error("invalid collector endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
}

fn excerpt(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

/// What a collector said to an accepted request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Spans it said it dropped (an OTLP partial success), with why.
    pub rejected_spans: i64,
    pub message: String,
}

/// An OTLP/HTTP collector.
pub struct Collector {
    url: String,
    headers: Vec<(String, String)>,
    agent: ureq::Agent,
}

impl Collector {
    /// The collector at `endpoint`, its base URL (`http://host:4318`): the
    /// traces' URL is `{endpoint}/v1/traces`, or `endpoint` itself when it
    /// already ends with `/v1/traces` (as `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// is given). `headers` go with every request.
    pub fn new(endpoint: &str, headers: Vec<(String, String)>) -> Result<Collector, ExportError> {
        let url = traces_url(endpoint);
        let parsed: Result<ureq::http::Uri, _> = url.parse();
        match parsed {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
            _ => {
                return Err(ExportError::Endpoint {
                    endpoint: endpoint.to_owned(),
                    reason: "expected an http:// or https:// URL, e.g. http://collector:4318"
                        .into(),
                })
            }
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            // Statuses are answers to report, not transport errors.
            .http_status_as_error(false)
            .user_agent(concat!("substrate-export/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Collector {
            url,
            headers,
            agent,
        })
    }

    /// Where requests go.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// POSTs one request; retries throttling and unavailability.
    pub fn send(&self, request: &ExportTraceServiceRequest) -> Result<Accepted, ExportError> {
        let body = request.encode_to_vec();
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.post(&body) {
                Err(Failure::Retryable { error, retry_after }) if attempt < ATTEMPTS => {
                    let wait = retry_after.map_or(backoff, |after| after.min(MAX_RETRY_AFTER));
                    eprintln!("substrate-export: {error}; trying again in {wait:?}");
                    std::thread::sleep(wait);
                    backoff *= 2;
                    attempt += 1;
                }
                Err(Failure::Retryable { error, .. } | Failure::Final(error)) => return Err(error),
                Ok(accepted) => return Ok(accepted),
            }
        }
    }

    fn post(&self, body: &[u8]) -> Result<Accepted, Failure> {
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/x-protobuf");
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let mut response = request.send(body).map_err(|source| {
            Failure::Final(ExportError::Transport {
                url: self.url.clone(),
                source,
            })
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut answer = Vec::new();
        // What cannot be read of an answer is left out of the report.
        let _ = response
            .body_mut()
            .as_reader()
            .take(BODY_READ)
            .read_to_end(&mut answer);
        if (200..300).contains(&status) {
            // A collector may answer with an empty body, or JSON when it
            // did not look at our Content-Type: only protobuf is read.
            let response =
                ExportTraceServiceResponse::decode(answer.as_slice()).unwrap_or_default();
            return Ok(response
                .partial_success
                .map(|p| Accepted {
                    rejected_spans: p.rejected_spans,
                    message: p.error_message,
                })
                .unwrap_or_default());
        }
        let error = ExportError::Refused {
            url: self.url.clone(),
            status,
            body: shown(&answer),
        };
        Err(match status {
            429 | 502 | 503 | 504 => Failure::Retryable { error, retry_after },
            _ => Failure::Final(error),
        })
    }
}

enum Failure {
    Retryable {
        error: ExportError,
        retry_after: Option<Duration>,
    },
    Final(ExportError),
}

/// `{endpoint}/v1/traces`, or `endpoint` when it already ends so.
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// The start of an answer's body as one line of text. A protobuf `Status`
/// (what OTLP/HTTP servers answer errors with) is mostly its message's
/// UTF-8, so its printable runs are what is shown.
fn shown(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut line = String::new();
    let mut gap = false;
    for c in text.chars() {
        if c.is_control() || c == char::REPLACEMENT_CHARACTER {
            gap = !line.is_empty();
            continue;
        }
        if gap {
            line.push(' ');
            gap = false;
        }
        line.push(c);
    }
    let line = line.trim();
    match line.char_indices().nth(BODY_SHOWN) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c/otlp/"), "http://c/otlp/v1/traces");
        assert_eq!(traces_url("https://c/v1/traces"), "https://c/v1/traces");
    }

    #[test]
    fn only_http_urls_are_endpoints() {
        for bad in ["collector:4318", "ftp://c", "http://", "not a url"] {
            let Err(e) = Collector::new(bad, vec![]) else {
                panic!("{bad} accepted")
            };
            assert!(
                e.to_string()
                    .contains("expected an http:// or https:// URL"),
                "{e}"
            );
        }
        assert!(Collector::new("https://c:4318", vec![]).is_ok());
    }

    #[test]
    fn an_answer_is_shown_as_one_short_line() {
        assert_eq!(shown(b"no such tenant\n"), "no such tenant");
        // A protobuf Status: code 3, message "bad span".
        assert_eq!(shown(b"\x08\x03\x12\x08bad span"), "bad span");
        let long = "x".repeat(1000);
        assert_eq!(shown(long.as_bytes()).chars().count(), BODY_SHOWN + 1);
        assert_eq!(shown(b""), "");
    }
}
