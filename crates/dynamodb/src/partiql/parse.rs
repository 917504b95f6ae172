//! PartiQL as DynamoDB speaks it, the subset of one-table statements: `SELECT`, `INSERT … VALUE`,
//! `UPDATE … SET/REMOVE … WHERE`, `DELETE … WHERE`; WHERE clauses become the same conditions the
//! expression language makes, so they are evaluated by the same code.

use std::collections::BTreeMap;

use super::lex::{lex, syntax, Tok};
use crate::error::{validation, DdbError, Result};
use crate::expr::{Action, Cmp, Cond, Elem, Operand, Path, SetValue, UOp, Update};
use crate::number::Num;
use crate::value::{Av, Item};

pub enum Statement {
    Select { table: String, index: Option<String>, projection: Option<Vec<Path>>, filter: Option<Cond> },
    Insert { table: String, item: Item },
    Update { table: String, update: Update, filter: Cond },
    Delete { table: String, filter: Cond },
}

pub struct Parser<'p> {
    toks: Vec<Tok>,
    pos: usize,
    params: &'p [Av],
    next_param: usize,
    /// Nesting so far: bounded, so no statement can exhaust the stack.
    depth: usize,
}

const MAX_STATEMENT_BYTES: usize = 8192;
const MAX_DEPTH: usize = 64;

