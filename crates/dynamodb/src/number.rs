//! DynamoDB's numbers: decimals of up to 38 significant digits, magnitude 1E-130 to 9.99…E+125,
//! kept normalised (no leading or trailing zeros) so that equal numbers are equal values.

use std::cmp::Ordering;

use crate::error::{validation, DdbError};

/// `0.digits × 10^exp`, negative when `negative`; zero has no digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Num {
    negative: bool,
    digits: Vec<u8>,
    exp: i32,
}

const MAX_DIGITS: usize = 38;

fn overflow() -> DdbError {
    validation("Number overflow. Attempting to store a number with magnitude larger than supported range")
}

fn underflow() -> DdbError {
    validation("Number underflow. Attempting to store a number with magnitude smaller than supported range")
}

fn too_precise() -> DdbError {
    validation("Attempting to store more than 38 significant digits in a Number")
}

impl Num {
    pub fn parse(text: &str) -> Result<Num, DdbError> {
        let bad = || validation("A value provided cannot be converted into a number");
        let trimmed = text.trim();
        let (negative, rest) = match trimmed.as_bytes().first() {
            Some(b'-') => (true, &trimmed[1..]),
            Some(b'+') => (false, &trimmed[1..]),
            _ => (false, trimmed),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let exponent: i64 = match exponent {
            Some(e)
                if !e.is_empty() && e.trim_start_matches(['+', '-']).bytes().all(|b| b.is_ascii_digit()) =>
            {
                e.parse::<i64>().map_err(|_| overflow())?
            }
            Some(_) => return Err(bad()),
            None => 0,
        };
        let all: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
        let lead = all.iter().take_while(|d| **d == 0).count();
        let mut digits = all[lead..].to_vec();
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return Ok(Num::zero());
        }
        let exp = (int.len() as i64 - lead as i64).saturating_add(exponent);
        Num::checked(negative, digits, exp)
    }

    fn checked(negative: bool, digits: Vec<u8>, exp: i64) -> Result<Num, DdbError> {
        if digits.len() > MAX_DIGITS {
            return Err(too_precise());
        }
        // 0.d × 10^exp: at most 9.99…E+125 → exp ≤ 126; at least 1E-130 → exp ≥ -129.
        if exp > 126 {
            return Err(overflow());
        }
        if exp < -129 {
            return Err(underflow());
        }
        Ok(Num { negative, digits, exp: exp as i32 })
    }

    pub fn zero() -> Num {
        Num { negative: false, digits: Vec::new(), exp: 0 }
    }

    pub fn from_i64(n: i64) -> Num {
        Num::parse(&n.to_string()).unwrap_or_else(|_| Num::zero())
    }

    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// Significant digits (for AWS's size formula).
    pub fn significant_digits(&self) -> usize {
        self.digits.len()
    }

    /// The value rounded towards zero, when that fits (TTL timestamps: epoch seconds).
    pub fn as_i64(&self) -> Option<i64> {
        if self.is_zero() || self.exp <= 0 {
            return Some(0);
        }
        if self.exp > 18 {
            return None;
        }
        let mut n: i64 = 0;
        for i in 0..self.exp as usize {
            n = n * 10 + i64::from(self.digits.get(i).copied().unwrap_or(0));
        }
        Some(if self.negative { -n } else { n })
    }

