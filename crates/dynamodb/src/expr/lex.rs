//! Tokens of DynamoDB's expression language.

use crate::error::{validation, DdbError};

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A bare word: an attribute name, a keyword or a function name.
    Word(String),
    /// `#name`
    Name(String),
    /// `:value`
    Value(String),
    /// Digits (list indexes).
    Int(String),
    Sym(&'static str),
    Eof,
}

impl Tok {
    pub fn show(&self) -> String {
        match self {
            Tok::Word(w) | Tok::Name(w) | Tok::Value(w) | Tok::Int(w) => w.clone(),
            Tok::Sym(s) => (*s).to_owned(),
            Tok::Eof => "<EOF>".to_owned(),
        }
    }

    pub fn is_word(&self, word: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(word))
    }
}

pub fn lex(kind: &str, text: &str) -> Result<Vec<Tok>, DdbError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let tok = match b {
            b'#' | b':' => {
                i += 1;
                while i < bytes.len() && word(bytes[i]) {
                    i += 1;
                }
                if i == start + 1 {
                    return Err(syntax(kind, &(b as char).to_string(), text));
                }
                let token = text[start..i].to_owned();
                if b == b'#' {
                    Tok::Name(token)
                } else {
                    Tok::Value(token)
                }
            }
            b'0'..=b'9' => {
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                Tok::Int(text[start..i].to_owned())
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                while i < bytes.len() && word(bytes[i]) {
                    i += 1;
                }
                Tok::Word(text[start..i].to_owned())
            }
            _ => {
                let two = text.get(i..i + 2).unwrap_or("");
                let sym = match two {
                    "<=" => Some("<="),
                    ">=" => Some(">="),
                    "<>" => Some("<>"),
                    _ => None,
                };
                if let Some(sym) = sym {
                    i += 2;
                    Tok::Sym(sym)
                } else {
                    i += 1;
                    Tok::Sym(match b {
                        b'(' => "(",
                        b')' => ")",
                        b'[' => "[",
                        b']' => "]",
                        b',' => ",",
                        b'.' => ".",
                        b'=' => "=",
                        b'<' => "<",
                        b'>' => ">",
                        b'+' => "+",
                        b'-' => "-",
                        _ => {
                            let c = text[start..].chars().next().unwrap_or('?');
                            return Err(validation(format!(
                                "Invalid {kind}: Invalid character encountered; character: {c}, near: {}",
                                near(text, start)
                            )));
                        }
                    })
                }
            }
        };
        out.push(tok);
    }
    out.push(Tok::Eof);
    Ok(out)
}

fn near(text: &str, at: usize) -> String {
    text[at..].chars().take(12).collect()
}

pub fn syntax(kind: &str, token: &str, near: &str) -> DdbError {
    validation(format!("Invalid {kind}: Syntax error; token: \"{token}\", near: \"{near}\""))
}
