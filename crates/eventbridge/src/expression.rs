//! Schedule expressions as EventBridge rules and EventBridge Scheduler write them: `rate(5
//! minutes)`, `cron(0 12 ? * MON-FRI *)` in AWS's six-field form (minutes, hours, day of month,
//! month, day of week 1–7 = SUN–SAT, year; `?`, `L`, `W`, `#`, ranges, lists and steps), and
//! Scheduler's one-time `at(2026-12-24T18:00:00)`. Cron and `at` times are read in a time zone
//! (UTC for rules, `ScheduleExpressionTimezone` for Scheduler), daylight saving included.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// A time zone: UTC, or an IANA zone read from the host's tz database
/// (`/usr/share/zoneinfo`, Debian's `tzdata`) when a schedule names one — nothing is embedded in
/// the binary (a compiled-in database costs a megabyte of relocated memory at every start).
#[derive(Debug, Clone)]
pub enum Tz {
    Utc,
    Named(tzfile::ArcTz),
}

impl Tz {
    pub const UTC: Tz = Tz::Utc;
}

impl std::fmt::Display for Tz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tz::Utc => f.write_str("UTC"),
            Tz::Named(_) => f.write_str("the time zone"),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Expression {
    /// Fires every `every_ms`, counted from when the schedule was made.
    Rate { every_ms: i64 },
    /// `last_weekday`: the day-of-month was `LW` (the month's last weekday), which the cron
    /// engine does not know: it matches every day and the days are filtered here.
    Cron { cron: Box<Cron>, zone: Tz, last_weekday: bool },
    /// Fires once, at this instant.
    At { at_ms: i64 },
}

impl Expression {
    /// `allow_at`: Scheduler takes `at(…)`; rules do not. The error is the reason, for the
    /// service to put in its own message.
    pub fn parse(text: &str, zone: Tz, allow_at: bool) -> Result<Expression, String> {
        let text = text.trim();
        if let Some(inner) = text.strip_prefix("rate(").and_then(|t| t.strip_suffix(')')) {
            return parse_rate(inner);
        }
        if let Some(inner) = text.strip_prefix("cron(").and_then(|t| t.strip_suffix(')')) {
            return parse_cron(inner, zone);
        }
        if let Some(inner) = text.strip_prefix("at(").and_then(|t| t.strip_suffix(')')) {
            if allow_at {
                return parse_at(inner, zone);
            }
        }
        Err(format!("{text} is not a rate(…) or cron(…) expression"))
    }

    /// The first time this schedule fires strictly after `after_ms`; `anchor_ms` is when the
    /// schedule was made (rates count from it). None once a one-time schedule has passed.
    pub fn next_after(&self, after_ms: i64, anchor_ms: i64) -> Option<i64> {
        match self {
            Expression::Rate { every_ms } => {
                let periods = (after_ms - anchor_ms).div_euclid(*every_ms) + 1;
                Some(anchor_ms + periods.max(1) * every_ms)
            }
            Expression::At { at_ms } => (*at_ms > after_ms).then_some(*at_ms),
            Expression::Cron { cron, zone: Tz::Utc, last_weekday } => {
                next_cron(cron, &Utc, after_ms, *last_weekday)
            }
            Expression::Cron { cron, zone: Tz::Named(zone), last_weekday } => {
                next_cron(cron, zone, after_ms, *last_weekday)
            }
        }
    }

    pub fn is_one_time(&self) -> bool {
        matches!(self, Expression::At { .. })
    }
}

/// The next occurrence of `cron` in `zone` after `after_ms` (with `LW` applied).
fn next_cron<Z: TimeZone>(cron: &Cron, zone: &Z, after_ms: i64, last_weekday: bool) -> Option<i64> {
    let mut after = zone.timestamp_millis_opt(after_ms).single()?;
    loop {
        let next = cron.find_next_occurrence(&after, false).ok()?;
        let day = next.date_naive();
        let wanted = last_weekday_of(day.year(), day.month());
        if !last_weekday || day == wanted {
            return Some(next.timestamp_millis());
        }
        // Skip to the month's last weekday, or the next month's.
        let target = if day < wanted {
            wanted
        } else {
            let (year, month) =
                if day.month() == 12 { (day.year() + 1, 1) } else { (day.year(), day.month() + 1) };
            last_weekday_of(year, month)
        };
        let midnight = zone.from_local_datetime(&target.and_hms_opt(0, 0, 0)?).earliest()?;
        after = midnight - chrono::Duration::milliseconds(1);
    }
}

