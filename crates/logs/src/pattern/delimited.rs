//! Space-delimited patterns: `[ip, user, username, timestamp, request = *html*, status = 4*,
//! bytes > 1000]`. The event splits on spaces into fields, a `"…"` or `[…]` run being one field
//! (without its quotes or brackets); each named column takes one field and may carry conditions
//! joined by `&&` and `||`; `...` takes any number of fields. Without `...` the counts must agree.

use super::value::{Op, Value};
use super::PatternError;

#[derive(Debug, Clone)]
enum Column {
    Any,
    Ellipsis,
    /// Alternatives of conjunctions of comparisons.
    Conditions(Vec<Vec<(Op, Value)>>),
}

#[derive(Debug, Clone)]
pub struct Columns(Vec<Column>);

impl Columns {
    /// Parses the text between the brackets.
    pub fn parse(text: &str) -> Result<Columns, PatternError> {
        let columns = split_top_level(text, ',')
            .into_iter()
            .map(|column| column.trim())
            .map(|column| match column {
                "" => Err(PatternError("Empty column in space-delimited pattern".into())),
                "..." => Ok(Column::Ellipsis),
                _ => column_conditions(column),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Columns(columns))
    }

    pub fn matches(&self, message: &str) -> bool {
        matches_from(&self.0, &fields(message))
    }
}

fn column_conditions(column: &str) -> Result<Column, PatternError> {
    if column.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
        return Ok(Column::Any);
    }
    let alternatives = split_top_level(column, '|')
        .into_iter()
        .filter(|part| !part.is_empty())
        .map(|alternative| {
            split_top_level(alternative, '&')
                .into_iter()
                .filter(|part| !part.is_empty())
                .map(comparison)
                .collect()
        })
        .collect::<Result<Vec<Vec<_>>, _>>()?;
    Ok(Column::Conditions(alternatives))
}

/// `name op value`, e.g. `status_code = 4*` or `w1=ERROR`.
fn comparison(text: &str) -> Result<(Op, Value), PatternError> {
    let invalid = || PatternError(format!("Invalid condition '{}' in space-delimited pattern", text.trim()));
    let at = text.find(['=', '!', '<', '>']).ok_or_else(invalid)?;
    let (op, len) = Op::lex(&text[at..]).ok_or_else(invalid)?;
    let name = text[..at].trim();
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
        return Err(invalid());
    }
    let raw = text[at + len..].trim();
    let value = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(quoted) => Value::Text(quoted.replace("\\\"", "\"")),
        None if raw.is_empty() => return Err(invalid()),
        None => Value::bare(raw)?,
    };
    Ok((op, value))
}

/// Splits on `separator` (doubled, for `&&` and `||`; single for `,`) outside quotes and `%…%`.
fn split_top_level(text: &str, separator: char) -> Vec<&str> {
    let doubled = separator != ',';
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut regex) = (0, false, false);
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] as char {
            '"' if !regex => quoted = !quoted,
            '%' if !quoted => regex = !regex,
            c if c == separator && !quoted && !regex => {
                if !doubled {
                    parts.push(&text[start..i]);
                    start = i + 1;
                } else if bytes.get(i + 1) == Some(&(separator as u8)) {
                    parts.push(&text[start..i]);
                    start = i + 2;
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&text[start..]);
    parts
}

/// The event's fields: runs of non-space characters, `"…"` and `[…]` kept whole.
fn fields(message: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut rest = message.trim();
    while !rest.is_empty() {
        let close = match rest.as_bytes()[0] {
            b'"' => Some('"'),
            b'[' => Some(']'),
            _ => None,
        };
        let (field, next) = match close.and_then(|c| rest[1..].find(c)) {
            Some(end) => (&rest[1..end + 1], &rest[end + 2..]),
            None => {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        fields.push(field);
        rest = next.trim_start();
    }
    fields
}

fn matches_from(columns: &[Column], fields: &[&str]) -> bool {
    let Some((column, rest)) = columns.split_first() else {
        return fields.is_empty();
    };
    match column {
        Column::Ellipsis => (0..=fields.len()).any(|skip| matches_from(rest, &fields[skip..])),
        _ if fields.is_empty() => false,
        Column::Any => matches_from(rest, &fields[1..]),
        Column::Conditions(alternatives) => {
            alternatives.iter().any(|all| all.iter().all(|(op, value)| value.compare_text(*op, fields[0])))
                && matches_from(rest, &fields[1..])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCESS: &str =
        r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 200 1534"#;

    fn matches(pattern: &str, message: &str) -> bool {
        Columns::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e:?}")).matches(message)
    }

    #[test]
    fn fields_keep_quoted_and_bracketed_runs_whole() {
        assert_eq!(
            fields(ACCESS),
            [
                "127.0.0.1",
                "-",
                "frank",
                "10/Oct/2000:13:25:15 -0700",
                "GET /apache_pb.gif HTTP/1.0",
                "200",
                "1534"
            ]
        );
    }

    #[test]
    fn columns_with_conditions() {
        let all = "ip, user, username, timestamp, request, status_code, bytes";
        assert!(matches(all, ACCESS));
        assert!(!matches("ip, user, username", ACCESS));
        assert!(matches(
            "ip, user, username, timestamp, request = *gif*, status_code = 2*, bytes > 1000",
            ACCESS
        ));
        assert!(!matches("ip, user, username, timestamp, request, status_code = 4*, bytes", ACCESS));
        assert!(matches("..., status_code = 4* || status_code = 200, bytes", ACCESS));
        assert!(matches("ip = 127.0.0.*, ...", ACCESS));
        assert!(matches("ip, ..., bytes >= 1534 && bytes < 2000", ACCESS));
        assert!(matches("w1=ERROR, w2", "ERROR timeout"));
        assert!(!matches("w1=ERROR, w2", "INFO timeout"));
        assert!(matches(r#"w1 = "ERROR", ..."#, "ERROR a b c"));
        assert!(matches("w1 = %^ERR%, ...", "ERROR a b c"));
        assert!(matches("w1 != DEBUG, ...", "ERROR a b c"));
    }

    #[test]
    fn malformed_columns_are_rejected() {
        for bad in ["a,,b", "a = ", "a ~ 1", "= 1"] {
            assert!(Columns::parse(bad).is_err(), "{bad}");
        }
    }
}
