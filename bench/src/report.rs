//! The results: a table on stdout, and on request JSON and an SVG chart of the ratios.

use crate::servers::Server;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One scenario's figures, one list of runs per server.
#[derive(Serialize)]
pub struct Row {
    pub scenario: String,
    pub unit: &'static str,
    /// Whether a higher figure is better (rates) or worse (memory).
    pub higher_is_better: bool,
    /// Whether the guest is a `wasi:sockets@0.3.0` one: a table of its own.
    pub p3: bool,
    pub capnet: Vec<f64>,
    pub capnet_run: Vec<f64>,
    pub baseline: Vec<f64>,
    pub baseline_run: Vec<f64>,
    pub native: Vec<f64>,
    pub native_run: Vec<f64>,
    pub native_std: Vec<f64>,
    /// Context switches of the server's process per operation, one figure per run, for the
    /// servers that run in a process of their own, by server name.
    pub switches: BTreeMap<&'static str, Vec<f64>>,
    /// CPU time of the server's process in µs per operation (per MiB for the transfers), one
    /// figure per run, for the servers that run in a process of their own, by server name.
    pub cpu: BTreeMap<&'static str, Vec<f64>>,
}

/// Median, min and max.
#[derive(Serialize, Clone, Copy)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    fn of(values: &[f64]) -> Option<Summary> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        Some(Summary {
            median: *v.get(v.len() / 2)?,
            min: v[0],
            max: v[v.len() - 1],
        })
    }
}

impl Row {
    pub fn new(scenario: String, unit: &'static str, higher_is_better: bool) -> Row {
        Row {
            scenario,
            unit,
            higher_is_better,
            p3: false,
            capnet: vec![],
            capnet_run: vec![],
            baseline: vec![],
            baseline_run: vec![],
            native: vec![],
            native_run: vec![],
            native_std: vec![],
            switches: BTreeMap::new(),
            cpu: BTreeMap::new(),
        }
    }

    /// The runs of `server`.
    pub fn figures_mut(&mut self, server: Server) -> &mut Vec<f64> {
        match server {
            Server::Capnet => &mut self.capnet,
            Server::CapnetRun => &mut self.capnet_run,
            Server::Baseline => &mut self.baseline,
            Server::BaselineRun => &mut self.baseline_run,
            Server::Native => &mut self.native,
            Server::NativeRun => &mut self.native_run,
            Server::NativeStd => &mut self.native_std,
        }
    }

    /// capnet against `other`, oriented so that above 1 means capnet is better.
    fn ratio(&self, other: &[f64]) -> Option<f64> {
        self.ratio_of(&self.capnet, other)
    }

    /// `ours` against `theirs`, oriented so that above 1 means `ours` is better.
    fn ratio_of(&self, ours: &[f64], theirs: &[f64]) -> Option<f64> {
        let (ours, theirs) = (Summary::of(ours)?, Summary::of(theirs)?);
        Some(if self.higher_is_better {
            ours.median / theirs.median
        } else {
            theirs.median / ours.median
        })
    }

    /// The median context switches per operation of `server`'s process.
    fn switches_of(&self, server: Server) -> Option<f64> {
        Some(Summary::of(self.switches.get(server.name())?)?.median)
    }

    /// The median CPU time per operation (or MiB) of `server`'s process, in µs.
    fn cpu_of(&self, server: Server) -> Option<f64> {
        Some(Summary::of(self.cpu.get(server.name())?)?.median)
    }
}

