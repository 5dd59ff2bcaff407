//! The results: a table for people, a JSON document for tools.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::measure::Settings;
use super::server::Kind;

/// Which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Lower,
    Higher,
}

/// A goal for our server.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Goal {
    None,
    /// Ours at most this value (absolute).
    AtMost(f64),
    /// Ours better than Python by at least this factor.
    Factor(f64),
}

/// One line of the table.
#[derive(Debug)]
struct Row {
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    better: Better,
    goal: Goal,
}

const ROWS: &[Row] = &[
    Row {
        key: "startup_ms",
        label: "start → ready (median)",
        unit: "ms",
        better: Better::Lower,
        goal: Goal::AtMost(50.0),
    },
    Row {
        key: "idle_rss_mib",
        label: "idle RSS after start",
        unit: "MiB",
        better: Better::Lower,
        goal: Goal::AtMost(20.0),
    },
    Row {
        key: "echo_median_ms",
        label: "echo round trip (median)",
        unit: "ms",
        better: Better::Lower,
        goal: Goal::Factor(2.0),
    },
    Row {
        key: "echo_p99_ms",
        label: "echo round trip (p99)",
        unit: "ms",
        better: Better::Lower,
        goal: Goal::None,
    },
    Row {
        key: "upload_mib_s",
        label: "upload 64 MiB",
        unit: "MiB/s",
        better: Better::Higher,
        goal: Goal::Factor(10.0),
    },
    Row {
        key: "download_mib_s",
        label: "download 64 MiB",
        unit: "MiB/s",
        better: Better::Higher,
        goal: Goal::Factor(2.0),
    },
    Row {
        key: "create_median_ms",
        label: "create conversation (median)",
        unit: "ms",
        better: Better::Lower,
        goal: Goal::None,
    },
    Row {
        key: "run_median_ms",
        label: "scripted run, create → finished (median)",
        unit: "ms",
        better: Better::Lower,
        goal: Goal::Factor(10.0),
    },
    Row {
        key: "run_message_median_ms",
        label: "scripted run, message → finished (median)",
        unit: "ms",
        better: Better::Lower,
        goal: Goal::None,
    },
    Row {
        key: "saved_rss_mib",
        label: "RSS with 1,000 saved conversations",
        unit: "MiB",
        better: Better::Lower,
        goal: Goal::None,
    },
    Row {
        key: "saved_ready_ms",
        label: "start → ready with 1,000 saved",
        unit: "ms",
        better: Better::Lower,
        goal: Goal::None,
    },
    Row {
        key: "image_mib",
        label: "agent-server image size",
        unit: "MiB",
        better: Better::Lower,
        goal: Goal::AtMost(100.0),
    },
    Row {
        key: "docker_ready_ms",
        label: "DockerWorkspace enter → ready (median)",
        unit: "ms",
        better: Better::Lower,
        goal: Goal::AtMost(800.0),
    },
    Row {
        key: "ws_events_per_s",
        label: "WebSocket fan-out, events/s received",
        unit: "ev/s",
        better: Better::Higher,
        goal: Goal::None,
    },
];

/// A line of the sandbox table: ours, the goal, third-party figures.
#[derive(Debug)]
struct SandboxRow {
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    /// Ours at most this value.
    goal: Option<f64>,
    /// Whether the third-party figures measure the same thing.
    third_party: bool,
}

/// Third-party figures the issue gives for create → first command (median), in ms.
const THIRD_PARTY: &[(&str, f64)] = &[("Daytona", 110.0), ("E2B", 440.0)];

/// Why the sandbox table has no Python figures.
const NO_REFERENCE: &str = "n/a (hosted runtime API, not available here)";

