//! The node's settings file, `<config dir>/config.yaml` (`/etc/substrate`,
//! or `SUBSTRATE_CONFIG_DIR`: see [`NodeConfig`]): what the node does with
//! its worlds beyond what a policy says. Today one section:
//!
//! ```yaml
//! export:
//!   otlp:
//!     endpoint: http://collector.example:4318   # POSTs go to {endpoint}/v1/traces
//!     headers:                                  # optional, sent with every POST
//!       authorization: Bearer abc123
//! ```
//!
//! With `export.otlp` set, a world's monitor exports the world's trace there
//! as the world ends (`monitor::export`, `docs/export.md`). A file that is
//! absent is an empty one; a key this version does not know is an error,
//! with its line and column, as in a policy.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::world::NodeConfig;

/// The settings file's name in the config dir.
pub const SETTINGS_FILE: &str = "config.yaml";

/// `config.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSettings {
    #[serde(default)]
    pub export: Option<ExportSettings>,
}

/// `export:` where worlds' traces go as they end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSettings {
    #[serde(default)]
    pub otlp: Option<OtlpSettings>,
}

/// `export.otlp:` an OTLP/HTTP collector (Jaeger, Tempo, the OpenTelemetry
/// Collector...).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpSettings {
    /// The collector's base URL (`http://host:4318`): spans are POSTed to
    /// `{endpoint}/v1/traces`, or to the URL itself when it already ends so.
    pub endpoint: Endpoint,
    /// Sent with every request (an API key, a tenant).
    #[serde(default)]
    pub headers: BTreeMap<HeaderName, HeaderValue>,
}