pub fn print_table(rows: &[Row], runs: usize, notes: &[String]) {
    println!("medians of {runs} runs (min-max); ratios above 1 mean capnet is better");
    println!(
        "{:<50} {:>22} {:>22} {:>22} {:>9} {:>9}",
        "scenario", "capnet", "wasmtime-wasi", "native", "/baseline", "/native"
    );
    let cell = |values: &[f64]| match Summary::of(values) {
        Some(s) => format!("{} ({}-{})", figure(s.median), figure(s.min), figure(s.max)),
        None => "-".into(),
    };
    let ratio = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.2}"));
    for row in rows.iter().filter(|r| !r.p3) {
        println!(
            "{:<50} {:>22} {:>22} {:>22} {:>9} {:>9}",
            format!("{} [{}]", row.scenario, row.unit),
            cell(&row.capnet),
            cell(&row.baseline),
            cell(&row.native),
            ratio(row.ratio(&row.baseline)),
            ratio(row.ratio(&row.native)),
        );
    }
    let switches = |row: &Row, server| {
        row.switches_of(server)
            .map_or("-".into(), |s| format!("{s:.2}"))
    };
    let cpu = |row: &Row, server| row.cpu_of(server).map_or("-".into(), figure);
    let users: Vec<&Row> = rows
        .iter()
        .filter(|r| !r.p3 && !r.capnet_run.is_empty())
        .collect();
    if !users.is_empty() {
        println!();
        println!(
            "as users run it: `capnet run`, wasmtime-wasi run the same way, native std and native tokio (one thread, as `capnet run`), each a process of its own; cpu = that process's CPU time in µs per operation (per MiB for the transfers); cs/op = its context switches per operation; ratios above 1 mean capnet run is better (/wasi: against the in-process baseline above)"
        );
        println!(
            "{:<50} {:>22} {:>6} {:>5} {:>22} {:>6} {:>5} {:>22} {:>6} {:>5} {:>22} {:>6} {:>5} {:>5} {:>6} {:>9} {:>5}",
            "scenario",
            "capnet run",
            "cpu",
            "cs/op",
            "wasmtime-wasi run",
            "cpu",
            "cs/op",
            "native std",
            "cpu",
            "cs/op",
            "native tokio",
            "cpu",
            "cs/op",
            "/std",
            "/tokio",
            "/wasi-run",
            "/wasi"
        );
        for row in users {
            println!(
                "{:<50} {:>22} {:>6} {:>5} {:>22} {:>6} {:>5} {:>22} {:>6} {:>5} {:>22} {:>6} {:>5} {:>5} {:>6} {:>9} {:>5}",
                format!("{} [{}]", row.scenario, row.unit),
                cell(&row.capnet_run),
                cpu(row, Server::CapnetRun),
                switches(row, Server::CapnetRun),
                cell(&row.baseline_run),
                cpu(row, Server::BaselineRun),
                switches(row, Server::BaselineRun),
                cell(&row.native_std),
                cpu(row, Server::NativeStd),
                switches(row, Server::NativeStd),
                cell(&row.native_run),
                cpu(row, Server::NativeRun),
                switches(row, Server::NativeRun),
                ratio(row.ratio_of(&row.capnet_run, &row.native_std)),
                ratio(row.ratio_of(&row.capnet_run, &row.native_run)),
                ratio(row.ratio_of(&row.capnet_run, &row.baseline_run)),
                ratio(row.ratio_of(&row.capnet_run, &row.baseline)),
            );
        }
    }
    let p3: Vec<&Row> = rows.iter().filter(|r| r.p3).collect();
    if !p3.is_empty() {
        println!();
        println!(
            "wasi:sockets@0.3.0 guests: `capnet run`, wasmtime-wasi's p3 sockets run the same way, and native tokio (one thread, as `capnet run`), each a process of its own; cpu = that process's CPU time in µs per operation (per MiB for the transfers); cs/op = its context switches per operation; ratios above 1 mean capnet run is better"
        );
        println!(
            "{:<50} {:>22} {:>6} {:>5} {:>22} {:>6} {:>5} {:>22} {:>6} {:>5} {:>7} {:>9}",
            "scenario",
            "capnet run",
            "cpu",
            "cs/op",
            "wasmtime-wasi run",
            "cpu",
            "cs/op",
            "native tokio",
            "cpu",
            "cs/op",
            "/native",
            "/wasi-run"
        );
        for row in p3 {
            println!(
                "{:<50} {:>22} {:>6} {:>5} {:>22} {:>6} {:>5} {:>22} {:>6} {:>5} {:>7} {:>9}",
                format!("{} [{}]", row.scenario, row.unit),
                cell(&row.capnet_run),
                cpu(row, Server::CapnetRun),
                switches(row, Server::CapnetRun),
                cell(&row.baseline_run),
                cpu(row, Server::BaselineRun),
                switches(row, Server::BaselineRun),
                cell(&row.native_run),
                cpu(row, Server::NativeRun),
                switches(row, Server::NativeRun),
                ratio(row.ratio_of(&row.capnet_run, &row.native_run)),
                ratio(row.ratio_of(&row.capnet_run, &row.baseline_run)),
            );
        }
    }
    for note in notes {
        println!("{note}");
    }
}