impl<'p> Parser<'p> {
    pub fn parse(text: &str, params: &'p [Av]) -> Result<Statement> {
        if text.len() > MAX_STATEMENT_BYTES {
            return Err(validation(
                "1 validation error detected: Value at 'statement' failed to satisfy constraint: Member must have length less than or equal to 8192",
            ));
        }
        let mut p = Parser { toks: lex(text)?, pos: 0, params, next_param: 0, depth: 0 };
        let statement = p.statement()?;
        p.eat_sym(";");
        if p.peek() != &Tok::Eof {
            return Err(p.error());
        }
        if p.next_param != params.len() {
            return Err(validation("Number of parameters in request and statement don't match."));
        }
        Ok(statement)
    }

    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).unwrap_or(&Tok::Eof)
    }

    fn next(&mut self) -> Tok {
        let tok = self.peek().clone();
        self.pos += 1;
        tok
    }

    fn error(&self) -> DdbError {
        syntax(&match self.peek() {
            Tok::Word(w) | Tok::Num(w) => w.clone(),
            Tok::Quoted(q) => format!("\"{q}\""),
            Tok::Str(s) => format!("'{s}'"),
            Tok::Param => "?".into(),
            Tok::Sym(s) => (*s).into(),
            Tok::Eof => "EOF".into(),
        })
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Word(w) if w.eq_ignore_ascii_case(word))
    }

    fn word(&mut self, word: &str) -> Result<()> {
        if self.is_word(word) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn eat_sym(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Tok::Sym(s) if *s == sym) {
            self.pos += 1;
            return true;
        }
        false
    }

    fn sym(&mut self, sym: &str) -> Result<()> {
        if self.eat_sym(sym) {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn name(&mut self) -> Result<String> {
        match self.next() {
            Tok::Word(w) | Tok::Quoted(w) => Ok(w),
            _ => {
                self.pos -= 1;
                Err(self.error())
            }
        }
    }

    fn statement(&mut self) -> Result<Statement> {
        if self.is_word("SELECT") {
            self.pos += 1;
            let projection = if self.eat_sym("*") {
                None
            } else {
                let mut paths = vec![self.path()?];
                while self.eat_sym(",") {
                    paths.push(self.path()?);
                }
                Some(paths)
            };
            self.word("FROM")?;
            let table = self.name()?;
            let index = if self.eat_sym(".") { Some(self.name()?) } else { None };
            let filter = if self.is_word("WHERE") {
                self.pos += 1;
                Some(self.or()?)
            } else {
                None
            };
            return Ok(Statement::Select { table, index, projection, filter });
        }
        if self.is_word("INSERT") {
            self.pos += 1;
            self.word("INTO")?;
            let table = self.name()?;
            self.word("VALUE")?;
            let Av::M(item) = self.literal()? else {
                return Err(validation("Unsupported operation: Inserting non-map values"));
            };
            return Ok(Statement::Insert { table, item });
        }
        if self.is_word("UPDATE") {
            self.pos += 1;
            let table = self.name()?;
            let mut update = Update::default();
            loop {
                if self.is_word("SET") {
                    self.pos += 1;
                    loop {
                        let path = self.path()?;
                        self.sym("=")?;
                        let first = self.uop()?;
                        let value = if self.eat_sym("+") {
                            SetValue::Plus(first, self.uop()?)
                        } else if self.eat_sym("-") {
                            SetValue::Minus(first, self.uop()?)
                        } else {
                            SetValue::Op(first)
                        };
                        update.actions.push(Action::Set(path, value));
                        if !self.eat_sym(",") {
                            break;
                        }
                    }
                } else if self.is_word("REMOVE") {
                    self.pos += 1;
                    update.actions.push(Action::Remove(self.path()?));
                    while self.eat_sym(",") {
                        update.actions.push(Action::Remove(self.path()?));
                    }
                } else {
                    break;
                }
            }
            if update.actions.is_empty() {
                return Err(self.error());
            }
            self.word("WHERE")?;
            let filter = self.or()?;
            return Ok(Statement::Update { table, update, filter });
        }
        if self.is_word("DELETE") {
            self.pos += 1;
            self.word("FROM")?;
            let table = self.name()?;
            self.word("WHERE")?;
            let filter = self.or()?;
            return Ok(Statement::Delete { table, filter });
        }
        Err(self.error())
    }

    fn uop(&mut self) -> Result<UOp> {
        self.deeper()?;
        let op = self.uop_inner();
        self.depth -= 1;
        op
    }

    fn uop_inner(&mut self) -> Result<UOp> {
        if self.is_word("list_append") {
            self.pos += 1;
            self.sym("(")?;
            let a = self.uop()?;
            self.sym(",")?;
            let b = self.uop()?;
            self.sym(")")?;
            return Ok(UOp::ListAppend(Box::new(a), Box::new(b)));
        }
        Ok(match self.operand()? {
            Operand::Path(p) => UOp::Path(p),
            Operand::Value(v) => UOp::Value(v),
            Operand::Size(_) => return Err(self.error()),
        })
    }

    fn path(&mut self) -> Result<Path> {
        let mut path = vec![Elem::Name(self.name()?)];
        loop {
            if self.eat_sym(".") {
                path.push(Elem::Name(self.name()?));
            } else if self.eat_sym("[") {
                match self.next() {
                    Tok::Num(n) => path.push(Elem::Index(n.parse().map_err(|_| self.error())?)),
                    Tok::Str(s) => path.push(Elem::Name(s)),
                    _ => return Err(self.error()),
                }
                self.sym("]")?;
            } else {
                return Ok(path);
            }
        }
    }

    fn deeper(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(validation("Statement wasn't well formed, can't be processed: nested too deeply"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Cond> {
        self.deeper()?;
        let cond = self.or_inner();
        self.depth -= 1;
        cond
    }

    fn or_inner(&mut self) -> Result<Cond> {
        let mut left = self.and()?;
        while self.is_word("OR") {
            self.pos += 1;
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Cond> {
        let mut left = self.not()?;
        while self.is_word("AND") {
            self.pos += 1;
            left = Cond::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Cond> {
        if self.is_word("NOT") {
            self.pos += 1;
            self.deeper()?;
            let inner = self.not();
            self.depth -= 1;
            return Ok(Cond::Not(Box::new(inner?)));
        }
        if self.eat_sym("(") {
            let cond = self.or()?;
            self.sym(")")?;
            return Ok(cond);
        }
        for function in ["begins_with", "contains", "attribute_type"] {
            if self.is_word(function) && self.toks.get(self.pos + 1) == Some(&Tok::Sym("(")) {
                self.pos += 2;
                let a = self.operand()?;
                self.sym(",")?;
                let b = self.operand()?;
                self.sym(")")?;
                return Ok(match function {
                    "begins_with" => Cond::BeginsWith(a, b),
                    "contains" => Cond::Contains(a, b),
                    _ => match a {
                        Operand::Path(p) => Cond::Type(p, b),
                        _ => return Err(self.error()),
                    },
                });
            }
        }
        let left = self.operand()?;
        if self.is_word("IS") {
            self.pos += 1;
            let negated = self.is_word("NOT");
            if negated {
                self.pos += 1;
            }
            let Operand::Path(path) = left else { return Err(self.error()) };
            let cond = if self.is_word("MISSING") {
                self.pos += 1;
                Cond::NotExists(path)
            } else {
                self.word("NULL")?;
                Cond::Type(path, Operand::Value(Av::S("NULL".into())))
            };
            return Ok(if negated { Cond::Not(Box::new(cond)) } else { cond });
        }
        if self.is_word("BETWEEN") {
            self.pos += 1;
            let low = self.operand()?;
            self.word("AND")?;
            let high = self.operand()?;
            return Ok(Cond::Between(left, low, high));
        }
        if self.is_word("IN") {
            self.pos += 1;
            let close = if self.eat_sym("[") { "]" } else { self.sym("(").map(|_| ")")? };
            let mut list = vec![self.operand()?];
            while self.eat_sym(",") {
                list.push(self.operand()?);
            }
            self.sym(close)?;
            return Ok(Cond::In(left, list));
        }
        let cmp = match self.next() {
            Tok::Sym("=") => Cmp::Eq,
            Tok::Sym("<>") | Tok::Sym("!=") => Cmp::Ne,
            Tok::Sym("<") => Cmp::Lt,
            Tok::Sym("<=") => Cmp::Le,
            Tok::Sym(">") => Cmp::Gt,
            Tok::Sym(">=") => Cmp::Ge,
            _ => {
                self.pos -= 1;
                return Err(self.error());
            }
        };
        Ok(Cond::Cmp(left, cmp, self.operand()?))
    }

    fn operand(&mut self) -> Result<Operand> {
        if self.is_word("size") && self.toks.get(self.pos + 1) == Some(&Tok::Sym("(")) {
            self.pos += 2;
            let path = self.path()?;
            self.sym(")")?;
            return Ok(Operand::Size(path));
        }
        match self.peek() {
            Tok::Word(w) if !["TRUE", "FALSE", "NULL"].contains(&w.to_ascii_uppercase().as_str()) => {
                Ok(Operand::Path(self.path()?))
            }
            Tok::Quoted(_) => Ok(Operand::Path(self.path()?)),
            _ => Ok(Operand::Value(self.literal()?)),
        }
    }

    fn literal(&mut self) -> Result<Av> {
        self.deeper()?;
        let value = self.literal_inner();
        self.depth -= 1;
        value
    }

    fn literal_inner(&mut self) -> Result<Av> {
        Ok(match self.next() {
            Tok::Str(s) => Av::S(s),
            Tok::Num(n) => Av::N(Num::parse(&n)?),
            Tok::Param => {
                let value = self.params.get(self.next_param).cloned().ok_or_else(|| {
                    validation("Number of parameters in request and statement don't match.")
                })?;
                self.next_param += 1;
                value
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("TRUE") => Av::Bool(true),
            Tok::Word(w) if w.eq_ignore_ascii_case("FALSE") => Av::Bool(false),
            Tok::Word(w) if w.eq_ignore_ascii_case("NULL") => Av::Null,
            Tok::Sym("{") => {
                let mut map = BTreeMap::new();
                if !self.eat_sym("}") {
                    loop {
                        let key = match self.next() {
                            Tok::Str(s) | Tok::Quoted(s) => s,
                            _ => return Err(self.error()),
                        };
                        self.sym(":")?;
                        map.insert(key, self.literal()?);
                        if !self.eat_sym(",") {
                            break;
                        }
                    }
                    self.sym("}")?;
                }
                Av::M(map)
            }
            Tok::Sym("[") => {
                let mut list = Vec::new();
                if !self.eat_sym("]") {
                    loop {
                        list.push(self.literal()?);
                        if !self.eat_sym(",") {
                            break;
                        }
                    }
                    self.sym("]")?;
                }
                Av::L(list)
            }
            Tok::Sym("<<") => {
                let mut items = Vec::new();
                loop {
                    items.push(self.literal()?);
                    if !self.eat_sym(",") {
                        break;
                    }
                }
                self.sym(">>")?;
                let json: Vec<serde_json::Value> = items.iter().map(Av::to_json).collect();
                let kind = match items.first() {
                    Some(Av::S(_)) => "SS",
                    Some(Av::N(_)) => "NS",
                    Some(Av::B(_)) => "BS",
                    _ => return Err(validation("Unsupported type for a set")),
                };
                let inner: Vec<serde_json::Value> = json
                    .iter()
                    .map(|v| v.as_object().and_then(|o| o.values().next().cloned()).unwrap_or_default())
                    .collect();
                Av::parse(&serde_json::json!({ kind: inner }))?
            }
            _ => {
                self.pos -= 1;
                return Err(self.error());
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Parser, Statement};

    #[test]
    fn parses_statements_and_refuses_deep_nesting() {
        let statement =
            Parser::parse("SELECT a, b.c FROM \"t\" WHERE pk = 'x' AND n BETWEEN 1 AND 5", &[]).unwrap();
        assert!(
            matches!(statement, Statement::Select { projection: Some(ref p), filter: Some(_), .. } if p.len() == 2)
        );
        let insert = Parser::parse("INSERT INTO t VALUE {'pk': 'a', 'l': [1, {'m': <<'x'>>}]}", &[]).unwrap();
        assert!(matches!(insert, Statement::Insert { ref item, .. } if item.len() == 2));
        let deep = format!("SELECT * FROM t WHERE {}pk = 'a'{}", "(".repeat(3000), ")".repeat(3000));
        assert!(Parser::parse(&deep, &[]).is_err());
        let deep = format!("INSERT INTO t VALUE {}", "[".repeat(3000));
        assert!(Parser::parse(&deep, &[]).is_err());
        assert!(Parser::parse("SELECT * FROM t WHERE pk = ?", &[]).is_err());
    }
}