fn parse_rate(inner: &str) -> Result<Expression, String> {
    let mut parts = inner.split_whitespace();
    let (Some(value), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("a rate is rate(value unit)".into());
    };
    let value: i64 = value.parse().map_err(|_| format!("{value} is not a positive whole number"))?;
    if value <= 0 {
        return Err("the rate's value must be positive".into());
    }
    let unit_ms = match unit {
        "minute" | "minutes" => 60_000,
        "hour" | "hours" => 3_600_000,
        "day" | "days" => 86_400_000,
        other => return Err(format!("{other} is not minute(s), hour(s) or day(s)")),
    };
    // AWS: "If the value is equal to 1, then the unit must be singular", and plural otherwise.
    if (value == 1) == unit.ends_with('s') {
        return Err("the unit is singular for a value of 1 and plural otherwise".into());
    }
    Ok(Expression::Rate { every_ms: value * unit_ms })
}

fn parse_cron(inner: &str, zone: Tz) -> Result<Expression, String> {
    let fields: Vec<&str> = inner.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(
            "a cron expression has six fields: minutes hours day-of-month month day-of-week year".into()
        );
    }
    // AWS: one of day-of-month and day-of-week must be `?`.
    if (fields[2] == "?") == (fields[4] == "?") {
        return Err("exactly one of day-of-month and day-of-week must be ?".into());
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required)
        .alternative_weekdays(true)
        .dom_and_dow(false)
        .build();
    let last_weekday = fields[2] == "LW";
    let day_of_month = if last_weekday { "*" } else { fields[2] };
    let pattern =
        format!("0 {} {} {day_of_month} {} {} {}", fields[0], fields[1], fields[3], fields[4], fields[5]);
    let cron = parser.parse(&pattern).map_err(|e| e.to_string())?;
    Ok(Expression::Cron { cron: Box::new(cron), zone, last_weekday })
}

fn parse_at(inner: &str, zone: Tz) -> Result<Expression, String> {
    let naive = NaiveDateTime::parse_from_str(inner.trim(), "%Y-%m-%dT%H:%M:%S")
        .map_err(|_| format!("{inner} is not yyyy-mm-ddThh:mm:ss"))?;
    let at_ms = match &zone {
        Tz::Utc => local_instant(&Utc, naive),
        Tz::Named(zone) => local_instant(zone, naive),
    }
    .ok_or_else(|| format!("{inner} does not exist in {zone}"))?;
    Ok(Expression::At { at_ms })
}

/// The instant a local time names; one the clocks skip (daylight saving) runs right after the gap.
fn local_instant<Z: TimeZone>(zone: &Z, naive: NaiveDateTime) -> Option<i64> {
    let at = match zone.from_local_datetime(&naive) {
        chrono::LocalResult::Single(at) | chrono::LocalResult::Ambiguous(at, _) => at,
        chrono::LocalResult::None => {
            zone.from_local_datetime(&(naive + chrono::Duration::hours(1))).earliest()?
        }
    };
    Some(at.timestamp_millis())
}

/// The last Monday-to-Friday day of a month.
fn last_weekday_of(year: i32, month: u32) -> NaiveDate {
    let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    let mut day =
        NaiveDate::from_ymd_opt(next_year, next_month, 1).unwrap_or_default().pred_opt().unwrap_or_default();
    while matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
        day = day.pred_opt().unwrap_or_default();
    }
    day
}

/// An IANA time zone name as Scheduler takes it (`UTC` when none is given), read from the host's
/// tz database.
pub fn zone(name: Option<&str>) -> Result<Tz, String> {
    let name = match name {
        None | Some("") | Some("UTC") | Some("Etc/UTC") => return Ok(Tz::UTC),
        Some(name) => name,
    };
    // A name, not a path: letters, digits, `_+-` and `/` between parts.
    let plain = name.split('/').all(|part| {
        !part.is_empty()
            && part != ".."
            && part.chars().all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c))
    });
    if !plain {
        return Err(format!("{name} is not a time zone"));
    }
    tzfile::ArcTz::named(name)
        .map(Tz::Named)
        .map_err(|_| format!("{name} is not a time zone (none such in /usr/share/zoneinfo)"))
}

