//! Auto Scaling scheduled actions: `PutScheduledUpdateGroupAction` (once at `StartTime`, or on a
//! `Recurrence` cron in UTC between `StartTime` and `EndTime`), `DescribeScheduledActions`,
//! `DeleteScheduledAction`. They fire on nimbus's clock (checked each minute of it, so a virtual
//! clock moved forward fires what fell due, once), change the group's bounds and bring it to its
//! new desired capacity with AWS's cause wording.

use nimbus_api::AwsError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::query::Input;
use crate::Ec2;

/// How far back a check looks for a missed recurrence (a clock jump): a week of minutes.
const LOOKBACK_MINUTES: i64 = 7 * 24 * 60;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scheduled {
    pub group: String,
    pub name: String,
    pub region: String,
    pub arn: String,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub recurrence: Option<String>,
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub desired: Option<u32>,
    /// The last time checked (ms): a recurrence fires for minutes after it.
    pub checked_ms: i64,
}

/// A scheduled action's document id: its group's (see `asg::group_key`) and its name.
pub(crate) fn key(region: &str, group: &str, name: &str) -> String {
    format!("{}/{name}", crate::asg::group_key(region, group))
}

/// A five-field cron (`minute hour day-of-month month day-of-week`, UTC): `*`, numbers,
/// `a-b` ranges, `,` lists and `/n` steps.
pub fn cron_matches(expression: &str, minute_ms: i64) -> Option<bool> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if fields.len() != 5 {
        return None;
    }
    let at = time::OffsetDateTime::from_unix_timestamp(minute_ms.div_euclid(1000)).ok()?;
    let values = [
        (at.minute() as u32, 0, 59),
        (at.hour() as u32, 0, 23),
        (at.day() as u32, 1, 31),
        (at.month() as u32, 1, 12),
        // Day of week: 0-7, both 0 and 7 Sunday.
        (at.weekday().number_days_from_sunday() as u32, 0, 7),
    ];
    let mut all = true;
    for (field, (value, low, high)) in fields.iter().zip(values) {
        let sunday = high == 7 && value == 0 && field_matches(field, 7, low, high)?;
        all &= field_matches(field, value, low, high)? || sunday;
    }
    Some(all)
}

fn field_matches(field: &str, value: u32, low: u32, high: u32) -> Option<bool> {
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, step.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (low, high),
            r => match r.split_once('-') {
                Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                None => {
                    let n: u32 = r.parse().ok()?;
                    (n, if step > 1 { high } else { n })
                }
            },
        };
        if from < low || to > high || from > to {
            return None;
        }
        if value >= from && value <= to && (value - from).is_multiple_of(step) {
            return Some(true);
        }
    }
    Some(false)
}

impl Ec2 {
    pub(crate) fn put_scheduled(&self, region: &str, input: &Value) -> Result<(), AwsError> {
        let group = input.required("AutoScalingGroupName")?.to_owned();
        let name = input.required("ScheduledActionName")?.to_owned();
        if self.group(region, &group)?.is_none() {
            return Err(AwsError::new(400, "ValidationError", "AutoScalingGroup name not found - null"));
        }
        let time_of = |field: &str| -> Result<Option<i64>, AwsError> {
            input
                .str(field)
                .map(|t| {
                    crate::parse_time(t)
                        .ok_or_else(|| AwsError::new(400, "ValidationError", format!("Invalid {field}: {t}")))
                })
                .transpose()
        };
        let start_ms = time_of("StartTime")?.or(time_of("Time")?);
        let end_ms = time_of("EndTime")?;
        let recurrence = input.str("Recurrence").map(str::to_owned);
        if let Some(cron) = &recurrence {
            if cron_matches(cron, 0).is_none() {
                return Err(AwsError::new(
                    400,
                    "ValidationError",
                    format!("Given recurrence string {cron} is invalid"),
                ));
            }
        }
        if recurrence.is_none() && start_ms.is_none() {
            return Err(AwsError::new(
                400,
                "ValidationError",
                "Either StartTime or Recurrence must be specified.",
            ));
        }
        let uint = |field: &str| crate::autoscaling::uint(input, field);
        let (min, max, desired) = (uint("MinSize")?, uint("MaxSize")?, uint("DesiredCapacity")?);
        if min.is_none() && max.is_none() && desired.is_none() {
            return Err(AwsError::new(
                400,
                "ValidationError",
                "At least one of MinSize, MaxSize or DesiredCapacity must be specified.",
            ));
        }
        let scheduled = Scheduled {
            arn: format!(
                "arn:aws:autoscaling:{region}:{}:scheduledUpdateGroupAction:{}:autoScalingGroupName/{group}:scheduledActionName/{name}",
                self.identity.account,
                uuid::Uuid::new_v4()
            ),
            group: group.clone(),
            name: name.clone(),
            region: region.to_owned(),
            start_ms,
            end_ms,
            recurrence,
            min,
            max,
            desired,
            checked_ms: self.now(),
        };
        self.store.put("scheduled-action", &key(region, &group, &name), region, &scheduled, self.now())
    }

