//! One module per subcommand, each an options struct whose doc comment is its help.

pub mod compose;
pub mod inspect;
pub mod needs;
pub mod policy;
pub mod run;