    /// Bytes that sort as the numbers do (memcmp order).
    pub fn ordered_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.digits.len() + 4);
        if self.is_zero() {
            out.push(0x80);
            return out;
        }
        let biased = (self.exp + 1000) as u16;
        if self.negative {
            out.push(0x40);
            out.extend_from_slice(&(u16::MAX - biased).to_be_bytes());
            out.extend(self.digits.iter().map(|d| 0xFE - (d + 1)));
            out.push(0xFF);
        } else {
            out.push(0xC0);
            out.extend_from_slice(&biased.to_be_bytes());
            out.extend(self.digits.iter().map(|d| d + 1));
        }
        out
    }

    /// `self + other`, exact; an error when the result needs more than 38 digits.
    pub fn add(&self, other: &Num) -> Result<Num, DdbError> {
        let low = self.low_exp().min(other.low_exp());
        let a = self.scaled(low).ok_or_else(too_precise)?;
        let b = other.scaled(low).ok_or_else(too_precise)?;
        let sum = a.checked_add(b).ok_or_else(too_precise)?;
        Num::from_scaled(sum, low)
    }

    pub fn neg(&self) -> Num {
        Num { negative: !self.negative && !self.is_zero(), ..self.clone() }
    }

    /// Exponent of the last digit's place: value = mantissa × 10^low_exp.
    fn low_exp(&self) -> i64 {
        i64::from(self.exp) - self.digits.len() as i64
    }

    fn scaled(&self, low: i64) -> Option<i128> {
        let mut m: i128 = 0;
        for d in &self.digits {
            m = m.checked_mul(10)?.checked_add(i128::from(*d))?;
        }
        for _ in 0..(self.low_exp() - low) {
            m = m.checked_mul(10)?;
        }
        Some(if self.negative { -m } else { m })
    }

    fn from_scaled(m: i128, low: i64) -> Result<Num, DdbError> {
        if m == 0 {
            return Ok(Num::zero());
        }
        let text = m.unsigned_abs().to_string();
        let digits: Vec<u8> = text.bytes().map(|b| b - b'0').collect();
        let exp = low + digits.len() as i64;
        let mut digits = digits;
        while digits.last() == Some(&0) {
            digits.pop();
        }
        Num::checked(m < 0, digits, exp)
    }
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        let digits: String = self.digits.iter().map(|d| char::from(b'0' + d)).collect();
        let sign = if self.negative { "-" } else { "" };
        let n = digits.len() as i32;
        if self.exp <= 0 {
            write!(f, "{sign}0.{}{digits}", "0".repeat((-self.exp) as usize))
        } else if self.exp >= n {
            write!(f, "{sign}{digits}{}", "0".repeat((self.exp - n) as usize))
        } else {
            let (int, frac) = digits.split_at(self.exp as usize);
            write!(f, "{sign}{int}.{frac}")
        }
    }
}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Num) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Num {
    fn cmp(&self, other: &Num) -> Ordering {
        self.ordered_bytes().cmp(&other.ordered_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::Num;

    fn n(text: &str) -> Num {
        Num::parse(text).unwrap()
    }

    #[test]
    fn normalises_and_formats() {
        assert_eq!(n("1.0").to_string(), "1");
        assert_eq!(n("0100").to_string(), "100");
        assert_eq!(n("1e2").to_string(), "100");
        assert_eq!(n("-0.010").to_string(), "-0.01");
        assert_eq!(n("12.5").to_string(), "12.5");
        assert_eq!(n("-0").to_string(), "0");
        assert!(Num::parse("abc").is_err());
        assert!(Num::parse("1e200").is_err());
        assert!(Num::parse("1e9223372036854775807").is_err());
        assert!(Num::parse("1e-9223372036854775808").is_err());
        assert!(Num::parse("1e").is_err() && Num::parse(".").is_err() && Num::parse("--1").is_err());
        assert!(Num::parse("123456789012345678901234567890123456789").is_err());
        assert_eq!(n("1700000000").as_i64(), Some(1_700_000_000));
        assert_eq!(n("1700000000.75").as_i64(), Some(1_700_000_000));
        assert_eq!(n("-12.5").as_i64(), Some(-12));
    }

    #[test]
    fn orders_numerically() {
        let sorted =
            ["-100", "-10.5", "-10", "-0.123", "-0.12", "0", "0.12", "0.123", "2", "10", "10.5", "100"];
        for pair in sorted.windows(2) {
            assert!(n(pair[0]) < n(pair[1]), "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn adds_exactly() {
        assert_eq!(n("0.1").add(&n("0.2")).unwrap().to_string(), "0.3");
        assert_eq!(n("10").add(&n("-10")).unwrap().to_string(), "0");
        assert_eq!(n("5").add(&n("-7.5")).unwrap().to_string(), "-2.5");
        assert!(n("1e100").add(&n("1")).is_err());
    }
}