/// Three significant digits at most, no exponent.
fn figure(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[derive(Serialize)]
struct JsonRow<'a> {
    scenario: &'a str,
    unit: &'a str,
    higher_is_better: bool,
    runs: &'a Row,
    capnet: Option<Summary>,
    baseline: Option<Summary>,
    native: Option<Summary>,
    capnet_run: Option<Summary>,
    baseline_run: Option<Summary>,
    native_std: Option<Summary>,
    native_run: Option<Summary>,
    capnet_per_baseline: Option<f64>,
    capnet_per_native: Option<f64>,
    capnet_run_per_native_std: Option<f64>,
    capnet_run_per_baseline: Option<f64>,
    capnet_run_per_baseline_run: Option<f64>,
    capnet_run_per_native: Option<f64>,
}

pub fn json(rows: &[Row], notes: &[String]) -> String {
    let rows: Vec<JsonRow> = rows
        .iter()
        .map(|row| JsonRow {
            scenario: &row.scenario,
            unit: row.unit,
            higher_is_better: row.higher_is_better,
            runs: row,
            capnet: Summary::of(&row.capnet),
            baseline: Summary::of(&row.baseline),
            native: Summary::of(&row.native),
            capnet_run: Summary::of(&row.capnet_run),
            baseline_run: Summary::of(&row.baseline_run),
            native_std: Summary::of(&row.native_std),
            native_run: Summary::of(&row.native_run),
            capnet_per_baseline: row.ratio(&row.baseline),
            capnet_per_native: row.ratio(&row.native),
            capnet_run_per_native_std: row.ratio_of(&row.capnet_run, &row.native_std),
            capnet_run_per_baseline: row.ratio_of(&row.capnet_run, &row.baseline),
            capnet_run_per_baseline_run: row.ratio_of(&row.capnet_run, &row.baseline_run),
            capnet_run_per_native: row.ratio_of(&row.capnet_run, &row.native_run),
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "rows": rows, "notes": notes })).unwrap()
}

/// A horizontal bar chart of capnet/baseline and capnet/native per scenario, with a line at 1.
pub fn svg(rows: &[Row]) -> String {
    let rows: Vec<(&Row, Option<f64>, Option<f64>)> = rows
        .iter()
        .map(|r| (r, r.ratio(&r.baseline), r.ratio(&r.native)))
        .filter(|(_, b, n)| b.is_some() || n.is_some())
        .collect();
    let max = rows
        .iter()
        .flat_map(|(_, b, n)| [b.unwrap_or(0.0), n.unwrap_or(0.0)])
        .fold(1.5f64, f64::max)
        .ceil()
        // Beyond 3 the bar is cut at the edge; its label still gives the ratio.
        .min(3.0);
    let (label_w, bar_w, row_h) = (330.0, 420.0, 34.0);
    let scale = bar_w / max;
    let height = 60.0 + row_h * rows.len() as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="12">"##,
        w = label_w + bar_w + 60.0
    );
    let _ = writeln!(
        out,
        r##"<text x="4" y="16" font-weight="bold">capnet / wasmtime-wasi (blue) and capnet / native (grey); right of the line, capnet is better</text>"##
    );
    for (i, (row, baseline, native)) in rows.iter().enumerate() {
        let y = 30.0 + row_h * i as f64;
        let _ = writeln!(
            out,
            r##"<text x="4" y="{}">{}</text>"##,
            y + 18.0,
            escape(&row.scenario)
        );
        for (j, (ratio, colour)) in [(baseline, "#3b6fd8"), (native, "#999999")]
            .iter()
            .enumerate()
        {
            if let Some(r) = ratio {
                let by = y + 4.0 + 13.0 * j as f64;
                let _ = writeln!(
                    out,
                    r##"<rect x="{label_w}" y="{by}" width="{:.1}" height="11" fill="{colour}"/><text x="{:.1}" y="{:.1}">{r:.2}</text>"##,
                    r.min(max) * scale,
                    label_w + r.min(max) * scale + 4.0,
                    by + 10.0
                );
            }
        }
    }
    let one = label_w + scale;
    let _ = writeln!(
        out,
        r##"<line x1="{one}" y1="24" x2="{one}" y2="{}" stroke="black" stroke-dasharray="4 3"/>"##,
        height - 20.0
    );
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}">1.0</text></svg>"##,
        one - 8.0,
        height - 6.0
    );
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
