//! Unstructured patterns: terms and quoted phrases. All terms of a clause must appear (`ERROR
//! ARGUMENTS`), `-term` must not (`ERROR -ARGUMENTS`), and `?` starts an alternative clause
//! (`?ERROR ?WARN`, `?"ERROR" "MainThread" ?"WARN" "Deadlock"`): an event matches when any clause
//! does. Matching is case sensitive and, as on AWS, by whole words: a term whose edge is a letter
//! or digit only matches where the event has no letter or digit right beside it, so `ERROR`
//! matches `[ERROR]` and `ERROR:` but not `ERRORS`.

use super::PatternError;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Clause {
    include: Vec<String>,
    exclude: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    clauses: Vec<Clause>,
}

impl Terms {
    pub fn parse(text: &str) -> Result<Terms, PatternError> {
        let mut clauses = Vec::new();
        let mut current = Clause::default();
        let mut chars = text.trim().chars().peekable();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
                continue;
            }
            let optional = c == '?';
            let excluded = c == '-';
            if optional || excluded {
                chars.next();
            }
            let term = if chars.peek() == Some(&'"') {
                chars.next();
                quoted(&mut chars)?
            } else {
                let mut term = String::new();
                while let Some(&c) = chars.peek().filter(|c| !c.is_whitespace()) {
                    term.push(c);
                    chars.next();
                }
                term
            };
            if term.is_empty() {
                return Err(PatternError(format!("Missing term after '{c}'")));
            }
            if optional && current != Clause::default() {
                clauses.push(std::mem::take(&mut current));
            }
            if excluded {
                current.exclude.push(term);
            } else {
                current.include.push(term);
            }
        }
        if current != Clause::default() {
            clauses.push(current);
        }
        Ok(Terms { clauses })
    }

    pub fn matches(&self, message: &str) -> bool {
        self.clauses.is_empty()
            || self.clauses.iter().any(|clause| {
                clause.include.iter().all(|term| contains_word(message, term))
                    && !clause.exclude.iter().any(|term| contains_word(message, term))
            })
    }
}

/// The rest of a `"…"` term, with `\"` and `\\` unescaped.
fn quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, PatternError> {
    let mut term = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Ok(term),
            '\\' => term.push(chars.next().unwrap_or('\\')),
            c => term.push(c),
        }
    }
    Err(PatternError("Unterminated quoted term".into()))
}

/// Whether `term` occurs in `message` without a letter or digit glued to its alphanumeric edges.
pub fn contains_word(message: &str, term: &str) -> bool {
    let starts_word = term.starts_with(char::is_alphanumeric);
    let ends_word = term.ends_with(char::is_alphanumeric);
    message.match_indices(term).any(|(at, _)| {
        let before = message[..at].chars().next_back();
        let after = message[at + term.len()..].chars().next();
        let glued_before = starts_word && before.is_some_and(char::is_alphanumeric);
        let glued_after = ends_word && after.is_some_and(char::is_alphanumeric);
        !glued_before && !glued_after
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, message: &str) -> bool {
        Terms::parse(pattern).unwrap().matches(message)
    }

    #[test]
    fn all_terms_must_match_case_sensitively_as_words() {
        assert!(matches("ERROR", "[ERROR 400] BAD REQUEST"));
        assert!(matches("ERROR", "ERROR: boom"));
        assert!(!matches("ERROR", "error: boom"));
        assert!(!matches("ERROR", "ERRORS: boom"));
        assert!(matches("ERROR ARGUMENTS", "[ERROR] bad ARGUMENTS given"));
        assert!(!matches("ERROR ARGUMENTS", "[ERROR] bad input"));
        assert!(matches("", "anything"));
        assert!(matches("   ", "anything"));
    }

    #[test]
    fn quoted_phrases_keep_spaces_and_escapes() {
        assert!(matches("\"INTERNAL SERVER ERROR\"", "500 INTERNAL SERVER ERROR here"));
        assert!(!matches("\"INTERNAL SERVER ERROR\"", "INTERNAL ERROR SERVER"));
        assert!(matches(r#""say \"hi\"""#, r#"they say "hi" loudly"#));
        assert!(matches("\"Task timed out\"", "2024-01-01T00:00:00Z abc Task timed out after 3.00 seconds"));
        assert!(matches("\"[ERROR]\"", "x [ERROR] y"));
        assert!(Terms::parse("\"open").is_err());
    }

    #[test]
    fn alternatives_and_exclusions() {
        assert!(matches("?ERROR ?WARN", "WARN disk low"));
        assert!(matches("?ERROR ?WARN", "ERROR disk gone"));
        assert!(!matches("?ERROR ?WARN", "INFO all good"));
        assert!(matches("ERROR -ARGUMENTS", "ERROR timeout"));
        assert!(!matches("ERROR -ARGUMENTS", "ERROR ARGUMENTS missing"));
        assert!(matches("-DEBUG", "INFO hello"));
        assert!(!matches("-\"DEBUG x\"", "DEBUG x"));
        let groups = r#"?"ERROR" "MainThread" ?"WARN" "Deadlock""#;
        assert!(matches(groups, "ERROR in MainThread"));
        assert!(matches(groups, "WARN Deadlock found"));
        assert!(!matches(groups, "ERROR Deadlock"));
    }

    #[test]
    fn words_with_symbols_only_need_boundaries_at_alphanumeric_edges() {
        assert!(contains_word("request-id=abc-123;", "abc-123"));
        assert!(!contains_word("xabc-123", "abc-123"));
        assert!(contains_word("id:42", ":42"));
        assert!(contains_word("a ERROR b ERRORS", "ERROR"));
        assert!(contains_word("héllo wörld", "wörld"));
    }
}
