//! A response before it meets a wire protocol: the model's shapes with just enough type
//! information (timestamps, maps versus structures) for JSON, CBOR and Query XML alike.

#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Str(String),
    Double(f64),
    Int(i64),
    Bool(bool),
    /// Seconds since the Unix epoch.
    Time(i64),
    List(Vec<Out>),
    /// Members in the model's order (Query XML keeps it).
    Struct(Vec<(&'static str, Out)>),
    /// A map shape: `<entry><key/><value/></entry>` in XML, an object elsewhere.
    Map(Vec<(String, Out)>),
}

impl Out {
    pub fn str(value: impl Into<String>) -> Out {
        Out::Str(value.into())
    }

    /// The ISO 8601 form Query responses use.
    pub fn iso8601(seconds: i64) -> String {
        let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        let at =
            time::OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        at.format(&format).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_as_utc_iso8601() {
        assert_eq!(Out::iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(Out::iso8601(1_700_000_040), "2023-11-14T22:14:00Z");
    }
}
