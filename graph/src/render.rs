//! The answers as people read them: text, Graphviz DOT, and SVG (DOT
//! rendered by Graphviz's `dot`). JSON is the answers' own serde form.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::query::chains::{Chain, Chains};
use crate::query::connections::Connections;
use crate::query::tree::{Node, Tree};
use crate::query::what_changed::WhatChanged;
use crate::query::who_wrote::WhoWrote;
use crate::query::worlds::Worlds;
use crate::query::Process;

fn result_text(result: &Value) -> String {
    if let Some(code) = result.get("code") {
        format!("exited {code}")
    } else if let Some(signal) = result.get("signal") {
        format!("killed by signal {signal}")
    } else if let Some(errno) = result.get("errno").and_then(Value::as_str) {
        format!("failed: {errno}")
    } else if result.is_null() {
        "running or lost".into()
    } else {
        result.to_string()
    }
}

fn process_line(p: &Process) -> String {
    let mut line = p.label();
    let mut facts = Vec::new();
    if let Some(pid) = p.world_pid {
        facts.push(format!("pid {pid}"));
    }
    facts.push(result_text(&p.result));
    if let Some(span) = &p.span {
        facts.push(format!("span {span}"));
    }
    let _ = write!(line, "  ({})", facts.join(", "));
    line
}

pub fn tree_text(tree: &Tree) -> String {
    let mut out = String::new();
    let root = &tree.root;
    let _ = writeln!(
        out,
        "world {}  ({}{})",
        tree.world,
        if root.kind == "world" {
            result_text(&root.process.result)
        } else {
            process_line(&root.process)
        },
        root.process
            .start
            .as_ref()
            .map(|s| format!(", started {s}"))
            .unwrap_or_default()
    );
    if root.kind == "world" {
        activities_text(root, "  ", &mut out);
        for child in &root.children {
            node_text(child, "  ", &mut out);
        }
    } else {
        node_text(root, "  ", &mut out);
    }
    out
}

fn node_text(node: &Node, indent: &str, out: &mut String) {
    let head = match node.kind {
        "unknown" => format!(
            "(a process whose exec span is not in the trace{})",
            node.process
                .span
                .as_ref()
                .map(|s| format!(", span {s}"))
                .unwrap_or_default()
        ),
        _ => process_line(&node.process),
    };
    let _ = writeln!(out, "{indent}- {head}");
    let inner = format!("{indent}    ");
    activities_text(node, &inner, out);
    let child_indent = format!("{indent}  ");
    for child in &node.children {
        node_text(child, &child_indent, out);
    }
}

fn activities_text(node: &Node, indent: &str, out: &mut String) {
    for d in &node.decisions {
        let _ = writeln!(
            out,
            "{indent}policy {} {} ({}{})",
            d.decision.as_deref().unwrap_or("?"),
            d.subject.as_deref().unwrap_or("?"),
            d.rule.as_deref().unwrap_or("?"),
            d.reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    for f in &node.files {
        let mut line = format!("{indent}{} {} [{}]", f.edge, f.path, f.ops.join(","));
        if !f.to.is_empty() {
            let _ = write!(line, " to {}", f.to.join(", "));
        }
        if !f.from.is_empty() {
            let _ = write!(line, " from {}", f.from.join(", "));
        }
        if !f.ok {
            let _ = write!(line, " failed {}", f.errnos.join(","));
        }
        let _ = writeln!(out, "{line}");
    }
    for l in &node.lookups {
        let _ = writeln!(
            out,
            "{indent}lookup {} -> {} ({})",
            l.name,
            if l.answers.is_empty() {
                "nothing".to_owned()
            } else {
                l.answers.join(", ")
            },
            l.verdicts.join(",")
        );
    }
    for c in &node.connections {
        let mut line = format!("{indent}connect {}", c.endpoint);
        if !c.names.is_empty() {
            let _ = write!(line, " ({})", c.names.join(", "));
        }
        let _ = write!(
            line,
            " {}{}",
            if c.blocked {
                "BLOCKED"
            } else if c.ok {
                "ok"
            } else {
                "failed"
            },
            if c.verdicts.iter().any(|v| v != "none") {
                format!(" [egress {}]", c.verdicts.join(","))
            } else {
                String::new()
            }
        );
        if !c.errnos.is_empty() {
            let _ = write!(line, " {}", c.errnos.join(","));
        }
        let _ = writeln!(out, "{line}");
    }
}

pub fn who_wrote_text(answer: &WhoWrote) -> String {
    let mut out = String::new();
    if answer.changes.is_empty() {
        let _ = writeln!(out, "no process in the graph changed {}", answer.path);
        return out;
    }
    for c in &answer.changes {
        let mut line = format!(
            "{} {} [{}] in world {}",
            answer.path,
            c.edge,
            c.ops.join(","),
            c.world
        );
        if !c.to.is_empty() {
            let _ = write!(line, " (to {})", c.to.join(", "));
        }
        if !c.from.is_empty() {
            let _ = write!(line, " (from {})", c.from.join(", "));
        }
        if let Some(first) = &c.first {
            let _ = write!(line, " at {}", first.at);
        }
        let _ = writeln!(out, "{line}");
        let _ = writeln!(out, "  by {}", process_line(&c.process));
        for (i, a) in c.ancestry.iter().enumerate() {
            let _ = writeln!(out, "  {}^ {}", "  ".repeat(i), process_line(a));
        }
    }
    out
}

pub fn what_changed_text(answer: &WhatChanged) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "world {}: {} and its descendants ({} processes)",
        answer.world,
        process_line(&answer.process),
        answer.processes
    );
    if answer.changes.is_empty() {
        let _ = writeln!(out, "  changed no file");
    }
    for c in &answer.changes {
        let mut line = format!("  {} {} [{}]", c.edge, c.path, c.ops.join(","));
        if !c.to.is_empty() {
            let _ = write!(line, " to {}", c.to.join(", "));
        }
        if !c.from.is_empty() {
            let _ = write!(line, " from {}", c.from.join(", "));
        }
        let _ = write!(line, " by {}", c.by.label());
        let _ = writeln!(out, "{line}");
    }
    out
}