const SANDBOX_ROWS: &[SandboxRow] = &[
    SandboxRow {
        key: "sandbox_cold_median_ms",
        label: "create → first echo, cold (median)",
        unit: "ms",
        goal: Some(600.0),
        third_party: true,
    },
    SandboxRow {
        key: "sandbox_cold_p95_ms",
        label: "create → first echo, cold (p95)",
        unit: "ms",
        goal: None,
        third_party: false,
    },
    SandboxRow {
        key: "sandbox_warm_median_ms",
        label: "create → first echo, warm pool (median)",
        unit: "ms",
        goal: Some(100.0),
        third_party: true,
    },
    SandboxRow {
        key: "sandbox_warm_p95_ms",
        label: "create → first echo, warm pool (p95)",
        unit: "ms",
        goal: None,
        third_party: false,
    },
    SandboxRow {
        key: "sandbox_concurrent_ms",
        label: "10 concurrent cold creates → all echoed",
        unit: "ms",
        goal: None,
        third_party: false,
    },
    SandboxRow {
        key: "sandbox_left_containers",
        label: "containers left behind",
        unit: "",
        goal: Some(0.0),
        third_party: false,
    },
];

/// What one server gave.
#[derive(Debug, Default)]
pub(crate) struct Side {
    pub(crate) values: BTreeMap<&'static str, Result<f64, String>>,
    pub(crate) details: BTreeMap<String, Value>,
    pid: Option<u32>,
}

/// Everything measured.
#[derive(Debug)]
pub(crate) struct Results {
    ours: Side,
    python: Side,
    pub(crate) notes: Vec<String>,
    /// Facts about this run: commit, reference version.
    pub(crate) meta: serde_json::Map<String, Value>,
    settings: Value,
    /// Checks that failed (not figures missing a goal): the bench exits non-zero.
    pub(crate) failed_checks: Vec<String>,
}

impl Results {
    pub(crate) fn new(settings: &Settings) -> Self {
        Self {
            ours: Side::default(),
            python: Side::default(),
            notes: Vec::new(),
            failed_checks: Vec::new(),
            meta: serde_json::Map::new(),
            settings: json!({
                "echo_runs": settings.echo_runs,
                "poll_pause_ms": settings.poll_pause.as_secs_f64() * 1000.0,
                "create_runs": settings.create_runs,
                "run_runs": settings.run_runs,
                "transfer_runs": settings.transfer_runs,
                "transfer_bytes": settings.transfer_bytes,
                "ws_subscribers": settings.ws_subscribers,
                "ws_conversations": settings.ws_conversations,
                "ws_seconds": settings.ws_seconds,
            }),
        }
    }

    pub(crate) fn side_mut(&mut self, kind: Kind) -> &mut Side {
        match kind {
            Kind::Ours => &mut self.ours,
            Kind::Python => &mut self.python,
        }
    }

    pub(crate) fn set_pid(&mut self, kind: Kind, pid: u32) {
        self.side_mut(kind).pid = Some(pid);
    }
}

/// How much better ours is (> 1: ours better), when both were measured.
fn advantage(row: &Row, ours: Option<f64>, python: Option<f64>) -> Option<f64> {
    let (ours, python) = (ours?, python?);
    let factor = match row.better {
        Better::Lower => python / ours,
        Better::Higher => ours / python,
    };
    factor.is_finite().then_some(factor)
}

/// Whether the goal holds; `None` when there is no goal or no value to judge.
fn goal_met(row: &Row, ours: Option<f64>, advantage: Option<f64>) -> Option<bool> {
    match row.goal {
        Goal::None => None,
        Goal::AtMost(limit) => ours.map(|v| v <= limit),
        Goal::Factor(factor) => advantage.map(|a| a >= factor),
    }
}

fn goal_text(row: &Row) -> String {
    match (row.goal, row.better) {
        (Goal::None, _) => "—".to_owned(),
        (Goal::AtMost(limit), _) => format!("ours ≤ {limit} {}", row.unit),
        (Goal::Factor(f), Better::Lower) => format!("ours ≤ python/{f}"),
        (Goal::Factor(f), Better::Higher) => format!("ours ≥ {f}× python"),
    }
}