impl fmt::Debug for OtlpSettings {
    /// Without the headers' values: they are often credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpSettings")
            .field("endpoint", &self.endpoint)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// An `http://` or `https://` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint(String);

impl Endpoint {
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let rest = text
            .strip_prefix("http://")
            .or_else(|| text.strip_prefix("https://"))
            .ok_or_else(|| {
                format!("endpoint {text:?} is not an http:// or https:// URL (e.g. http://collector:4318)")
            })?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() {
            return Err(format!("endpoint {text:?} names no host"));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("endpoint {text:?} contains whitespace"));
        }
        Ok(Endpoint(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An HTTP header's name: RFC 9110's token characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HeaderName(String);

impl HeaderName {
    pub fn parse(text: &str) -> Result<HeaderName, String> {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if text.is_empty() || !text.chars().all(token) {
            return Err(format!("{text:?} is not an HTTP header name"));
        }
        Ok(HeaderName(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An HTTP header's value: no line breaks or other control characters.
#[derive(Clone, PartialEq, Eq)]
pub struct HeaderValue(String);

impl HeaderValue {
    pub fn parse(text: &str) -> Result<HeaderValue, String> {
        if text.chars().any(|c| c.is_control() && c != '\t') {
            return Err("a header's value may not hold line breaks or control characters".into());
        }
        Ok(HeaderValue(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"…\"")
    }
}

/// Checks a string inside the visitor, so that an error is marked with the
/// value's own line and column.
macro_rules! checked_string {
    ($type:ident, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Checked;
                impl Visitor<'_> for Checked {
                    type Value = $type;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, text: &str) -> Result<$type, E> {
                        $type::parse(text).map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(Checked)
            }
        }
    };
}

checked_string!(Endpoint, "an http:// or https:// URL");
checked_string!(HeaderName, "an HTTP header name");
checked_string!(HeaderValue, "an HTTP header value");

/// Why the settings file cannot be used; names the file, and the line and
/// column of what is wrong in it.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read the node settings {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}{}: {message}", path.display(), match position {
        Some((line, column)) => format!(":{line}:{column}"),
        None => String::new(),
    })]
    Invalid {
        path: PathBuf,
        /// Line and column, from 1.
        position: Option<(usize, usize)>,
        message: String,
    },
}

impl NodeSettings {
    /// The settings of the node whose config dir is `node`'s; an absent
    /// file is the empty settings.
    pub fn load(node: &NodeConfig) -> Result<NodeSettings, SettingsError> {
        let path = node.dir().join(SETTINGS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => NodeSettings::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NodeSettings::default()),
            Err(source) => Err(SettingsError::Read { path, source }),
        }
    }

    /// The settings in `text`, read from `path` (for errors).
    pub fn parse(text: &str, path: &Path) -> Result<NodeSettings, SettingsError> {
        if text.trim().is_empty() {
            return Ok(NodeSettings::default());
        }
        serde_yaml_ng::from_str(text).map_err(|error| {
            let position = error.location().map(|l| (l.line(), l.column()));
            let mut message = error.to_string();
            // The position leads the message (`file:line:column: ...`), where
            // editors look for it, instead of ending it.
            if let Some((line, column)) = position {
                let at = format!(" at line {line} column {column}");
                message = match message.strip_suffix(&at) {
                    Some(rest) => rest.to_owned(),
                    None => message.replacen(&at, "", 1),
                };
            }
            SettingsError::Invalid {
                path: path.to_owned(),
                position,
                message,
            }
        })
    }

    /// Where worlds' traces are exported as they end, if anywhere.
    pub fn otlp(&self) -> Option<&OtlpSettings> {
        self.export.as_ref()?.otlp.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NodeSettings, SettingsError> {
        NodeSettings::parse(text, Path::new("/etc/substrate/config.yaml"))
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn an_export_section_names_the_collector_and_its_headers() {
        let settings = parse(
            "export:\n  otlp:\n    endpoint: https://otel.example:4318\n    headers:\n      x-api-key: abc\n",
        )
        .unwrap();
        let otlp = settings.otlp().unwrap();
        assert_eq!(otlp.endpoint.as_str(), "https://otel.example:4318");
        let headers: Vec<(&str, &str)> = otlp
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(headers, [("x-api-key", "abc")]);
        // Credentials stay out of logs.
        assert!(!format!("{settings:?}").contains("abc"));
    }

    #[test]
    fn an_empty_or_absent_file_exports_nothing() {
        assert_eq!(parse("").unwrap(), NodeSettings::default());
        assert_eq!(parse("# nothing\n").unwrap(), NodeSettings::default());
        assert!(parse("export: {}\n").unwrap().otlp().is_none());
        let missing = NodeSettings::load(&NodeConfig::new("/nonexistent/substrate")).unwrap();
        assert!(missing.otlp().is_none());
    }

    #[test]
    fn unknown_keys_are_errors_with_their_line_and_column() {
        let message = error("export:\n  otlp:\n    endpoint: http://c:4318\n    header: {}\n");
        assert!(
            message
                .starts_with("/etc/substrate/config.yaml:4:5: export.otlp: unknown field `header`"),
            "{message}"
        );
        let message = error("exports: {}\n");
        assert!(
            message.starts_with("/etc/substrate/config.yaml:1:1: "),
            "{message}"
        );
        assert!(message.contains("unknown field `exports`"), "{message}");
    }

    #[test]
    fn bad_endpoints_and_headers_are_marked_where_they_are() {
        let message = error("export:\n  otlp:\n    endpoint: collector:4318\n");
        assert!(
            message.starts_with("/etc/substrate/config.yaml:3:15: "),
            "{message}"
        );
        assert!(
            message.contains("not an http:// or https:// URL"),
            "{message}"
        );
        let message = error("export:\n  otlp:\n    endpoint: http:///v1\n");
        assert!(message.contains("names no host"), "{message}");
        let message =
            error("export:\n  otlp:\n    endpoint: http://c\n    headers:\n      \"a b\": x\n");
        assert!(
            message.starts_with("/etc/substrate/config.yaml:5:7: "),
            "{message}"
        );
        assert!(message.contains("not an HTTP header name"), "{message}");
        let message = error("export:\n  otlp:\n    headers: {}\n");
        assert!(message.contains("missing field `endpoint`"), "{message}");
    }
}