pub fn connections_text(answer: &Connections) -> String {
    let mut out = String::new();
    if answer.connections.is_empty() {
        let _ = writeln!(
            out,
            "no {}connections{}",
            if answer.blocked_only { "blocked " } else { "" },
            answer
                .world
                .as_ref()
                .map(|w| format!(" in world {w}"))
                .unwrap_or_default()
        );
        return out;
    }
    let mut world = "";
    let mut process: Option<&Option<String>> = None;
    for c in &answer.connections {
        if c.world != world {
            world = &c.world;
            process = None;
            let _ = writeln!(out, "world {world}");
        }
        if process != Some(&c.process.span) {
            process = Some(&c.process.span);
            let _ = writeln!(out, "  {}", process_line(&c.process));
        }
        let mut line = format!("    {}", c.endpoint);
        if !c.names.is_empty() {
            let _ = write!(line, " ({})", c.names.join(", "));
        }
        let _ = write!(
            line,
            " {}",
            if c.blocked {
                "BLOCKED"
            } else if c.ok {
                "ok"
            } else {
                "failed"
            }
        );
        if c.verdicts.iter().any(|v| v != "none") {
            let _ = write!(
                line,
                " [egress {} {}]",
                c.verdicts.join(","),
                c.rules.join(",")
            );
        }
        if !c.errnos.is_empty() {
            let _ = write!(line, " {}", c.errnos.join(","));
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

fn chain_summary(chain: &Chain) -> String {
    let d = &chain.detail;
    let s = |f: &str| d.get(f).and_then(Value::as_str).unwrap_or("?").to_owned();
    let who = |span: Option<&str>| -> String {
        span.and_then(|s| chain.processes.get(s))
            .map(Process::label)
            .unwrap_or_else(|| format!("span {}", span.unwrap_or("?")))
    };
    let list = |f: &str| {
        d.get(f)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    match chain.kind.as_str() {
        "download_exec" => format!(
            "`{}` connected to {} and wrote {}, which `{}` then ran",
            who(d.get("downloader").and_then(Value::as_str)),
            list("endpoints"),
            s("path"),
            who(d.get("executor").and_then(Value::as_str)),
        ),
        "pipe_to_shell" => format!(
            "`{}` (connecting to {}{}) piped into `{}`",
            who(d.get("downloader").and_then(Value::as_str)),
            list("endpoints"),
            if d.get("blocked").and_then(Value::as_bool) == Some(true) {
                ", blocked"
            } else {
                ""
            },
            who(d.get("shell").and_then(Value::as_str)),
        ),
        "credential_write" | "credential_read" => format!(
            "`{}` {} {} [{}]{}",
            who(d.get("process").and_then(Value::as_str)),
            if chain.kind == "credential_write" {
                "changed"
            } else {
                "read"
            },
            s("path"),
            list("ops"),
            if d.get("ok").and_then(Value::as_bool) == Some(false) {
                " (failed)"
            } else {
                ""
            }
        ),
        "denied_then_retried" => {
            let what = if s("what") == "connect" {
                s("endpoint")
            } else {
                s("subject")
            };
            let denied_by = d
                .get("denied")
                .and_then(|m| m.get("by"))
                .and_then(Value::as_str);
            let retried = d.get("retried");
            format!(
                "{} denied to `{}`, then tried again by `{}` ({})",
                what,
                who(denied_by),
                who(retried.and_then(|m| m.get("by")).and_then(Value::as_str)),
                retried
                    .and_then(|m| m.get("decision").or_else(|| m.get("verdicts")))
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            )
        }
        other => format!("{other}: {d}"),
    }
}

pub fn chains_text(answer: &Chains) -> String {
    let mut out = String::new();
    if answer.chains.is_empty() {
        let _ = writeln!(out, "no suspicious chains");
    }
    for chain in &answer.chains {
        let _ = writeln!(
            out,
            "{} {} at {}: {}",
            chain.world,
            chain.kind,
            chain.at,
            chain_summary(chain)
        );
    }
    out
}

pub fn worlds_text(answer: &Worlds) -> String {
    let mut out = String::new();
    for w in &answer.worlds {
        let _ = writeln!(
            out,
            "{}  {}  {} spans, {} lines skipped, {} bytes read{}",
            w.world,
            if w.ended {
                result_text(&w.result)
            } else {
                "not ended".into()
            },
            w.ingest.spans,
            w.ingest.skipped,
            w.ingest.offset,
            if w.chains > 0 {
                format!(", {} suspicious chains", w.chains)
            } else {
                String::new()
            }
        );
    }
    let _ = writeln!(
        out,
        "{} worlds, {} bytes on disk",
        answer.worlds.len(),
        answer.disk_bytes
    );
    out
}

/// A DOT string literal.
fn q(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A label cut to a readable length.
fn short(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(MAX - 1).collect();
        format!("{cut}…")
    }
}

const DOT_HEAD: &str = "  rankdir=LR;\n  node [fontname=\"monospace\", fontsize=10];\n  edge [fontname=\"monospace\", fontsize=9];\n";

pub fn tree_dot(tree: &Tree) -> String {
    let mut out = format!(
        "digraph {} {{\n{DOT_HEAD}",
        q(&format!("world {}", tree.world))
    );
    let mut declared = BTreeSet::new();
    dot_node(&tree.root, None, &mut out, &mut declared);
    out.push_str("}\n");
    out
}

fn dot_node(node: &Node, parent: Option<&str>, out: &mut String, declared: &mut BTreeSet<String>) {
    let id = format!(
        "{}:{}",
        node.kind,
        node.process.span.as_deref().unwrap_or("?")
    );
    let label = match node.kind {
        "world" => format!("world {}", node.process.world.as_deref().unwrap_or("?")),
        "unknown" => "(exec span not in the trace)".to_owned(),
        _ => format!(
            "{}\\n{}",
            short(&node.process.label()).replace('\\', "\\\\"),
            result_text(&node.process.result)
        ),
    };
    let shape = if node.kind == "world" {
        "doubleoctagon"
    } else {
        "box"
    };
    let _ = writeln!(
        out,
        "  {} [shape={shape}, label=\"{}\"];",
        q(&id),
        label.replace('"', "\\\"")
    );
    if let Some(parent) = parent {
        let _ = writeln!(out, "  {} -> {};", q(parent), q(&id));
    }
    for f in &node.files {
        let fid = format!("file:{}", f.path);
        if declared.insert(fid.clone()) {
            let _ = writeln!(
                out,
                "  {} [shape=note, label={}];",
                q(&fid),
                q(&short(&f.path))
            );
        }
        let color = if !f.ok {
            "gray"
        } else if f.edge == "read" {
            "blue"
        } else {
            "black"
        };
        let _ = writeln!(
            out,
            "  {} -> {} [label={}, color={color}, style={}];",
            q(&id),
            q(&fid),
            q(&format!("{} {}", f.edge, f.ops.join(","))),
            if f.ok { "solid" } else { "dashed" }
        );
    }
    for c in &node.connections {
        let eid = format!("endpoint:{}", c.endpoint);
        if declared.insert(eid.clone()) {
            let label = if c.names.is_empty() {
                c.endpoint.clone()
            } else {
                format!("{}\n{}", c.endpoint, c.names.join(", "))
            };
            let _ = writeln!(out, "  {} [shape=ellipse, label={}];", q(&eid), q(&label));
        }
        let _ = writeln!(
            out,
            "  {} -> {} [label={}, color={}];",
            q(&id),
            q(&eid),
            q(if c.blocked { "blocked" } else { "connected" }),
            if c.blocked { "red" } else { "darkgreen" }
        );
    }
    for l in &node.lookups {
        let nid = format!("name:{}", l.name);
        if declared.insert(nid.clone()) {
            let _ = writeln!(
                out,
                "  {} [shape=ellipse, style=dashed, label={}];",
                q(&nid),
                q(&l.name)
            );
        }
        let _ = writeln!(
            out,
            "  {} -> {} [label=\"resolved\", style=dashed];",
            q(&id),
            q(&nid)
        );
    }
    for d in &node.decisions {
        let did = format!("decision:{}", d.span.as_deref().unwrap_or("?"));
        let deny = d.decision.as_deref() == Some("deny");
        let _ = writeln!(
            out,
            "  {} [shape=octagon, color={}, label={}];",
            q(&did),
            if deny { "red" } else { "darkgreen" },
            q(&format!(
                "{} {}\n{}",
                d.decision.as_deref().unwrap_or("?"),
                short(d.subject.as_deref().unwrap_or("?")),
                d.rule.as_deref().unwrap_or("?")
            ))
        );
        let _ = writeln!(
            out,
            "  {} -> {} [label=\"decided\", style=dotted];",
            q(&id),
            q(&did)
        );
    }
    for child in &node.children {
        dot_node(child, Some(&id), out, declared);
    }
}

pub fn chains_dot(answer: &Chains) -> String {
    let mut out = format!("digraph \"suspicious chains\" {{\n{DOT_HEAD}");
    for (i, chain) in answer.chains.iter().enumerate() {
        let d = &chain.detail;
        let _ = writeln!(
            out,
            "  subgraph \"cluster_{i}\" {{\n    label={};\n    color=red;",
            q(&format!(
                "{} in {} at {}",
                chain.kind, chain.world, chain.at
            ))
        );
        let proc_node = |out: &mut String, span: Option<&str>| -> String {
            let span = span.unwrap_or("?");
            let id = format!("{i}:process:{span}");
            let label = chain
                .processes
                .get(span)
                .map(|p| short(&p.label()))
                .unwrap_or_else(|| format!("span {span}"));
            let _ = writeln!(out, "    {} [shape=box, label={}];", q(&id), q(&label));
            id
        };
        let thing = |out: &mut String, kind: &str, name: &str, shape: &str| -> String {
            let id = format!("{i}:{kind}:{name}");
            let _ = writeln!(
                out,
                "    {} [shape={shape}, label={}];",
                q(&id),
                q(&short(name))
            );
            id
        };
        let arrow = |out: &mut String, a: &str, b: &str, label: &str, color: &str| {
            let _ = writeln!(
                out,
                "    {} -> {} [label={}, color={color}];",
                q(a),
                q(b),
                q(label)
            );
        };
        let s = |f: &str| d.get(f).and_then(Value::as_str);
        let endpoints: Vec<&str> = d
            .get("endpoints")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match chain.kind.as_str() {
            "download_exec" => {
                let p = proc_node(&mut out, s("downloader"));
                for e in &endpoints {
                    let eid = thing(&mut out, "endpoint", e, "ellipse");
                    arrow(&mut out, &p, &eid, "connected", "darkgreen");
                }
                let f = thing(&mut out, "file", s("path").unwrap_or("?"), "note");
                arrow(&mut out, &p, &f, "wrote", "black");
                let x = proc_node(&mut out, s("executor"));
                arrow(&mut out, &x, &f, "ran", "red");
            }
            "pipe_to_shell" => {
                let p = proc_node(&mut out, s("downloader"));
                for e in &endpoints {
                    let eid = thing(&mut out, "endpoint", e, "ellipse");
                    arrow(&mut out, &p, &eid, "connected", "darkgreen");
                }
                let sh = proc_node(&mut out, s("shell"));
                arrow(&mut out, &p, &sh, "| (pipe)", "red");
            }
            "credential_write" | "credential_read" => {
                let p = proc_node(&mut out, s("process"));
                let f = thing(&mut out, "file", s("path").unwrap_or("?"), "note");
                let label = if chain.kind == "credential_write" {
                    "wrote"
                } else {
                    "read"
                };
                arrow(&mut out, &p, &f, label, "red");
            }
            "denied_then_retried" => {
                let what = if s("what") == Some("connect") {
                    s("endpoint")
                } else {
                    s("subject")
                }
                .unwrap_or("?");
                let t = thing(&mut out, "subject", what, "ellipse");
                let by = |m: &str| d.get(m).and_then(|m| m.get("by")).and_then(Value::as_str);
                let a = proc_node(&mut out, by("denied"));
                arrow(&mut out, &a, &t, "denied", "red");
                let b = proc_node(&mut out, by("retried"));
                arrow(&mut out, &b, &t, "tried again", "orange");
            }
            _ => {}
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}

/// DOT rendered as SVG by Graphviz's `dot`.
pub fn svg(dot: &str) -> Result<String> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Graphviz {
            reason: format!("cannot be run: {e}"),
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = dot.to_owned();
    // Written from a thread: `dot` may fill its stdout before reading all.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().map_err(|e| Error::Graphviz {
        reason: format!("failed: {e}"),
    })?;
    let _ = writer.join();
    if !output.status.success() {
        return Err(Error::Graphviz {
            reason: format!(
                "failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    String::from_utf8(output.stdout).map_err(|e| Error::Graphviz {
        reason: format!("wrote what is not UTF-8: {e}"),
    })
}