fn number(value: f64) -> String {
    if value >= 1000.0 {
        format!("{value:.0}")
    } else if value >= 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn cell(value: Option<&Result<f64, String>>, unit: &str) -> String {
    match value {
        None => "—".to_owned(),
        Some(Ok(v)) if unit.is_empty() => format!("{v:.0}"),
        Some(Ok(v)) => format!("{} {unit}", number(*v)),
        Some(Err(reason)) => {
            let short: String = reason
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(44)
                .collect();
            let more = if short.len() < reason.len() {
                "…"
            } else {
                ""
            };
            format!("n/a ({short}{more})")
        }
    }
}

fn ok_value(value: Option<&Result<f64, String>>) -> Option<f64> {
    value.and_then(|v| v.as_ref().ok().copied())
}

fn yes_no(met: Option<bool>) -> String {
    match met {
        None => "—".to_owned(),
        Some(true) => "yes".to_owned(),
        Some(false) => "NO".to_owned(),
    }
}

/// A table with a header, as Markdown.
#[allow(clippy::print_stdout, reason = "the table is the bench's output")]
fn print_table<const N: usize>(header: [&str; N], lines: &[[String; N]]) {
    let mut widths = header.map(|h| h.chars().count());
    for line in lines {
        for (w, c) in widths.iter_mut().zip(line) {
            *w = (*w).max(c.chars().count());
        }
    }
    let render = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    println!("{}", render(&header.map(str::to_owned)));
    println!("|{}|", widths.map(|w| "-".repeat(w + 2)).join("|"));
    for line in lines {
        println!("{}", render(line));
    }
}

/// The sandbox group's lines: ours, the (absent) Python reference, the goal, and the
/// third-party figures judged against the same goal.
fn sandbox_lines(results: &Results) -> Vec<[String; 7]> {
    let mut lines = Vec::new();
    for row in SANDBOX_ROWS {
        let ours = results.ours.values.get(row.key);
        if ours.is_none() {
            continue;
        }
        let goal = row.goal.map_or_else(
            || "—".to_owned(),
            |limit| {
                if row.unit.is_empty() {
                    format!("= {limit}")
                } else {
                    format!("≤ {limit} {}", row.unit)
                }
            },
        );
        let met = row
            .goal
            .and_then(|limit| ok_value(ours).map(|v| v <= limit));
        let mut third = THIRD_PARTY.iter().map(|(_, value)| {
            if !row.third_party {
                return "—".to_owned();
            }
            match row.goal {
                Some(limit) => format!(
                    "{} {} (goal: {})",
                    number(*value),
                    row.unit,
                    yes_no(Some(*value <= limit))
                ),
                None => format!("{} {}", number(*value), row.unit),
            }
        });
        lines.push([
            row.label.to_owned(),
            cell(ours, row.unit),
            NO_REFERENCE.to_owned(),
            goal,
            yes_no(met),
            third.next().unwrap_or_default(),
            third.next().unwrap_or_default(),
        ]);
    }
    lines
}

/// Prints the table, the full reasons of every n/a, and the method notes.
#[allow(clippy::print_stdout, reason = "the table is the bench's output")]
pub(crate) fn print(results: &Results) {
    let header = [
        "measurement",
        "ours",
        "python",
        "ours vs python",
        "goal",
        "met",
    ];
    let mut lines: Vec<[String; 6]> = Vec::new();
    for row in ROWS {
        let ours = results.ours.values.get(row.key);
        let python = results.python.values.get(row.key);
        if ours.is_none() && python.is_none() {
            continue;
        }
        let adv = advantage(row, ok_value(ours), ok_value(python));
        let met = goal_met(row, ok_value(ours), adv);
        lines.push([
            row.label.to_owned(),
            cell(ours, row.unit),
            cell(python, row.unit),
            adv.map_or_else(|| "—".to_owned(), |a| format!("{}× better", number(a))),
            goal_text(row),
            yes_no(met),
        ]);
    }
    if !lines.is_empty() {
        println!();
        print_table(header, &lines);
    }
    let sandbox = sandbox_lines(results);
    if !sandbox.is_empty() {
        let daytona = format!("Daytona ({} ms)", number(THIRD_PARTY[0].1));
        let e2b = format!("E2B ({} ms)", number(THIRD_PARTY[1].1));
        println!(
            "\nsandbox server + ApiRemoteWorkspace (ours only; third-party figures from the issue):\n"
        );
        print_table(
            [
                "measurement",
                "ours",
                "python reference",
                "goal",
                "met",
                &daytona,
                &e2b,
            ],
            &sandbox,
        );
    }
    let mut reasons: Vec<(String, String)> = Vec::new();
    for (name, side) in [("ours", &results.ours), ("python", &results.python)] {
        for value in side.values.values() {
            if let Err(reason) = value {
                let entry = (name.to_owned(), reason.clone());
                if !reasons.contains(&entry) {
                    reasons.push(entry);
                }
            }
        }
    }
    if !reasons.is_empty() {
        println!("\nn/a reasons:");
        for (name, reason) in reasons {
            println!("  {name}: {}", reason.replace('\n', "\n    "));
        }
    }
    if !results.failed_checks.is_empty() {
        println!("\nFAILED checks:");
        for check in &results.failed_checks {
            println!("  - {check}");
        }
    }
    println!("\nmethod:");
    for note in &results.notes {
        println!("  - {note}");
    }
}

fn side_json(side: &Side) -> Value {
    let values: serde_json::Map<String, Value> = side
        .values
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Ok(x) => json!(x),
                Err(reason) => json!({"na": reason}),
            };
            ((*k).to_owned(), v)
        })
        .collect();
    json!({"values": values, "details": side.details, "pid": side.pid})
}

