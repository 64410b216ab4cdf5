//! Port ranges: the `PORTS` part of `TARGET:PORTS`.

use std::fmt;

use crate::ErrorKind;

/// An inclusive range of ports; one port is a range of one, `*` (or no
/// ports at all) is `0-65535`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    lo: u16,
    hi: u16,
}

impl PortRange {
    /// Every port: what `*` and a target without ports mean.
    pub const ANY: PortRange = PortRange {
        lo: 0,
        hi: u16::MAX,
    };

    /// The ports `lo..=hi`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ReversedPorts`] when `lo > hi`.
    pub fn new(lo: u16, hi: u16) -> Result<PortRange, ErrorKind> {
        if lo > hi {
            return Err(ErrorKind::ReversedPorts { lo: hi, hi: lo });
        }
        Ok(PortRange { lo, hi })
    }

    /// Parses `8080`, `8000-8100` or `*`.
    ///
    /// # Errors
    ///
    /// An [`ErrorKind`] for an empty text, a port that is not a number or is
    /// above 65535, or a reversed range.
    pub fn parse(text: &str) -> Result<PortRange, ErrorKind> {
        match text {
            "" => Err(ErrorKind::EmptyPorts),
            "*" => Ok(PortRange::ANY),
            _ => match text.split_once('-') {
                Some((lo, hi)) => PortRange::new(port(lo)?, port(hi)?),
                None => {
                    let p = port(text)?;
                    Ok(PortRange { lo: p, hi: p })
                }
            },
        }
    }

    /// Whether `port` is in the range.
    pub fn allows(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }

    /// The first port of the range.
    pub fn lo(&self) -> u16 {
        self.lo
    }

    /// The last port of the range.
    pub fn hi(&self) -> u16 {
        self.hi
    }

    /// Whether the range holds every port.
    pub fn is_any(&self) -> bool {
        *self == PortRange::ANY
    }
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange::ANY
    }
}

/// `*`, `8080` or `8000-8100`.
impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            f.write_str("*")
        } else if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// One decimal port number.
fn port(text: &str) -> Result<u16, ErrorKind> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ErrorKind::BadPort(text.to_owned()));
    }
    text.parse::<u16>()
        .map_err(|_| ErrorKind::PortTooLarge(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_and_single_and_range_parse() {
        assert_eq!(PortRange::parse("*").unwrap(), PortRange::ANY);
        let one = PortRange::parse("8080").unwrap();
        assert!(one.allows(8080) && !one.allows(8081));
        let range = PortRange::parse("8000-8100").unwrap();
        assert!(range.allows(8000) && range.allows(8100) && !range.allows(8101));
        assert_eq!(range.to_string(), "8000-8100");
    }

    #[test]
    fn port_range_of_one_is_allowed() {
        assert_eq!(PortRange::parse("80-80").unwrap().to_string(), "80");
    }

    #[test]
    fn rejects_reversed_port_range() {
        let err = PortRange::parse("9000-80").unwrap_err();
        assert_eq!(
            err.to_string(),
            "port range start is above its end (write 80-9000)"
        );
    }

    #[test]
    fn rejects_port_over_65535() {
        let err = PortRange::parse("65536").unwrap_err();
        assert_eq!(err.to_string(), "port 65536 is above 65535");
        let err = PortRange::parse("1-99999999999999999999").unwrap_err();
        assert_eq!(err.to_string(), "port 99999999999999999999 is above 65535");
    }
}
