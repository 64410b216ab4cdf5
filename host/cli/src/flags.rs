//! `--allow-<use>` and `--deny-<use>`: one flag pair for every use and group word of the rule
//! language, so anything a policy file says a command line can say too.

use capnet::policy::{PolicyBuilder, PolicyError, Verdict};
use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches};

/// One row per USE word: the word, its two flags, and what allowing it grants.
const WORDS: &[(&str, &str, &str, &str)] = &[
    (
        "tcp-connect",
        "allow-tcp-connect",
        "deny-tcp-connect",
        "tcp-connect to LIST",
    ),
    (
        "tcp-bind",
        "allow-tcp-bind",
        "deny-tcp-bind",
        "tcp-bind on LIST",
    ),
    (
        "tcp-listen",
        "allow-tcp-listen",
        "deny-tcp-listen",
        "tcp-listen on LIST",
    ),
    (
        "tcp-accept",
        "allow-tcp-accept",
        "deny-tcp-accept",
        "tcp-accept of peers in LIST",
    ),
    (
        "udp-bind",
        "allow-udp-bind",
        "deny-udp-bind",
        "udp-bind on LIST",
    ),
    (
        "udp-send",
        "allow-udp-send",
        "deny-udp-send",
        "udp-send to LIST (covers the implicit bind of an unbound socket)",
    ),
    (
        "udp-receive",
        "allow-udp-receive",
        "deny-udp-receive",
        "udp-receive from LIST",
    ),
    (
        "lookup",
        "allow-lookup",
        "deny-lookup",
        "name lookups of LIST (host names or *.suffix)",
    ),
    (
        "connect",
        "allow-connect",
        "deny-connect",
        "tcp-connect to LIST; a host name also allows its lookup and pins the answer",
    ),
    (
        "bind",
        "allow-bind",
        "deny-bind",
        "tcp-bind on LIST (servers want --allow-listen)",
    ),
    (
        "listen",
        "allow-listen",
        "deny-listen",
        "a server on LIST: tcp-bind and tcp-listen there, tcp-accept from any peer",
    ),
    (
        "accept",
        "allow-accept",
        "deny-accept",
        "tcp-accept of peers in LIST",
    ),
    (
        "udp",
        "allow-udp",
        "deny-udp",
        "udp-bind, udp-send and udp-receive on LIST",
    ),
    ("all", "allow-all", "deny-all", "every use on LIST"),
];

/// The two flags that give a library in a composed app its own rules.
const LIBRARY_FLAGS: [(&str, Verdict, &str); 2] = [
    (
        "library-allow",
        Verdict::Allow,
        "Allow library NAME the rule USE on each target of LIST, within what the app has \
         (NAME=USE LIST, as in weather=connect 127.0.0.1:8080; an entry of LIST may start \
         another use: weather=connect 127.0.0.1:8080, udp-send 127.0.0.1:9000); a library \
         with no rule gets no network",
    ),
    (
        "library-deny",
        Verdict::Deny,
        "Deny library NAME the rule USE on each target of LIST (NAME=USE LIST)",
    ),
];

/// The two flags that set limits: the instance's, and a library's within it.
const LIMIT_FLAGS: [(&str, bool, &str, &str); 2] = [
    (
        "limit",
        false,
        "KEY=VALUE",
        "Limit what the component holds at once: sockets, connections, stream-buffer (bytes), \
         datagrams (per call or socket), lookups (in flight) or calls-in-flight (0.3 UDP sends and \
         receives pending), as in sockets=256; past a limit the guest gets new-socket-limit \
         (temporary-resolver-failure for lookups, out-of-memory for calls). bytes-per-second \
         (unset by default) bounds the TCP and UDP bytes moved: past it reads and writes wait",
    ),
    (
        "library-limit",
        true,
        "NAME.KEY=VALUE",
        "Limit what library NAME holds at once, within the app's limits (weather.connections=4)",
    ),
];

/// What a deny flag of `word` refuses, where that is not simply what the allow flag grants.
fn denies<'a>(word: &str, grants: &'a str) -> &'a str {
    match word {
        "connect" => "tcp-connect to LIST; a host name also denies its lookup",
        "listen" => "tcp-bind and tcp-listen on LIST",
        "bind" => "tcp-bind on LIST",
        "udp-send" => "udp-send to LIST",
        _ => grants,
    }
}

/// The policy flags as given, in table order: `(flag, verdict, word, list)`, and the library
/// flags: `(flag, verdict, NAME=USE LIST)`.
#[derive(Debug, Default, Clone)]
pub struct PolicyFlags {
    given: Vec<(String, Verdict, &'static str, String)>,
    libraries: Vec<(String, Verdict, String)>,
    /// `(flag, for a library, KEY=VALUE or NAME.KEY=VALUE)`.
    limits: Vec<(String, bool, String)>,
}

impl PolicyFlags {
    /// Adds every flag's rules to `builder`.
    ///
    /// # Errors
    /// The first bad target, naming the flag and the rule.
    pub fn apply(&self, mut builder: PolicyBuilder) -> Result<PolicyBuilder, PolicyError> {
        for (flag, verdict, word, list) in &self.given {
            builder = builder.flag(flag, *verdict, word, list)?;
        }
        for (flag, verdict, spec) in &self.libraries {
            builder = builder.library_flag(flag, *verdict, spec)?;
        }
        for (flag, library, spec) in &self.limits {
            builder = builder.limit_flag(flag, *library, spec)?;
        }
        Ok(builder)
    }
}

impl FromArgMatches for PolicyFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = PolicyFlags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for &(word, allow, deny, _) in WORDS {
            for (id, verdict) in [(allow, Verdict::Allow), (deny, Verdict::Deny)] {
                if let Some(lists) = matches.get_many::<String>(id) {
                    for list in lists {
                        self.given
                            .push((format!("--{id}"), verdict, word, list.clone()));
                    }
                }
            }
        }
        for (id, verdict, _) in LIBRARY_FLAGS {
            if let Some(specs) = matches.get_many::<String>(id) {
                for spec in specs {
                    self.libraries
                        .push((format!("--{id}"), verdict, spec.clone()));
                }
            }
        }
        for (id, library, _, _) in LIMIT_FLAGS {
            if let Some(specs) = matches.get_many::<String>(id) {
                for spec in specs {
                    self.limits.push((format!("--{id}"), library, spec.clone()));
                }
            }
        }
        Ok(())
    }
}

impl Args for PolicyFlags {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        for &(word, allow, deny, grants) in WORDS {
            let deny_help = format!("Deny {} (deny rules win)", denies(word, grants));
            cmd = cmd
                .arg(
                    Arg::new(allow)
                        .long(allow)
                        .value_name("LIST")
                        .action(ArgAction::Append)
                        .help(format!("Allow {grants}"))
                        .help_heading("Policy"),
                )
                .arg(
                    Arg::new(deny)
                        .long(deny)
                        .value_name("LIST")
                        .action(ArgAction::Append)
                        .help(deny_help)
                        .help_heading("Policy"),
                );
        }
        for (id, _, help) in LIBRARY_FLAGS {
            cmd = cmd.arg(
                Arg::new(id)
                    .long(id)
                    .value_name("NAME=USE LIST")
                    .action(ArgAction::Append)
                    .help(help)
                    .help_heading("Libraries"),
            );
        }
        for (id, _, value, help) in LIMIT_FLAGS {
            cmd = cmd.arg(
                Arg::new(id)
                    .long(id)
                    .value_name(value)
                    .action(ArgAction::Append)
                    .help(help)
                    .help_heading("Limits"),
            );
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}
