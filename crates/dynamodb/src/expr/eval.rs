//! Conditions evaluated against an item (absent attributes make comparisons false, as on AWS).

use std::cmp::Ordering;

use super::{Cmp, Cond, Elem, Operand, Path};
use crate::number::Num;
use crate::value::{Av, Item};

pub fn resolve_path<'a>(item: &'a Item, path: &Path) -> Option<&'a Av> {
    let Some(Elem::Name(first)) = path.first() else { return None };
    let mut current = item.get(first)?;
    for elem in &path[1..] {
        current = match (elem, current) {
            (Elem::Name(name), Av::M(map)) => map.get(name)?,
            (Elem::Index(i), Av::L(list)) => list.get(*i)?,
            _ => return None,
        };
    }
    Some(current)
}

/// An operand's value for `item` (None when the attribute is absent).
pub fn resolve(item: &Item, operand: &Operand) -> Option<Av> {
    match operand {
        Operand::Value(value) => Some(value.clone()),
        Operand::Path(path) => resolve_path(item, path).cloned(),
        Operand::Size(path) => {
            let size = match resolve_path(item, path)? {
                Av::S(s) => s.chars().count(),
                Av::B(b) => b.len(),
                Av::Ss(s) => s.len(),
                Av::Ns(n) => n.len(),
                Av::Bs(b) => b.len(),
                Av::L(l) => l.len(),
                Av::M(m) => m.len(),
                _ => return None,
            };
            Some(Av::N(Num::from_i64(size as i64)))
        }
    }
}

/// Order of two values of one ordered type (N, S, B); None across types or for other types.
pub fn compare(a: &Av, b: &Av) -> Option<Ordering> {
    match (a, b) {
        (Av::N(x), Av::N(y)) => Some(x.cmp(y)),
        (Av::S(x), Av::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Av::B(x), Av::B(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Equality as DynamoDB sees it: sets equal whatever their order.
pub fn equal(a: &Av, b: &Av) -> bool {
    match (a, b) {
        (Av::Ss(x), Av::Ss(y)) => x.len() == y.len() && x.iter().all(|v| y.contains(v)),
        (Av::Ns(x), Av::Ns(y)) => x.len() == y.len() && x.iter().all(|v| y.contains(v)),
        (Av::Bs(x), Av::Bs(y)) => x.len() == y.len() && x.iter().all(|v| y.contains(v)),
        (Av::M(x), Av::M(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        (Av::L(x), Av::L(y)) => x.len() == y.len() && x.iter().zip(y).all(|(v, w)| equal(v, w)),
        _ => a == b,
    }
}

pub fn eval(cond: &Cond, item: &Item) -> bool {
    match cond {
        Cond::Or(a, b) => eval(a, item) || eval(b, item),
        Cond::And(a, b) => eval(a, item) && eval(b, item),
        Cond::Not(a) => !eval(a, item),
        Cond::Cmp(left, cmp, right) => {
            let (l, r) = (resolve(item, left), resolve(item, right));
            match (l, r, cmp) {
                (Some(l), Some(r), Cmp::Eq) => equal(&l, &r),
                (Some(l), Some(r), Cmp::Ne) => !equal(&l, &r),
                (_, _, Cmp::Ne) => true,
                (Some(l), Some(r), cmp) => compare(&l, &r).is_some_and(|o| match cmp {
                    Cmp::Lt => o.is_lt(),
                    Cmp::Le => o.is_le(),
                    Cmp::Gt => o.is_gt(),
                    Cmp::Ge => o.is_ge(),
                    Cmp::Eq | Cmp::Ne => false,
                }),
                _ => false,
            }
        }
        Cond::Between(x, low, high) => {
            let (Some(x), Some(low), Some(high)) =
                (resolve(item, x), resolve(item, low), resolve(item, high))
            else {
                return false;
            };
            compare(&low, &x).is_some_and(Ordering::is_le) && compare(&x, &high).is_some_and(Ordering::is_le)
        }
        Cond::In(x, list) => {
            let Some(x) = resolve(item, x) else { return false };
            list.iter().any(|candidate| resolve(item, candidate).is_some_and(|c| equal(&x, &c)))
        }
        Cond::Exists(path) => resolve_path(item, path).is_some(),
        Cond::NotExists(path) => resolve_path(item, path).is_none(),
        Cond::Type(path, kind) => match (resolve_path(item, path), resolve(item, kind)) {
            (Some(value), Some(Av::S(kind))) => value.type_name() == kind,
            _ => false,
        },
        Cond::BeginsWith(x, prefix) => match (resolve(item, x), resolve(item, prefix)) {
            (Some(Av::S(s)), Some(Av::S(p))) => s.starts_with(&p),
            (Some(Av::B(s)), Some(Av::B(p))) => s.starts_with(&p),
            _ => false,
        },
        Cond::Contains(x, needle) => match (resolve(item, x), resolve(item, needle)) {
            (Some(Av::S(s)), Some(Av::S(n))) => s.contains(&n),
            (Some(Av::B(s)), Some(Av::B(n))) => n.is_empty() || s.windows(n.len()).any(|w| w == n.as_slice()),
            (Some(Av::Ss(s)), Some(Av::S(n))) => s.contains(&n),
            (Some(Av::Ns(s)), Some(Av::N(n))) => s.contains(&n),
            (Some(Av::Bs(s)), Some(Av::B(n))) => s.contains(&n),
            (Some(Av::L(l)), Some(n)) => l.iter().any(|v| equal(v, &n)),
            _ => false,
        },
    }
}
