//! What a container asks of capnet, read from its environment (the OCI runtime spec's
//! `process.env`), and the policy that follows from it and from the image's policy (its
//! policy layer, or its policy file: see [`ImagePolicy`]).
//!
//! | variable | meaning |
//! |---|---|
//! | `CAPNET_POLICY` | the policy file, a path in the container (default: the image's policy layer, else [`POLICY_PATH`] if the image has it) |
//! | `CAPNET_RULES` | more rules, in the policy file's TOML, added after the file's |
//! | `CAPNET_TCPLISTEN` | listeners to pre-open, `ADDR[=GUEST_ADDR]`, comma separated, as `capnet run --tcplisten` |
//! | `CAPNET_LOG_DECISIONS` | `json` (or `json:FILE`): one JSON line per decision, as `capnet run --log-decisions` |
//! | `CAPNET_LOG` | a tracing filter for the log on stderr, as under `capnet run` |
//!
//! These are the shim's and the guest does not see them; every other variable is the guest's.
//!
//! Why the environment and not the runtime spec's annotations: runwasi's
//! `containerd-shim-wasm` 1.0 hands a runtime only the process's arguments, environment and
//! entry point, and the container runs inside its root file system by then, where the
//! bundle's `config.json` is out of reach. Kubernetes fills a variable from an annotation
//! with the downward API (`valueFrom.fieldRef`), so a Pod's annotation can still carry rules.

use capnet::needs::Declared;
use capnet::policy::{Policy, PolicyError};
use capnet_cli::decision_log::DecisionLogSpec;
use std::path::{Path, PathBuf};

/// Where the shim looks for the image's policy file when `CAPNET_POLICY` names none.
pub const POLICY_PATH: &str = "/etc/capnet/policy.toml";

/// The policy an image carries.
#[derive(Clone, Copy, Debug)]
pub enum ImagePolicy<'a> {
    /// A file of its root file system (normally [`POLICY_PATH`]), read if it exists.
    File(&'a Path),
    /// The TOML of its policy layer (a wasm image's), named `origin` in messages: the layer's
    /// file name, so an error reads as `capnet policy check` prints it for that file.
    Layer {
        /// The name in messages.
        origin: &'a str,
        /// The policy.
        text: &'a str,
    },
}

/// The origin `CAPNET_RULES` gets in messages: `CAPNET_RULES:2:12: rule ...`.
pub const RULES_ORIGIN: &str = "CAPNET_RULES";

/// The shim's own variables, kept from the guest.
const OWN: [&str; 5] = [
    "CAPNET_POLICY",
    "CAPNET_RULES",
    "CAPNET_TCPLISTEN",
    "CAPNET_LOG_DECISIONS",
    "CAPNET_LOG",
];

/// A container's requests to capnet, from its environment.
#[derive(Debug, Default)]
pub struct Workload {
    /// `CAPNET_POLICY`.
    pub policy: Option<PathBuf>,
    /// `CAPNET_RULES`.
    pub rules: Option<String>,
    /// `CAPNET_TCPLISTEN`, split at commas.
    pub tcplisten: Vec<String>,
    /// `CAPNET_LOG_DECISIONS`.
    pub log_decisions: Option<DecisionLogSpec>,
    /// `CAPNET_LOG`.
    pub log_filter: Option<String>,
    /// Every other variable, for the guest.
    pub guest_env: Vec<(String, String)>,
}

