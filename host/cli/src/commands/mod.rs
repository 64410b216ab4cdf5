//! One module per subcommand, each an options struct whose doc comment is its help.

pub mod policy;
pub mod run;
