//! The details (`d`) of edges and chains: JSON objects that many spans add
//! to (a process that writes a file ten times has one `wrote` edge), merged
//! field by field so that the merge is idempotent and order-free: ingesting
//! a span again, or spans in another order, gives the same object.
//!
//! | field | merge |
//! |---|---|
//! | `first`, `first_blocked` | the one with the earliest `at` |
//! | `last` | the one with the latest `at` |
//! | `ok`, `blocked` | either |
//! | a list | the union, sorted, at most [`MAX_LIST`] entries |
//! | anything else | the value already there is kept |

use serde_json::{Map, Value};

/// Lists hold at most this many distinct entries.
pub const MAX_LIST: usize = 32;

/// Merges `new` into `into`.
pub fn merge(into: &mut Map<String, Value>, new: &Map<String, Value>) {
    for (key, value) in new {
        match into.get_mut(key) {
            None => {
                into.insert(key.clone(), value.clone());
            }
            Some(old) => match key.as_str() {
                "first" | "first_blocked" => {
                    if at(value) < at(old) {
                        *old = value.clone();
                    }
                }
                "last" => {
                    if at(value) > at(old) {
                        *old = value.clone();
                    }
                }
                "ok" | "blocked" => {
                    let either = old.as_bool().unwrap_or(false) || value.as_bool().unwrap_or(false);
                    *old = Value::Bool(either);
                }
                _ => {
                    if let (Value::Array(old), Value::Array(new)) = (&mut *old, value) {
                        union(old, new);
                    }
                }
            },
        }
    }
}

/// A `{"at": …}` object's time: RFC 3339 with nine digits in UTC, which
/// sorts as text. Missing sorts first.
fn at(value: &Value) -> &str {
    value.get("at").and_then(Value::as_str).unwrap_or("")
}

fn union(old: &mut Vec<Value>, new: &[Value]) {
    for v in new {
        if !old.contains(v) {
            old.push(v.clone());
        }
    }
    old.sort_by_key(Value::to_string);
    old.truncate(MAX_LIST);
}

/// `{"at": at, "span": span}`.
pub fn moment(at: &str, span: &str) -> Value {
    serde_json::json!({"at": at, "span": span})
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn merge_is_idempotent_and_order_free() {
        let a = obj(
            json!({"world": "w", "ops": ["write"], "first": {"at": "2", "span": "a"},
                          "last": {"at": "2", "span": "a"}, "ok": false}),
        );
        let b = obj(
            json!({"world": "w", "ops": ["create"], "first": {"at": "1", "span": "b"},
                          "last": {"at": "1", "span": "b"}, "ok": true}),
        );
        let mut ab = a.clone();
        merge(&mut ab, &b);
        let mut ba = b.clone();
        merge(&mut ba, &a);
        assert_eq!(ab, ba);
        let mut again = ab.clone();
        merge(&mut again, &a);
        merge(&mut again, &b);
        assert_eq!(again, ab);
        assert_eq!(
            Value::Object(ab),
            json!({"world": "w", "ops": ["create", "write"], "first": {"at": "1", "span": "b"},
                   "last": {"at": "2", "span": "a"}, "ok": true})
        );
    }
}