/// `2026-12-06T10:00:00Z`, as EventBridge events carry times.
pub fn iso_seconds(ms: i64) -> String {
    let at: DateTime<Utc> = Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text).unwrap().timestamp_millis()
    }

    fn next(expression: &str, after: &str) -> String {
        let parsed = Expression::parse(expression, Tz::UTC, true).unwrap();
        iso_seconds(parsed.next_after(ms(after), ms(after)).unwrap())
    }

    #[test]
    fn aws_documented_cron_examples() {
        // From the EventBridge schedule expression documentation.
        assert_eq!(next("cron(0 10 * * ? *)", "2026-12-06T11:00:00Z"), "2026-12-07T10:00:00Z");
        assert_eq!(next("cron(15 12 * * ? *)", "2026-12-06T11:00:00Z"), "2026-12-06T12:15:00Z");
        // 6 PM Monday to Friday: 2026-12-05 is a Saturday.
        assert_eq!(next("cron(0 18 ? * MON-FRI *)", "2026-12-05T19:00:00Z"), "2026-12-07T18:00:00Z");
        assert_eq!(next("cron(0 8 1 * ? *)", "2026-12-06T00:00:00Z"), "2027-01-01T08:00:00Z");
        assert_eq!(next("cron(0/15 * * * ? *)", "2026-12-06T10:07:00Z"), "2026-12-06T10:15:00Z");
        assert_eq!(next("cron(0/10 * ? * MON-FRI *)", "2026-12-06T10:07:00Z"), "2026-12-07T00:00:00Z");
        assert_eq!(next("cron(0/5 8-17 ? * MON-FRI *)", "2026-12-07T17:56:00Z"), "2026-12-08T08:00:00Z");
        assert_eq!(next("cron(0 9 ? * 2#1 *)", "2026-12-08T00:00:00Z"), "2027-01-04T09:00:00Z");
    }

    #[test]
    fn last_weekday_nth_and_year() {
        assert_eq!(next("cron(0 0 L * ? *)", "2027-02-01T00:00:00Z"), "2027-02-28T00:00:00Z");
        assert_eq!(next("cron(0 0 LW * ? *)", "2027-07-01T00:00:00Z"), "2027-07-30T00:00:00Z");
        assert_eq!(next("cron(0 0 15W * ? *)", "2027-05-01T00:00:00Z"), "2027-05-14T00:00:00Z");
        assert_eq!(next("cron(0 0 ? * 6L *)", "2026-12-01T00:00:00Z"), "2026-12-25T00:00:00Z");
        assert_eq!(next("cron(30 6 1 JAN ? 2029)", "2026-12-06T00:00:00Z"), "2029-01-01T06:30:00Z");
        assert_eq!(next("cron(0 12 ? * SUN,SAT *)", "2026-12-07T00:00:00Z"), "2026-12-12T12:00:00Z");
        let past = Expression::parse("cron(0 0 1 1 ? 2020)", Tz::UTC, false).unwrap();
        assert_eq!(past.next_after(ms("2026-01-01T00:00:00Z"), 0), None);
    }

    #[test]
    fn invalid_expressions_are_refused() {
        for bad in [
            "cron(0 10 * * * *)",
            "cron(0 10 ? * ? *)",
            "cron(0 10 * *)",
            "cron(61 10 * * ? *)",
            "rate(0 minutes)",
            "rate(1 minutes)",
            "rate(5 minute)",
            "rate(5 weeks)",
            "rate(five minutes)",
            "at(2026-12-06T10:00:00)",
            "every day",
        ] {
            assert!(Expression::parse(bad, Tz::UTC, false).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn rates_count_from_the_anchor() {
        let rate = Expression::parse("rate(5 minutes)", Tz::UTC, false).unwrap();
        let anchor = ms("2026-12-06T10:02:00Z");
        assert_eq!(iso_seconds(rate.next_after(anchor, anchor).unwrap()), "2026-12-06T10:07:00Z");
        let later = ms("2026-12-06T10:13:00Z");
        assert_eq!(iso_seconds(rate.next_after(later, anchor).unwrap()), "2026-12-06T10:17:00Z");
    }

    #[test]
    fn time_zones_and_daylight_saving() {
        let zone = zone(Some("America/New_York")).unwrap();
        let cron = Expression::parse("cron(0 9 * * ? *)", zone.clone(), false).unwrap();
        // 9:00 in New York is 14:00 UTC in winter and 13:00 UTC in summer.
        assert_eq!(
            iso_seconds(cron.next_after(ms("2026-12-06T00:00:00Z"), 0).unwrap()),
            "2026-12-06T14:00:00Z"
        );
        assert_eq!(
            iso_seconds(cron.next_after(ms("2027-07-01T00:00:00Z"), 0).unwrap()),
            "2027-07-01T13:00:00Z"
        );
        // 2:30 does not exist on 2027-03-14 in New York: at() runs after the gap.
        let at = Expression::parse("at(2027-03-14T02:30:00)", zone, true).unwrap();
        assert_eq!(iso_seconds(at.next_after(0, 0).unwrap()), "2027-03-14T07:30:00Z");
        assert!(super::zone(Some("Mars/Olympus")).is_err());
    }
}