impl Workload {
    /// Reads `KEY=VALUE` entries, as the runtime spec lists them.
    ///
    /// # Errors
    /// A `CAPNET_LOG_DECISIONS` that is neither `json` nor `json:FILE`.
    pub fn from_env<S: AsRef<str>>(env: &[S]) -> Result<Workload, String> {
        let mut workload = Workload::default();
        for entry in env {
            let (key, value) = entry
                .as_ref()
                .split_once('=')
                .unwrap_or((entry.as_ref(), ""));
            match key {
                "CAPNET_POLICY" if !value.is_empty() => workload.policy = Some(value.into()),
                "CAPNET_RULES" if !value.trim().is_empty() => {
                    workload.rules = Some(value.to_owned())
                }
                "CAPNET_TCPLISTEN" => workload.tcplisten.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                ),
                "CAPNET_LOG_DECISIONS" if !value.is_empty() => {
                    workload.log_decisions = Some(
                        value
                            .parse()
                            .map_err(|e| format!("CAPNET_LOG_DECISIONS: {e}"))?,
                    )
                }
                "CAPNET_LOG" if !value.is_empty() => workload.log_filter = Some(value.to_owned()),
                _ if OWN.contains(&key) => {}
                _ => workload.guest_env.push((key.to_owned(), value.to_owned())),
            }
        }
        Ok(workload)
    }

    /// Where the policy comes from: `CAPNET_POLICY`'s file, else `image`'s policy layer, else
    /// its file when it exists, else nowhere (`None`).
    pub fn policy_source<'a>(&'a self, image: &ImagePolicy<'a>) -> Option<ImagePolicy<'a>> {
        match (&self.policy, image) {
            (Some(path), _) => Some(ImagePolicy::File(path)),
            (None, ImagePolicy::File(path)) => path.exists().then_some(*image),
            (None, ImagePolicy::Layer { .. }) => Some(*image),
        }
    }

    /// The container's policy: the policy file's rules (`CAPNET_POLICY`'s file, else `default`
    /// when it exists), then `CAPNET_RULES`'. With neither, it denies every use, as everywhere in
    /// capnet.
    ///
    /// # Errors
    /// The first bad rule, as `capnet policy check` names it (`FILE:LINE:COLUMN: rule "...":
    /// what is wrong`, with `CAPNET_RULES` for the variable's rules), or a file that cannot be
    /// read.
    pub fn policy(&self, default: &Path) -> Result<Policy, PolicyError> {
        self.policy_declaring(&ImagePolicy::File(default), &Declared::new())
    }

    /// The container's policy as [`Workload::policy`] reads it, from the source
    /// [`Workload::policy_source`] picks, with each library's declared needs
    /// (`capnet::needs::declared`), so a `[library.NAME]` table saying `grant = "declared"`
    /// gives the library what its component declares, as under `capnet run`.
    ///
    /// # Errors
    /// As [`Workload::policy`].
    pub fn policy_declaring(
        &self,
        image: &ImagePolicy<'_>,
        declared: &Declared,
    ) -> Result<Policy, PolicyError> {
        let mut builder = Policy::builder();
        match self.policy_source(image) {
            Some(ImagePolicy::File(file)) => builder = builder.file(file)?,
            Some(ImagePolicy::Layer { origin, text }) => builder = builder.toml(origin, text)?,
            None => {}
        }
        if let Some(rules) = &self.rules {
            builder = builder.toml(RULES_ORIGIN, rules)?;
        }
        Ok(capnet::needs::add_declarations(builder, declared, false)?.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_variables_are_kept_from_the_guest() {
        let workload = Workload::from_env(&[
            "PATH=/bin",
            "CAPNET_POLICY=/app/policy.toml",
            "CAPNET_TCPLISTEN=0.0.0.0:8080, 127.0.0.1:0=0.0.0.0:80",
            "CAPNET_LOG=capnet=debug",
            "GREETING=a=b",
        ])
        .unwrap();
        assert_eq!(workload.policy, Some(PathBuf::from("/app/policy.toml")));
        assert_eq!(
            workload.tcplisten,
            ["0.0.0.0:8080", "127.0.0.1:0=0.0.0.0:80"]
        );
        assert_eq!(workload.log_filter.as_deref(), Some("capnet=debug"));
        assert_eq!(
            workload.guest_env,
            [
                ("PATH".to_owned(), "/bin".to_owned()),
                ("GREETING".to_owned(), "a=b".to_owned())
            ]
        );
    }

    #[test]
    fn rejects_an_unknown_decision_log_format() {
        let err = Workload::from_env(&["CAPNET_LOG_DECISIONS=yaml"]).unwrap_err();
        assert_eq!(
            err,
            "CAPNET_LOG_DECISIONS: unknown decision log format \"yaml\" (write json, or json:FILE)"
        );
        let ok = Workload::from_env(&["CAPNET_LOG_DECISIONS=json"]).unwrap();
        assert_eq!(ok.log_decisions, Some(DecisionLogSpec::Stderr));
    }
}
