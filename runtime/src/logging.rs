//! Logs in runc's shape, because containerd and podman parse runc's.
//!
//! JSON lines are `{"level":"error","msg":"…","time":"…"}` (containerd's runc
//! shim reads the last `error` line of `--log` to report why a call failed;
//! youki's different shape is dropped, youki #3670). Text lines are logrus's
//! `time="…" level=error msg="…"`.

use std::fmt;
use std::fs::OpenOptions;
use std::path::Path;

use anyhow::{Context, Result};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{self, FilterExt};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn parse(format: Option<&str>) -> Result<Self> {
        match format {
            None | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => anyhow::bail!("invalid --log-format {other:?}: expected text or json"),
        }
    }
}

struct RuncFormat(LogFormat);

impl<S, N> FormatEvent<S, N> for RuncFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut message = MessageVisitor(String::new());
        event.record(&mut message);
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        let time = substrate_trace::Timestamp::now().to_string();
        let line = match self.0 {
            LogFormat::Json => {
                serde_json::json!({ "level": level, "msg": message.0, "time": time }).to_string()
            }
            LogFormat::Text => format!("time={:?} level={level} msg={:?}", time, message.0),
        };
        writeln!(writer, "{line}")
    }
}

/// Collects an event's message and fields into one `msg` string.
struct MessageVisitor(String);

impl tracing::field::Visit for MessageVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let sep = if self.0.is_empty() { "" } else { " " };
            let _ = write!(self.0, "{sep}{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}

/// Installs the global logger. Without `--debug` only warnings and errors of
/// this runtime are written: libcontainer's error lines in this process repeat
/// what the returned error already says. Its error lines from the container's
/// intermediate and init processes are kept, because the error those send back
/// is only an errno ("EPERM") and the line says which step failed.
pub fn init(log: Option<&Path>, format: LogFormat, debug: bool) -> Result<()> {
    let writer = match log {
        Some(path) if path != Path::new("/dev/stderr") => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open --log {}", path.display()))?;
            BoxMakeWriter::new(std::sync::Mutex::new(file))
        }
        _ => BoxMakeWriter::new(std::io::stderr),
    };
    let layer = tracing_subscriber::fmt::layer()
        .event_format(RuncFormat(format))
        .with_writer(writer);
    if debug {
        let layer = layer.with_filter(EnvFilter::new("debug"));
        tracing_subscriber::registry().with(layer).init();
    } else {
        let runtime_pid = std::process::id();
        let from_container_setup = filter::filter_fn(move |meta| {
            *meta.level() == Level::ERROR
                && meta.target().starts_with("libcontainer")
                && std::process::id() != runtime_pid
        });
        let layer = layer.with_filter(
            EnvFilter::new("warn,libcontainer=off,libcgroups=off").or(from_container_setup),
        );
        tracing_subscriber::registry().with(layer).init();
    }
    Ok(())
}
