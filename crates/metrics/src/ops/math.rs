//! Metric math in `GetMetricData`: arithmetic (`+ - * /`, parentheses, numbers) over other
//! queries' series by id, and `SUM`, `AVG`, `MIN`, `MAX`, `ABS`, `FILL(m, value)` over a series,
//! `METRICS()` (every metric query, or those whose id contains a string) or `[m1, m2]`. Series
//! combine point by point on the timestamps they share.

use std::collections::BTreeMap;

type Points = BTreeMap<i64, f64>;

#[derive(Debug, Clone)]
enum Val {
    Scalar(f64),
    Series(Points),
    List(Vec<Points>),
}

struct Parser<'a> {
    chars: Vec<char>,
    at: usize,
    series: &'a BTreeMap<String, Points>,
    metric_ids: &'a [String],
}

pub fn evaluate(
    expression: &str,
    series: &BTreeMap<String, Points>,
    metric_ids: &[String],
) -> Result<Points, String> {
    let mut parser = Parser { chars: expression.chars().collect(), at: 0, series, metric_ids };
    let value = parser.sum()?;
    parser.space();
    if parser.at < parser.chars.len() {
        return Err(format!("unexpected text at {}", parser.chars[parser.at..].iter().collect::<String>()));
    }
    match value {
        Val::Series(points) => Ok(points),
        Val::List(mut list) if list.len() == 1 => Ok(list.remove(0)),
        Val::List(_) => {
            Err("the expression must produce one time series (wrap the list in SUM, AVG …)".into())
        }
        Val::Scalar(_) => Err("the expression must produce a time series, not a number".into()),
    }
}

fn combine(a: Val, b: Val, op: char) -> Result<Val, String> {
    let apply = |x: f64, y: f64| match op {
        '+' => x + y,
        '-' => x - y,
        '*' => x * y,
        _ => x / y,
    };
    Ok(match (a, b) {
        (Val::Scalar(x), Val::Scalar(y)) => Val::Scalar(apply(x, y)),
        (Val::Series(s), Val::Scalar(y)) => {
            Val::Series(s.into_iter().map(|(t, x)| (t, apply(x, y))).collect())
        }
        (Val::Scalar(x), Val::Series(s)) => {
            Val::Series(s.into_iter().map(|(t, y)| (t, apply(x, y))).collect())
        }
        (Val::Series(a), Val::Series(b)) => {
            Val::Series(a.into_iter().filter_map(|(t, x)| Some((t, apply(x, *b.get(&t)?)))).collect())
        }
        _ => return Err("arithmetic on a list of series needs SUM, AVG, MIN or MAX first".into()),
    })
}

fn reduce(list: Vec<Points>, name: &str) -> Points {
    let mut by_time: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for points in list {
        for (t, x) in points {
            by_time.entry(t).or_default().push(x);
        }
    }
    by_time
        .into_iter()
        .map(|(t, xs)| {
            let value = match name {
                "SUM" => xs.iter().sum(),
                "AVG" => xs.iter().sum::<f64>() / xs.len() as f64,
                "MIN" => xs.iter().copied().fold(f64::INFINITY, f64::min),
                _ => xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            };
            (t, value)
        })
        .collect()
}

