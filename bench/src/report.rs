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

    /// Whether any server of a 0.3 row, each a process of its own, has a figure.
    fn ran_in_processes(&self) -> bool {
        [&self.capnet_run, &self.baseline_run, &self.native_run]
            .iter()
            .any(|runs| !runs.is_empty())
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

/// One table of the report: printed aligned on stdout, and as Markdown for the README.
struct Table {
    title: String,
    heads: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns as wide as their widest cell; the scenario left-aligned, figures right.
    fn plain(&self) -> String {
        let mut widths: Vec<usize> = self.heads.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut out = String::new();
            for (i, (cell, width)) in cells.zip(&widths).enumerate() {
                let pad = width - cell.chars().count();
                match i {
                    0 => out.push_str(&format!("{cell}{}", " ".repeat(pad))),
                    _ => out.push_str(&format!("  {}{cell}", " ".repeat(pad))),
                }
            }
            out.trim_end().to_string()
        };
        let mut out = format!("{}\n", self.title);
        out.push_str(&line(&mut self.heads.iter().copied()));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(&mut row.iter().map(String::as_str)));
            out.push('\n');
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = format!("{}\n\n| {} |\n|---|", self.title, self.heads.join(" | "));
        out.push_str(&"---:|".repeat(self.heads.len() - 1));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out
    }
}

/// The report's tables: the servers in the bench's process, then those in processes of their
/// own (0.2 guests, then 0.3 guests), each with only the rows it has figures for.
fn tables(rows: &[Row], runs: usize) -> Vec<Table> {
    let cell = |values: &[f64]| match Summary::of(values) {
        Some(s) => format!("{} ({}–{})", figure(s.median), figure(s.min), figure(s.max)),
        None => "–".into(),
    };
    let ratio = |r: Option<f64>| r.map_or("–".into(), |r| format!("{r:.2}"));
    let scenario = |row: &Row| format!("{} [{}]", row.scenario, row.unit);
    // A process of its own: its figure, its CPU per operation and its context switches.
    let process = |row: &Row, figures: &[f64], server: Server, cells: &mut Vec<String>| {
        cells.push(cell(figures));
        cells.push(row.cpu_of(server).map_or("–".into(), figure));
        cells.push(
            row.switches_of(server)
                .map_or("–".into(), |s| format!("{s:.2}")),
        );
    };
    let medians = format!("medians of {runs} runs (min–max)");
    let mut tables = vec![Table {
        title: format!(
            "In the bench's process: capnet, the wasmtime-wasi host and native tokio; {medians}; ratios above 1 mean capnet is better"
        ),
        heads: vec![
            "scenario",
            "capnet",
            "wasmtime-wasi",
            "native",
            "/baseline",
            "/native",
        ],
        rows: rows
            .iter()
            .filter(|r| !r.p3 && (!r.capnet.is_empty() || !r.baseline.is_empty()))
            .map(|row| {
                vec![
                    scenario(row),
                    cell(&row.capnet),
                    cell(&row.baseline),
                    cell(&row.native),
                    ratio(row.ratio(&row.baseline)),
                    ratio(row.ratio(&row.native)),
                ]
            })
            .collect(),
    }];
    let processes = "each a process of its own; cpu = that process's CPU time in µs per operation (per MiB for the transfers); cs/op = its context switches per operation";
    tables.push(Table {
        title: format!(
            "As users run it: `capnet run`, wasmtime-wasi run the same way, native std and native tokio (one thread, as `capnet run`), {processes}; {medians}; ratios above 1 mean capnet run is better (/wasi: against the in-process baseline)"
        ),
        heads: vec![
            "scenario", "capnet run", "cpu", "cs/op", "wasmtime-wasi run", "cpu", "cs/op",
            "native std", "cpu", "cs/op", "native tokio", "cpu", "cs/op", "/std", "/tokio",
            "/wasi-run", "/wasi",
        ],
        rows: rows
            .iter()
            .filter(|r| !r.p3 && !r.capnet_run.is_empty())
            .map(|row| {
                let mut cells = vec![scenario(row)];
                process(row, &row.capnet_run, Server::CapnetRun, &mut cells);
                process(row, &row.baseline_run, Server::BaselineRun, &mut cells);
                process(row, &row.native_std, Server::NativeStd, &mut cells);
                process(row, &row.native_run, Server::NativeRun, &mut cells);
                cells.extend([
                    ratio(row.ratio_of(&row.capnet_run, &row.native_std)),
                    ratio(row.ratio_of(&row.capnet_run, &row.native_run)),
                    ratio(row.ratio_of(&row.capnet_run, &row.baseline_run)),
                    ratio(row.ratio_of(&row.capnet_run, &row.baseline)),
                ]);
                cells
            })
            .collect(),
    });
    tables.push(Table {
        title: format!(
            "wasi:sockets@0.3.0 guests: `capnet run`, wasmtime-wasi's p3 sockets run the same way, and native tokio (one thread, as `capnet run`), {processes}; {medians}; ratios above 1 mean capnet run is better"
        ),
        heads: vec![
            "scenario", "capnet run", "cpu", "cs/op", "wasmtime-wasi run", "cpu", "cs/op",
            "native tokio", "cpu", "cs/op", "/native", "/wasi-run",
        ],
        rows: rows
            .iter()
            .filter(|r| r.p3 && r.ran_in_processes())
            .map(|row| {
                let mut cells = vec![scenario(row)];
                process(row, &row.capnet_run, Server::CapnetRun, &mut cells);
                process(row, &row.baseline_run, Server::BaselineRun, &mut cells);
                process(row, &row.native_run, Server::NativeRun, &mut cells);
                cells.extend([
                    ratio(row.ratio_of(&row.capnet_run, &row.native_run)),
                    ratio(row.ratio_of(&row.capnet_run, &row.baseline_run)),
                ]);
                cells
            })
            .collect(),
    });
    tables.retain(|t| !t.rows.is_empty());
    tables
}

