//! The OTLP JSON encoding (OTLP spec, "JSON Protobuf Encoding"), in the
//! OpenTelemetry file exporter's layout: JSON lines, one
//! `ExportTraceServiceRequest` per line (what the Collector's
//! `otlpjsonfile` receiver and `file` exporter read and write).
//!
//! `opentelemetry-proto`'s serde support writes the protobuf JSON mapping
//! OTLP asks for: camelCase field names, trace and span ids as hex (not
//! base64, OTLP's one exception to the mapping), 64-bit integers
//! (`startTimeUnixNano`, `intValue`) as decimal strings, enums (`kind`,
//! `status.code`) as integers. Where it differs from what the protobuf
//! JSON mapping writes, [`to_line`] fixes it: it writes every field, those
//! at their default value too (`"traceState":""`, `"droppedAttributesCount":0`,
//! `"parentSpanId":""` on a root span, `"events":[]`...), which the mapping
//! leaves out (a reader takes an absent field for its default, so both
//! read the same; the file is a third smaller without them). Default-valued
//! fields of the messages are left out here; attribute values (`AnyValue`)
//! are never touched, since an empty string, a `false` or a `0` there is
//! the value.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde_json::Value;

/// One request as one line of OTLP JSON, without the newline.
pub fn to_line(request: &ExportTraceServiceRequest) -> String {
    let mut value = serde_json::to_value(request).expect("OTLP messages serialize");
    prune(&mut value);
    value.to_string()
}

/// A line of OTLP JSON read back.
pub fn from_line(line: &str) -> Result<ExportTraceServiceRequest, serde_json::Error> {
    serde_json::from_str(line)
}

/// Leaves out the message fields at their default value, down the tree,
/// but never inside an `AnyValue` (a `value` of a key-value, an element of
/// an array value's `values`).
fn prune(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                match key.as_str() {
                    // An AnyValue: its own field is the value, whatever it is.
                    "value" => prune_any_value(field),
                    _ => prune(field),
                }
            }
            fields.retain(|_, v| !is_default(v));
        }
        Value::Array(items) => items.iter_mut().for_each(prune),
        _ => {}
    }
}

/// Inside an `AnyValue`, only the messages it holds are pruned: an array
/// value's elements (`AnyValue`s again) and a key-value list's elements.
fn prune_any_value(value: &mut Value) {
    let Value::Object(fields) = value else {
        return;
    };
    for (key, field) in fields.iter_mut() {
        let Some(Value::Array(items)) = field.get_mut("values") else {
            continue;
        };
        match key.as_str() {
            "arrayValue" => items.iter_mut().for_each(prune_any_value),
            "kvlistValue" => items.iter_mut().for_each(prune),
            _ => {}
        }
    }
}

fn is_default(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{
        status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
    };

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn request() -> ExportTraceServiceRequest {
        let root = Span {
            trace_id: vec![0xab; 16],
            span_id: vec![0x01; 8],
            name: "world".into(),
            kind: 1,
            start_time_unix_nano: 1_719_835_200_000_000_000,
            end_time_unix_nano: 1_719_835_202_500_000_000,
            attributes: vec![
                kv("process.exit.code", any_value::Value::IntValue(0)),
                kv("empty", any_value::Value::StringValue(String::new())),
                kv("no", any_value::Value::BoolValue(false)),
                kv(
                    "list",
                    any_value::Value::ArrayValue(ArrayValue {
                        values: vec![
                            AnyValue {
                                value: Some(any_value::Value::IntValue(0)),
                            },
                            AnyValue {
                                value: Some(any_value::Value::StringValue(String::new())),
                            },
                        ],
                    }),
                ),
            ],
            ..Default::default()
        };
        let child = Span {
            parent_span_id: vec![0x01; 8],
            span_id: vec![0x02; 8],
            status: Some(Status {
                message: "EXDEV".into(),
                code: StatusCode::Error as i32,
            }),
            ..root.clone()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv(
                        "service.name",
                        any_value::Value::StringValue("substrate".into()),
                    )],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![root, child],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn lines_are_otlp_json_and_read_back_the_same() {
        let request = request();
        let line = to_line(&request);
        assert!(!line.contains('\n'));
        assert_eq!(from_line(&line).unwrap(), request);
        let json: Value = serde_json::from_str(&line).unwrap();
        let spans = &json["resourceSpans"][0]["scopeSpans"][0]["spans"];
        let root = &spans[0];
        // Hex ids, 64-bit integers as strings, enums as numbers.
        assert_eq!(root["traceId"], "abababababababababababababababab");
        assert_eq!(root["spanId"], "0101010101010101");
        assert_eq!(root["startTimeUnixNano"], "1719835200000000000");
        assert_eq!(root["kind"], 1);
        assert_eq!(spans[1]["status"]["code"], 2);
        assert_eq!(spans[1]["parentSpanId"], "0101010101010101");
        // Default-valued fields are left out: no empty parent id on a root.
        for field in [
            "parentSpanId",
            "traceState",
            "droppedAttributesCount",
            "events",
            "status",
        ] {
            assert!(root.get(field).is_none(), "{field} in {root}");
        }
        // Attribute values are kept whatever they are.
        let attrs = &root["attributes"];
        assert_eq!(attrs[0]["value"], serde_json::json!({"intValue": "0"}));
        assert_eq!(attrs[1]["value"], serde_json::json!({"stringValue": ""}));
        assert_eq!(attrs[2]["value"], serde_json::json!({"boolValue": false}));
        assert_eq!(
            attrs[3]["value"],
            serde_json::json!({"arrayValue": {"values": [{"intValue": "0"}, {"stringValue": ""}]}})
        );
    }
}