impl Parser<'_> {
    fn space(&mut self) {
        while self.at < self.chars.len() && self.chars[self.at].is_whitespace() {
            self.at += 1;
        }
    }
    fn eat(&mut self, c: char) -> bool {
        self.space();
        if self.chars.get(self.at) == Some(&c) {
            self.at += 1;
            return true;
        }
        false
    }
    fn sum(&mut self) -> Result<Val, String> {
        let mut left = self.product()?;
        loop {
            if self.eat('+') {
                left = combine(left, self.product()?, '+')?;
            } else if self.eat('-') {
                left = combine(left, self.product()?, '-')?;
            } else {
                return Ok(left);
            }
        }
    }
    fn product(&mut self) -> Result<Val, String> {
        let mut left = self.unary()?;
        loop {
            if self.eat('*') {
                left = combine(left, self.unary()?, '*')?;
            } else if self.eat('/') {
                left = combine(left, self.unary()?, '/')?;
            } else {
                return Ok(left);
            }
        }
    }
    fn unary(&mut self) -> Result<Val, String> {
        if self.eat('-') {
            return combine(Val::Scalar(0.0), self.unary()?, '-');
        }
        self.primary()
    }
    fn primary(&mut self) -> Result<Val, String> {
        self.space();
        if self.eat('(') {
            let inner = self.sum()?;
            if !self.eat(')') {
                return Err("missing )".into());
            }
            return Ok(inner);
        }
        if self.eat('[') {
            let mut list = Vec::new();
            loop {
                match self.sum()? {
                    Val::Series(points) => list.push(points),
                    Val::List(more) => list.extend(more),
                    Val::Scalar(_) => return Err("a list holds series, not numbers".into()),
                }
                if self.eat(']') {
                    return Ok(Val::List(list));
                }
                if !self.eat(',') {
                    return Err("expected , or ] in a list".into());
                }
            }
        }
        if self.eat('"') {
            let start = self.at;
            while self.at < self.chars.len() && self.chars[self.at] != '"' {
                self.at += 1;
            }
            let text: String = self.chars[start..self.at].iter().collect();
            self.at += 1;
            return Err(format!("unexpected string \"{text}\""));
        }
        let start = self.at;
        while self.at < self.chars.len()
            && (self.chars[self.at].is_ascii_alphanumeric()
                || self.chars[self.at] == '_'
                || self.chars[self.at] == '.')
        {
            self.at += 1;
        }
        let word: String = self.chars[start..self.at].iter().collect();
        if word.is_empty() {
            return Err(format!("unexpected {:?}", self.chars.get(self.at)));
        }
        if let Ok(number) = word.parse::<f64>() {
            return Ok(Val::Scalar(number));
        }
        if self.eat('(') {
            let function = word.to_ascii_uppercase();
            if function == "METRICS" {
                let mut filter = String::new();
                if self.eat('"') {
                    while self.at < self.chars.len() && self.chars[self.at] != '"' {
                        filter.push(self.chars[self.at]);
                        self.at += 1;
                    }
                    self.at += 1;
                }
                if !self.eat(')') {
                    return Err("missing ) after METRICS(".into());
                }
                let list = self
                    .metric_ids
                    .iter()
                    .filter(|id| id.contains(&filter))
                    .filter_map(|id| self.series.get(id).cloned())
                    .collect();
                return Ok(Val::List(list));
            }
            let argument = self.sum()?;
            let second = if self.eat(',') { Some(self.sum()?) } else { None };
            if !self.eat(')') {
                return Err(format!("missing ) after {function}("));
            }
            return match (function.as_str(), argument) {
                ("SUM" | "AVG" | "MIN" | "MAX", Val::List(list)) => Ok(Val::Series(reduce(list, &function))),
                ("SUM" | "AVG" | "MIN" | "MAX", Val::Series(points)) => Ok(Val::Series(points)),
                ("ABS", Val::Series(points)) => {
                    Ok(Val::Series(points.into_iter().map(|(t, x)| (t, x.abs())).collect()))
                }
                ("ABS", Val::Scalar(x)) => Ok(Val::Scalar(x.abs())),
                ("FILL", Val::Series(points)) => match second {
                    // Without the other queries' timestamps, FILL keeps the series as it is.
                    Some(Val::Scalar(_)) => Ok(Val::Series(points)),
                    _ => Err("FILL takes a series and a number".into()),
                },
                (other, _) => Err(format!("nimbus does not evaluate the metric math function {other}")),
            };
        }
        match self.series.get(&word) {
            Some(points) => Ok(Val::Series(points.clone())),
            None => Err(format!("Unrecognized identifier {word}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_and_aggregates() {
        let series = BTreeMap::from([
            ("m1".to_owned(), BTreeMap::from([(0, 10.0), (60, 20.0)])),
            ("m2".to_owned(), BTreeMap::from([(0, 5.0), (60, 5.0)])),
        ]);
        let ids = vec!["m1".to_owned(), "m2".to_owned()];
        assert_eq!(
            evaluate("m1 / m2 * 100", &series, &ids).unwrap(),
            BTreeMap::from([(0, 200.0), (60, 400.0)])
        );
        assert_eq!(
            evaluate("SUM(METRICS())", &series, &ids).unwrap(),
            BTreeMap::from([(0, 15.0), (60, 25.0)])
        );
        assert_eq!(
            evaluate("MAX([m1, m2]) - 1", &series, &ids).unwrap(),
            BTreeMap::from([(0, 9.0), (60, 19.0)])
        );
        assert!(evaluate("m3 + 1", &series, &ids).unwrap_err().contains("m3"));
        assert!(evaluate("ANOMALY_DETECTION_BAND(m1)", &series, &ids).is_err());
    }
}
