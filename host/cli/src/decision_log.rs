//! `--log-decisions=json[:FILE]`: one JSON object per line for every policy decision, for
//! audit. Built from the `capnet::policy` tracing events the grants emit, so the log and `-v`
//! can never disagree. Lines are written by serde_json, so any instance name or rule text
//! stays valid JSON.
//!
//! ```text
//! {"time":"2026-11-25T01:02:03.456789Z","instance":"client.wasm","library":null,"use":"tcp-connect","address":"10.0.0.5:443","verdict":"deny","rule":"flag --deny-connect \"10.0.0.5\""}
//! ```

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Where the decision log goes, as parsed from `--log-decisions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecisionLogSpec {
    /// `json`: to stderr.
    Stderr,
    /// `json:FILE`: appended to FILE.
    File(PathBuf),
}

impl FromStr for DecisionLogSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None if s == "json" => Ok(DecisionLogSpec::Stderr),
            Some(("json", path)) if !path.is_empty() => Ok(DecisionLogSpec::File(path.into())),
            _ => Err(format!(
                "unknown decision log format \"{s}\" (write json, or json:FILE)"
            )),
        }
    }
}

/// A tracing layer writing each `capnet::policy` decision as a JSON line.
pub struct DecisionLog {
    out: Mutex<Box<dyn Write + Send>>,
}

impl DecisionLog {
    /// Opens the log's destination.
    ///
    /// # Errors
    /// The file cannot be opened for appending.
    pub fn open(spec: &DecisionLogSpec) -> std::io::Result<DecisionLog> {
        let out: Box<dyn Write + Send> = match spec {
            DecisionLogSpec::Stderr => Box::new(std::io::stderr()),
            DecisionLogSpec::File(path) => {
                Box::new(OpenOptions::new().create(true).append(true).open(path)?)
            }
        };
        Ok(DecisionLog {
            out: Mutex::new(out),
        })
    }
}

/// The fields of one decision event.
/// One line of the log, in this order.
#[derive(serde::Serialize)]
struct Line<'a> {
    time: &'a str,
    instance: Option<&'a str>,
    library: Option<&'a str>,
    #[serde(rename = "use")]
    use_: Option<&'a str>,
    address: Option<&'a str>,
    verdict: &'a str,
    rule: Option<&'a str>,
}

#[derive(Default)]
struct Fields {
    instance: Option<String>,
    library: Option<String>,
    use_: Option<String>,
    addr: Option<String>,
    verdict: Option<String>,
    rule: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field.name(), format!("{value:?}"));
    }
}

impl Fields {
    fn set(&mut self, name: &str, value: String) {
        let slot = match name {
            "instance" => &mut self.instance,
            "capnet.library" => &mut self.library,
            "capnet.use" => &mut self.use_,
            "capnet.addr" => &mut self.addr,
            "capnet.verdict" => &mut self.verdict,
            "capnet.rule" => &mut self.rule,
            _ => return,
        };
        *slot = Some(value);
    }
}

impl<S: Subscriber> Layer<S> for DecisionLog {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "capnet::policy" {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let Some(verdict) = fields.verdict else {
            return;
        };
        let time = rfc3339(SystemTime::now());
        let line = Line {
            time: &time,
            instance: fields.instance.as_deref(),
            library: fields.library.as_deref(),
            use_: fields.use_.as_deref(),
            address: fields.addr.as_deref(),
            verdict: &verdict,
            rule: fields.rule.as_deref(),
        };
        let Ok(mut line) = serde_json::to_vec(&line) else {
            return;
        };
        line.push(b'\n');
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(&line);
            let _ = out.flush();
        }
    }
}

fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn time_is_rfc3339_utc() {
        let t = UNIX_EPOCH + Duration::from_micros(1_795_568_523_456_789);
        assert_eq!(rfc3339(t), "2026-11-25T01:02:03.456789Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn spec_parses_json_and_json_file() {
        assert_eq!("json".parse(), Ok(DecisionLogSpec::Stderr));
        assert_eq!(
            "json:/tmp/d.log".parse(),
            Ok(DecisionLogSpec::File("/tmp/d.log".into()))
        );
        assert!("yaml".parse::<DecisionLogSpec>().is_err());
    }
}