    pub(crate) fn describe_scheduled(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let group = input.str("AutoScalingGroupName");
        let names = input.strings("ScheduledActionNames");
        let set: Vec<Value> = self
            .store
            .all::<Scheduled>("scheduled-action", Some(region))?
            .into_iter()
            .filter(|s| group.is_none_or(|g| g == s.group) && (names.is_empty() || names.contains(&s.name)))
            .map(|s| {
                json!({
                    "AutoScalingGroupName": s.group, "ScheduledActionName": s.name, "ScheduledActionARN": s.arn,
                    "StartTime": s.start_ms.map(crate::iso8601), "Time": s.start_ms.map(crate::iso8601),
                    "EndTime": s.end_ms.map(crate::iso8601), "Recurrence": s.recurrence, "MinSize": s.min,
                    "MaxSize": s.max, "DesiredCapacity": s.desired, "TimeZone": s.recurrence.as_ref().map(|_| "UTC"),
                })
            })
            .collect();
        Ok(json!({ "ScheduledUpdateGroupActions": set }))
    }

    pub(crate) fn delete_scheduled(&self, region: &str, input: &Value) -> Result<(), AwsError> {
        let group = input.required("AutoScalingGroupName")?;
        let name = input.required("ScheduledActionName")?;
        if !self.store.delete("scheduled-action", &key(region, group, name))? {
            return Err(AwsError::new(
                400,
                "ValidationError",
                format!("Scheduled action name not found - {name}"),
            ));
        }
        Ok(())
    }

    /// Fires the scheduled actions that fell due since they were last checked.
    pub(crate) fn run_schedules(&self) {
        let Ok(actions) = self.store.all::<Scheduled>("scheduled-action", None) else { return };
        let now = self.now();
        for mut action in actions {
            let due = match &action.recurrence {
                None => action.start_ms.is_some_and(|at| at <= now),
                Some(cron) => {
                    let from = action.checked_ms.max(now - LOOKBACK_MINUTES * 60_000);
                    let first = from - from.rem_euclid(60_000) + 60_000;
                    let window = action.start_ms.unwrap_or(i64::MIN)..=action.end_ms.unwrap_or(i64::MAX);
                    (first..=now)
                        .step_by(60_000)
                        .any(|minute| window.contains(&minute) && cron_matches(cron, minute) == Some(true))
                }
            };
            let id = key(&action.region, &action.group, &action.name);
            // A one-time action goes once it ran (as on AWS); a recurrence until its end time.
            let over = action.recurrence.is_none() || action.end_ms.is_some_and(|end| end <= now);
            if over && (due || action.recurrence.is_some()) {
                let _ = self.store.delete("scheduled-action", &id);
            } else if action.recurrence.is_some() {
                action.checked_ms = now;
                let _ = self.store.put("scheduled-action", &id, &action.region, &action, now);
            }
            if due {
                if let Err(error) = self.apply_scheduled(&action) {
                    eprintln!("nimbus: autoscaling scheduled action {}: {}", action.name, error.message);
                }
            }
        }
    }

    fn apply_scheduled(&self, action: &Scheduled) -> Result<(), AwsError> {
        let Some(mut group) = self.group(&action.region, &action.group)? else { return Ok(()) };
        let before = group.desired;
        group.min = action.min.unwrap_or(group.min);
        group.max = action.max.unwrap_or(group.max).max(group.min);
        group.desired = action.desired.unwrap_or(group.desired).clamp(group.min, group.max);
        self.save_group(&group)?;
        let cause = format!(
            "a scheduled action update of AutoScalingGroup constraints to min: {}, max: {}, desired: {} changing the desired capacity from {before} to {}.",
            group.min, group.max, group.desired, group.desired
        );
        self.reconcile(&group.region, &group.name, (before != group.desired).then_some(cause))
    }
}

#[cfg(test)]
mod tests {
    use super::cron_matches;

    #[test]
    fn cron_fields_follow_unix_cron() {
        // 2026-12-06T09:30:00Z is a Sunday.
        let at = 1_796_549_400_000;
        assert_eq!(cron_matches("30 9 * * *", at), Some(true));
        assert_eq!(cron_matches("*/15 9-17 * * 0", at), Some(true));
        assert_eq!(cron_matches("0 9 * * *", at), Some(false));
        assert_eq!(cron_matches("30 9 * * 1-5", at), Some(false));
        assert_eq!(cron_matches("30 9 6 12 7", at), Some(true));
        assert_eq!(cron_matches("61 * * * *", at), None);
        assert_eq!(cron_matches("* * *", at), None);
    }
}