/// The report on stdout: each table aligned, then the notes.
pub fn print_tables(rows: &[Row], runs: usize, notes: &[String]) {
    for table in tables(rows, runs) {
        println!("{}", table.plain());
    }
    for note in notes {
        println!("{note}");
    }
}

/// The report as Markdown, as the README shows it.
pub fn markdown(rows: &[Row], runs: usize, notes: &[String]) -> String {
    let mut out = String::new();
    for table in tables(rows, runs) {
        out.push_str(&table.markdown());
        out.push('\n');
    }
    for note in notes {
        out.push_str(&format!("- {note}\n"));
    }
    out
}

/// A figure as the README writes it: whole from 100 up (thousands grouped), three significant
/// digits below, no exponent.
fn figure(x: f64) -> String {
    if x >= 1000.0 {
        let digits = format!("{x:.0}");
        let mut grouped = String::new();
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        grouped
    } else if x >= 100.0 {
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

/// A horizontal bar chart, per scenario of both generations, of `capnet run` against
/// wasmtime-wasi run and against native tokio (each a process of its own), with a line at 1.
pub fn svg(rows: &[Row]) -> String {
    let rows: Vec<(&Row, Option<f64>, Option<f64>)> = rows
        .iter()
        .map(|r| {
            (
                r,
                r.ratio_of(&r.capnet_run, &r.baseline_run),
                r.ratio_of(&r.capnet_run, &r.native_run),
            )
        })
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
        r##"<text x="4" y="16" font-weight="bold">capnet run / wasmtime-wasi run (blue) and capnet run / native tokio (grey); right of the line, capnet run is better</text>"##
    );
    for (i, (row, baseline, native)) in rows.iter().enumerate() {
        let y = 30.0 + row_h * i as f64;
        let _ = writeln!(
            out,
            r##"<text x="4" y="{}">{}</text>"##,
            y + 18.0,
            // The 0.3 scenarios' names say so already.
            escape(&if row.p3 {
                row.scenario.clone()
            } else {
                format!("0.2 {}", row.scenario)
            })
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
