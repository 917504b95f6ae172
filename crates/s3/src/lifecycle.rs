//! Lifecycle expiration: a sweep on nimbus's clock deletes current objects whose `Expiration`
//! (`Days` after their last modification, or a `Date`) has come, for rules that are `Enabled`
//! and whose filter (prefix, tags, size bounds) matches. In a versioned bucket expiring adds a
//! delete marker, as in AWS.

use std::sync::Arc;
use std::time::Duration;

use nimbus_api::clock::Clock;

use crate::context;
use crate::store::{Listed, ObjectRow, Pairs};
use crate::xml::{self, Node};
use crate::Inner;

/// How often the sweep looks when the clock does not jump.
const PERIOD: Duration = Duration::from_secs(30);

struct Rule {
    prefix: String,
    tags: Pairs,
    larger_than: Option<u64>,
    smaller_than: Option<u64>,
    days: Option<i64>,
    date_ms: Option<i64>,
    /// `NoncurrentVersionExpiration.NoncurrentDays`.
    noncurrent_days: Option<i64>,
    /// `AbortIncompleteMultipartUpload.DaysAfterInitiation`.
    abort_days: Option<i64>,
    /// `Expiration.ExpiredObjectDeleteMarker`.
    expired_markers: bool,
}

fn rules(document: &str) -> Vec<Rule> {
    let Ok(root) = xml::parse(document.as_bytes()) else { return Vec::new() };
    root.children("Rule")
        .filter(|r| r.child_text("Status") == Some("Enabled"))
        .map(|rule| {
            let expiration = rule.child("Expiration");
            let filter = rule.child("Filter");
            let and = filter.and_then(|f| f.child("And"));
            let scope: Option<&Node> = and.or(filter);
            let prefix = rule
                .child_text("Prefix")
                .or_else(|| scope.and_then(|s| s.child_text("Prefix")))
                .unwrap_or_default()
                .to_owned();
            let tags = scope
                .map(|s| {
                    s.children("Tag")
                        .map(|t| {
                            (
                                t.child_text("Key").unwrap_or_default().to_owned(),
                                t.child_text("Value").unwrap_or_default().to_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let number = |name: &str| scope.and_then(|s| s.child_text(name)).and_then(|v| v.parse().ok());
            let days_of = |parent: &str, name: &str| {
                rule.child(parent).and_then(|p| p.child_text(name)).and_then(|d| d.parse().ok())
            };
            Rule {
                prefix,
                tags,
                larger_than: number("ObjectSizeGreaterThan"),
                smaller_than: number("ObjectSizeLessThan"),
                days: expiration.and_then(|e| e.child_text("Days")).and_then(|d| d.parse().ok()),
                date_ms: expiration.and_then(|e| e.child_text("Date")).and_then(context::parse_iso8601),
                noncurrent_days: days_of("NoncurrentVersionExpiration", "NoncurrentDays"),
                abort_days: days_of("AbortIncompleteMultipartUpload", "DaysAfterInitiation"),
                expired_markers: expiration.and_then(|e| e.child_text("ExpiredObjectDeleteMarker"))
                    == Some("true"),
            }
        })
        .collect()
}

fn expired(rule: &Rule, object: &ObjectRow, now_ms: i64) -> bool {
    let due = match (rule.days, rule.date_ms) {
        (Some(days), _) => object.modified_ms + days * 86_400_000 <= now_ms,
        (None, Some(date)) => date <= now_ms,
        (None, None) => false,
    };
    due && object.key.starts_with(&rule.prefix)
        && rule.tags.iter().all(|tag| object.tags.contains(tag))
        && rule.larger_than.is_none_or(|n| object.size > n)
        && rule.smaller_than.is_none_or(|n| object.size < n)
}

/// Incomplete multipart uploads older than the rule allows are aborted.
fn abort_uploads(s3: &Inner, bucket: &str, rule: &Rule, now_ms: i64) {
    let Some(days) = rule.abort_days else { return };
    let Ok(uploads) = s3.db.uploads(bucket) else { return };
    for upload in uploads.iter().filter(|u| u.key.starts_with(&rule.prefix)) {
        if upload.initiated_ms + days * DAY_MS <= now_ms {
            if let Ok(Some(files)) = s3.db.abort_upload(&upload.id) {
                files.iter().for_each(|f| s3.files.remove(f));
            }
        }
    }
}

/// Noncurrent versions past `NoncurrentDays` (counted from when a newer version replaced them)
/// and delete markers left as a key's only version are removed.
fn expire_versions(s3: &Inner, bucket: &str, rule: &Rule, now_ms: i64) {
    if rule.noncurrent_days.is_none() && !rule.expired_markers {
        return;
    }
    let mut doomed = Vec::new();
    // One key's versions, newest first.
    let finish = |group: &[Listed], doomed: &mut Vec<(String, String)>| {
        if let Some(days) = rule.noncurrent_days {
            for pair in group.windows(2) {
                if !pair[1].marker && pair[0].row.modified_ms + days * DAY_MS <= now_ms {
                    doomed.push((pair[1].row.key.clone(), pair[1].row.version_id.clone()));
                }
            }
        }
        if let [only] = group {
            if rule.expired_markers && only.marker {
                doomed.push((only.row.key.clone(), only.row.version_id.clone()));
            }
        }
    };
    let (mut cursor, mut ord) = (String::new(), i64::MIN);
    let mut group: Vec<Listed> = Vec::new();
    'batches: loop {
        let Ok(batch) = s3.db.versions_after(bucket, &cursor, ord, &rule.prefix, 1000) else { return };
        if batch.is_empty() {
            break;
        }
        for listed in batch {
            cursor.clone_from(&listed.row.key);
            ord = listed.ord;
            if !listed.row.key.starts_with(&rule.prefix) {
                break 'batches;
            }
            if group.first().is_some_and(|g| g.row.key != listed.row.key) {
                finish(&group, &mut doomed);
                group.clear();
            }
            group.push(listed);
        }
    }
    finish(&group, &mut doomed);
    for (key, version) in doomed {
        let guard = |row: &ObjectRow| crate::settings::check_lock(row, now_ms, false);
        if let Ok(deletion) = s3.db.delete_version(bucket, &key, &version, &guard) {
            deletion.files.iter().for_each(|f| s3.files.remove(f));
        }
    }
}

const DAY_MS: i64 = 86_400_000;

/// One pass over every bucket with a lifecycle configuration.
pub fn sweep(s3: &Inner, now_ms: i64) {
    let Ok(configs) = s3.db.configs_named("lifecycle") else { return };
    for (bucket, document) in configs {
        let rules = rules(&document);
        let Ok(Some(row)) = s3.db.bucket(&bucket) else { continue };
        for rule in &rules {
            abort_uploads(s3, &bucket, rule, now_ms);
            expire_versions(s3, &bucket, rule, now_ms);
            if rule.days.is_none() && rule.date_ms.is_none() {
                continue;
            }
            let mut cursor = String::new();
            while let Ok(batch) = s3.db.objects_after(&bucket, &cursor, &rule.prefix, 500) {
                let Some(last) = batch.last() else { break };
                cursor.clone_from(&last.key);
                for object in batch.iter().filter(|o| expired(rule, o, now_ms)) {
                    let files = match row.versioning.as_deref() {
                        Some(status) => {
                            let marker = if status == "Enabled" {
                                format!("{}", uuid::Uuid::new_v4().simple())
                            } else {
                                "null".to_owned()
                            };
                            s3.db
                                .delete_current(&bucket, &object.key, &marker, now_ms)
                                .map(|d| d.files)
                                .unwrap_or_default()
                        }
                        None => s3
                            .db
                            .delete_object(&bucket, &object.key)
                            .ok()
                            .flatten()
                            .map(|o| vec![o.file])
                            .unwrap_or_default(),
                    };
                    files.iter().for_each(|f| s3.files.remove(f));
                }
                if !batch.last().is_some_and(|o| o.key.starts_with(&rule.prefix)) {
                    break;
                }
            }
        }
    }
}

/// Runs the sweep every [`PERIOD`] and whenever the clock jumps.
pub fn run(s3: Arc<Inner>, clock: Arc<dyn Clock>) {
    tokio::spawn(async move {
        let mut jumps = clock.jumps();
        loop {
            if !nimbus_api::clock::pause(&mut jumps, PERIOD).await {
                return;
            }
            let (s3, now) = (s3.clone(), clock.now_ms());
            let _ = tokio::task::spawn_blocking(move || sweep(&s3, now)).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_prefix_tags_and_age() {
        let doc = "<LifecycleConfiguration><Rule><ID>a</ID><Status>Enabled</Status><Filter><And><Prefix>tmp/</Prefix>\
                   <Tag><Key>t</Key><Value>1</Value></Tag></And></Filter><Expiration><Days>1</Days></Expiration></Rule>\
                   <Rule><Status>Disabled</Status><Filter/><Expiration><Days>1</Days></Expiration></Rule>\
                   </LifecycleConfiguration>";
        let rules = rules(doc);
        assert_eq!(rules.len(), 1);
        let object = |key: &str, tags: Pairs| ObjectRow {
            bucket: "b".into(),
            key: key.into(),
            size: 1,
            etag: String::new(),
            modified_ms: 0,
            headers: vec![],
            metadata: vec![],
            checksum: None,
            parts: 0,
            file: String::new(),
            version_id: "null".into(),
            tags,
            extra: vec![],
        };
        let tagged = vec![("t".to_owned(), "1".to_owned())];
        assert!(expired(&rules[0], &object("tmp/x", tagged.clone()), 86_400_000));
        assert!(!expired(&rules[0], &object("tmp/x", tagged.clone()), 86_399_999));
        assert!(!expired(&rules[0], &object("keep/x", tagged), 86_400_000));
        assert!(!expired(&rules[0], &object("tmp/x", vec![]), 86_400_000));
    }
}
