//! CloudWatch Logs filter patterns, as `FilterLogEvents` (and later metric and subscription
//! filters) use them: unstructured terms (`terms`), `%regex%`, JSON patterns in braces (`json`)
//! and space-delimited patterns in brackets (`delimited`). An empty pattern matches everything.

mod delimited;
mod json;
mod terms;
mod value;

use regex::Regex;

/// Why a pattern was refused; becomes an `InvalidParameterException`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

#[derive(Debug, Clone)]
pub enum Pattern {
    Terms(terms::Terms),
    Regex(Regex),
    Json(json::Expr),
    Delimited(delimited::Columns),
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let trimmed = text.trim();
        if let Some(inner) = trimmed.strip_prefix('{') {
            let inner = inner.strip_suffix('}').ok_or_else(|| PatternError("Missing '}'".into()))?;
            return json::Expr::parse(inner).map(Pattern::Json);
        }
        if let Some(inner) = trimmed.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or_else(|| PatternError("Missing ']'".into()))?;
            return delimited::Columns::parse(inner).map(Pattern::Delimited);
        }
        if trimmed.len() > 1 && trimmed.starts_with('%') && trimmed.ends_with('%') {
            let inner = &trimmed[1..trimmed.len() - 1];
            return value::compile(inner).map(Pattern::Regex);
        }
        terms::Terms::parse(trimmed).map(Pattern::Terms)
    }

    pub fn matches(&self, message: &str) -> bool {
        match self {
            Pattern::Terms(terms) => terms.matches(message),
            Pattern::Regex(regex) => regex.is_match(message),
            Pattern::Json(expr) => expr.matches(message),
            Pattern::Delimited(columns) => columns.matches(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, message: &str) -> bool {
        Pattern::parse(pattern).unwrap().matches(message)
    }

    #[test]
    fn each_kind_is_recognised() {
        assert!(matches("", "anything at all"));
        assert!(matches("ERROR", "[ERROR] x"));
        assert!(matches("%AUTHORIZED%", "[SUCCESS 200] UNAUTHORIZED REQUEST"));
        assert!(!matches("%^AUTH%", "[SUCCESS 200] AUTHORIZED REQUEST"));
        assert!(matches("{ $.level = \"ERROR\" }", r#"{"level":"ERROR"}"#));
        assert!(matches("{$.level=ERROR}", r#"{"level":"ERROR"}"#));
        assert!(matches("[level = ERROR, ...]", "ERROR disk full"));
    }

    #[test]
    fn regexes_are_held_to_what_aws_accepts() {
        assert!(matches("%colou?r%", "the color red"));
        assert!(matches("%^[hc]at%", "hat trick"));
        assert!(matches("%a{3,5}%", "xaaay"));
        assert!(Pattern::parse("%something!%").is_err());
        assert!(Pattern::parse("%(a|b)%").is_err());
        assert!(Pattern::parse("%é%").is_err());
        assert!(Pattern::parse("{ $.x = %(a)% }").is_err());
    }

    #[test]
    fn broken_patterns_are_errors() {
        for bad in ["{ $.a = 1", "[a, b", "%(%", "{ }", "\"open"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }
}