/// The machine-readable results.
pub(crate) fn json(results: &Results) -> Value {
    let rows: Vec<Value> = ROWS
        .iter()
        .filter(|row| {
            results.ours.values.contains_key(row.key) || results.python.values.contains_key(row.key)
        })
        .map(|row| {
            let ours = ok_value(results.ours.values.get(row.key));
            let python = ok_value(results.python.values.get(row.key));
            let adv = advantage(row, ours, python);
            let na = |side: &Side| {
                side.values
                    .get(row.key)
                    .and_then(|v| v.as_ref().err().cloned())
            };
            json!({
                "key": row.key,
                "label": row.label,
                "unit": row.unit,
                "better": match row.better { Better::Lower => "lower", Better::Higher => "higher" },
                "ours": ours,
                "ours_na": na(&results.ours),
                "python": python,
                "python_na": na(&results.python),
                "ours_advantage": adv,
                "goal": match row.goal { Goal::None => Value::Null, _ => json!(goal_text(row)) },
                "goal_met": goal_met(row, ours, adv),
            })
        })
        .collect();
    let sandbox: Vec<Value> = SANDBOX_ROWS
        .iter()
        .filter(|row| results.ours.values.contains_key(row.key))
        .map(|row| {
            let ours = ok_value(results.ours.values.get(row.key));
            let third_party: serde_json::Map<String, Value> = THIRD_PARTY
                .iter()
                .filter(|_| row.third_party)
                .map(|(name, value)| {
                    let met = row.goal.map(|limit| *value <= limit);
                    ((*name).to_owned(), json!({"value": value, "goal_met": met}))
                })
                .collect();
            json!({
                "key": row.key,
                "label": row.label,
                "unit": row.unit,
                "ours": ours,
                "ours_na": results.ours.values.get(row.key).and_then(|v| v.as_ref().err().cloned()),
                "python_na": NO_REFERENCE,
                "goal_at_most": row.goal,
                "goal_met": row.goal.and_then(|limit| ours.map(|v| v <= limit)),
                "third_party": third_party,
            })
        })
        .collect();
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    json!({
        "generated_at_unix": unix,
        "cpus": std::thread::available_parallelism().map(usize::from).unwrap_or(0),
        "meta": results.meta,
        "settings": results.settings,
        "rows": rows,
        "sandbox_rows": sandbox,
        "failed_checks": results.failed_checks,
        "ours": side_json(&results.ours),
        "python": side_json(&results.python),
        "notes": results.notes,
    })
}
