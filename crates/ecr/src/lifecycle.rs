//! Lifecycle policies enforced: a sweep on nimbus's clock (virtual in tests) expires the images
//! a repository's rules select, and garbage collection then removes blobs nothing else uses.
//!
//! As in ECR: rules apply in `rulePriority` order, lowest first; an image belongs to the first
//! rule whose selection (`tagStatus` tagged/untagged/any, every `tagPrefixList` prefix or
//! `tagPatternList` pattern matching one of its tags) takes it, and only that rule may expire
//! it; `imageCountMoreThan` keeps the newest N of a rule's images, `sinceImagePushed` expires
//! those pushed more than N days ago. The manifests of a multi-platform index are never
//! selected on their own: they go with their index. `StartLifecyclePolicyPreview` evaluates a
//! policy at once and `GetLifecyclePolicyPreview` answers `COMPLETE` with what it would expire.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use nimbus_api::clock::Clock;
use nimbus_api::AwsError;
use nimbus_images::ImageInfo;
use serde_json::{json, Value};

use crate::api::Input;
use crate::errors::from_store;
use crate::Ecr;

/// How often the sweep looks when the clock does not jump.
const PERIOD: Duration = Duration::from_secs(60);
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    pub priority: i64,
    tag_status: String,
    prefixes: Vec<String>,
    patterns: Vec<String>,
    by_count: bool,
    number: i64,
}

fn policy_error(why: impl std::fmt::Display) -> AwsError {
    AwsError::new(
        400,
        "InvalidParameterException",
        format!("Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: {why}'"),
    )
}

/// A policy's rules, checked as ECR checks them, in priority order.
pub(crate) fn parse(text: &str) -> Result<Vec<Rule>, AwsError> {
    let policy: Value = serde_json::from_str(text)
        .map_err(|_| policy_error("Could not map policyString into LifecyclePolicy."))?;
    let Some(items) = policy.get("rules").and_then(Value::as_array) else {
        return Err(policy_error("object has missing required properties ([\"rules\"])"));
    };
    if items.is_empty() {
        return Err(policy_error(
            "array is too short: must have at least 1 elements but instance has 0 elements",
        ));
    }
    let mut rules = Vec::new();
    for item in items {
        let priority = item["rulePriority"]
            .as_i64()
            .filter(|p| *p >= 1)
            .ok_or_else(|| policy_error("rulePriority must be an integer of at least 1"))?;
        let selection = &item["selection"];
        let tag_status = selection["tagStatus"].as_str().unwrap_or_default().to_owned();
        if !["tagged", "untagged", "any"].contains(&tag_status.as_str()) {
            return Err(policy_error("instance value (tagStatus) not found in enum (possible values: [\"tagged\",\"untagged\",\"any\"])"));
        }
        let strings = |key: &str| -> Vec<String> {
            selection[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        let (prefixes, patterns) = (strings("tagPrefixList"), strings("tagPatternList"));
        match tag_status.as_str() {
            "tagged" if prefixes.is_empty() && patterns.is_empty() => {
                return Err(policy_error(
                    "tagPrefixList or tagPatternList is required when tagStatus is tagged",
                ))
            }
            "tagged" if !prefixes.is_empty() && !patterns.is_empty() => {
                return Err(policy_error("tagPrefixList and tagPatternList cannot both be given"))
            }
            "untagged" | "any" if !prefixes.is_empty() || !patterns.is_empty() => {
                return Err(policy_error(format!(
                    "tagPrefixList and tagPatternList are not allowed when tagStatus is {tag_status}"
                )))
            }
            _ => {}
        }
        if patterns.iter().any(|p| p.matches('*').count() > 4) {
            return Err(policy_error("a tagPatternList pattern may hold at most 4 wildcards"));
        }
        let by_count = match selection["countType"].as_str() {
            Some("imageCountMoreThan") if selection.get("countUnit").is_none() => true,
            Some("imageCountMoreThan") => {
                return Err(policy_error("countUnit is not allowed with imageCountMoreThan"))
            }
            Some("sinceImagePushed") if selection["countUnit"] == "days" => false,
            Some("sinceImagePushed") => {
                return Err(policy_error("countUnit must be days with sinceImagePushed"))
            }
            Some(other) => return Err(policy_error(format!("nimbus does not implement countType {other}"))),
            None => return Err(policy_error("object has missing required properties ([\"countType\"])")),
        };
        let number = selection["countNumber"]
            .as_i64()
            .filter(|n| *n >= 1)
            .ok_or_else(|| policy_error("countNumber must be an integer of at least 1"))?;
        match item["action"]["type"].as_str() {
            Some("expire") => {}
            Some(other) => {
                return Err(policy_error(format!("nimbus does not implement the action type {other}")))
            }
            None => return Err(policy_error("object has missing required properties ([\"action\"])")),
        }
        if selection.get("storageClass").is_some_and(|c| c != "standard") {
            return Err(policy_error("nimbus does not implement storageClass archive"));
        }
        rules.push(Rule { priority, tag_status, prefixes, patterns, by_count, number });
    }
    rules.sort_by_key(|r| r.priority);
    if rules.windows(2).any(|pair| pair[0].priority == pair[1].priority) {
        return Err(policy_error("rulePriority values must be unique"));
    }
    if rules.iter().rev().skip(1).any(|r| r.tag_status == "any") {
        return Err(policy_error("a rule with tagStatus any must have the highest rulePriority"));
    }
    Ok(rules)
}

/// `*` matches any run of characters.
fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

fn selects(rule: &Rule, image: &ImageInfo) -> bool {
    match rule.tag_status.as_str() {
        "untagged" => image.tags.is_empty(),
        "any" => true,
        _ if image.tags.is_empty() => false,
        _ if !rule.prefixes.is_empty() => {
            rule.prefixes.iter().all(|prefix| image.tags.iter().any(|tag| tag.starts_with(prefix.as_str())))
        }
        _ => rule.patterns.iter().all(|pattern| image.tags.iter().any(|tag| wildcard(pattern, tag))),
    }
}

/// The images `rules` expire at `now_ms`, each with the priority of the rule that expires it.
/// `images` are a repository's, newest first; `children` are manifests of an index (never
/// selected on their own).
pub(crate) fn evaluate<'a>(
    rules: &[Rule],
    images: &'a [ImageInfo],
    children: &HashSet<String>,
    now_ms: i64,
) -> Vec<(&'a ImageInfo, i64)> {
    let mut taken: HashSet<&str> = HashSet::new();
    let mut expired = Vec::new();
    for rule in rules {
        let mut mine: Vec<&ImageInfo> = images
            .iter()
            .filter(|i| {
                !children.contains(&i.digest) && !taken.contains(i.digest.as_str()) && selects(rule, i)
            })
            .collect();
        mine.sort_by(|a, b| b.pushed_ms.cmp(&a.pushed_ms).then_with(|| a.digest.cmp(&b.digest)));
        for (rank, image) in mine.iter().enumerate() {
            taken.insert(&image.digest);
            let expire = if rule.by_count {
                rank as i64 >= rule.number
            } else {
                now_ms - image.pushed_ms > rule.number * DAY_MS
            };
            if expire {
                expired.push((*image, rule.priority));
            }
        }
    }
    expired
}

impl Ecr {
    /// What a policy would expire in a repository now.
    fn expiring(
        &self,
        region: &str,
        name: &str,
        rules: &[Rule],
        now_ms: i64,
    ) -> Result<Vec<(ImageInfo, i64)>, AwsError> {
        let images = self.images.images(region, name).map_err(from_store)?;
        let children = self.images.index_children(region, name).map_err(from_store)?;
        Ok(evaluate(rules, &images, &children, now_ms).into_iter().map(|(i, p)| (i.clone(), p)).collect())
    }

    /// One pass over every repository with a policy; returns how many images expired.
    pub fn apply_lifecycle(&self, now_ms: i64) -> usize {
        let mut count = 0;
        let repositories = match self.images.all_repositories() {
            Ok(repositories) => repositories,
            Err(error) => {
                eprintln!("nimbus: ecr lifecycle: cannot list repositories: {error}");
                return 0;
            }
        };
        for repository in repositories {
            let Some(text) = repository.config.get("lifecyclePolicy").and_then(Value::as_str) else {
                continue;
            };
            let Ok(rules) = parse(text) else { continue };
            let (region, name) = (&repository.region, &repository.name);
            let Ok(expiring) = self.expiring(region, name, &rules, now_ms) else { continue };
            for (image, _) in expiring {
                // Another node's sweep may have expired it first: nothing to do then.
                if self.images.delete_image(region, name, &image.digest).is_ok() {
                    count += 1;
                }
            }
        }
        if count > 0 {
            self.collect_later();
        }
        count
    }

    pub(crate) fn start_lifecycle_policy_preview(
        &self,
        region: &str,
        input: &Input,
    ) -> Result<Value, AwsError> {
        let name = input.repository_name()?;
        let text = match input.str("lifecyclePolicyText") {
            Some(text) => text.to_owned(),
            None => {
                let repository = self.images.repository(region, name).map_err(from_store)?;
                repository.config.get("lifecyclePolicy").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| {
                    AwsError::new(
                        400,
                        "LifecyclePolicyNotFoundException",
                        format!(
                            "Lifecycle policy does not exist for the repository with name '{name}' in the registry with id '{}'",
                            self.identity.account
                        ),
                    )
                })?
            }
        };
        let rules = parse(&text)?;
        let expiring = self.expiring(region, name, &rules, self.clock.now_ms())?;
        let results: Vec<Value> = expiring
            .iter()
            .map(|(image, priority)| {
                json!({
                    "imageTags": image.tags,
                    "imageDigest": image.digest,
                    "imagePushedAt": image.pushed_ms as f64 / 1000.0,
                    "action": {"type": "EXPIRE"},
                    "appliedRulePriority": priority,
                })
            })
            .collect();
        let preview = json!({"lifecyclePolicyText": text, "previewResults": results});
        self.images
            .update_repository(region, name, |config| {
                config["lifecyclePreview"] = preview;
                Ok(())
            })
            .map_err(from_store)?;
        Ok(json!({
            "registryId": self.identity.account,
            "repositoryName": name,
            "lifecyclePolicyText": text,
            "status": "IN_PROGRESS",
        }))
    }

    pub(crate) fn get_lifecycle_policy_preview(
        &self,
        region: &str,
        input: &Input,
    ) -> Result<Value, AwsError> {
        let name = input.repository_name()?;
        let repository = self.images.repository(region, name).map_err(from_store)?;
        let Some(preview) = repository.config.get("lifecyclePreview") else {
            return Err(AwsError::new(
                400,
                "LifecyclePolicyPreviewNotFoundException",
                format!(
                    "There is no dry run for the repository with name '{name}' in the registry with id '{}'",
                    self.identity.account
                ),
            ));
        };
        let results = preview["previewResults"].as_array().cloned().unwrap_or_default();
        Ok(json!({
            "registryId": self.identity.account,
            "repositoryName": name,
            "lifecyclePolicyText": preview["lifecyclePolicyText"],
            "status": "COMPLETE",
            "previewResults": results,
            "summary": {"expiringImageTotalCount": results.len()},
        }))
    }
}

/// Runs the sweep every [`PERIOD`] and whenever the clock jumps. Several nodes may sweep at
/// once: expiring is idempotent.
pub fn run(ecr: Arc<Ecr>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
    let clock: Arc<dyn Clock> = ecr.clock.clone();
    handle.spawn(async move {
        let mut jumps = clock.jumps();
        loop {
            if !nimbus_api::clock::pause(&mut jumps, PERIOD).await {
                return;
            }
            let (ecr, now) = (ecr.clone(), clock.now_ms());
            let _ = tokio::task::spawn_blocking(move || ecr.apply_lifecycle(now)).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(digest: &str, tags: &[&str], pushed_ms: i64) -> ImageInfo {
        ImageInfo {
            digest: digest.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            media_type: String::new(),
            size: 0,
            pushed_ms,
            config_digest: None,
        }
    }

    #[test]
    fn rules_take_images_in_priority_order() {
        let rules = parse(
            r#"{"rules": [
              {"rulePriority": 9, "selection": {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30}, "action": {"type": "expire"}},
              {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
              {"rulePriority": 2, "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}
            ]}"#,
        )
        .unwrap();
        assert_eq!(rules.iter().map(|r| r.priority).collect::<Vec<_>>(), [1, 2, 9]);
        let now = 100 * DAY_MS;
        let images = [
            image("p2", &["prod-2"], now - DAY_MS),
            image("u2", &[], now - 2 * DAY_MS),
            image("p1", &["prod-1"], now - 90 * DAY_MS),
            image("u1", &[], now - 91 * DAY_MS),
            image("old", &["dev"], now - 31 * DAY_MS),
            image("new", &["dev2"], now - 29 * DAY_MS),
            image("child", &[], now - 99 * DAY_MS),
        ];
        let children = HashSet::from(["child".to_owned()]);
        let expired: Vec<(&str, i64)> = evaluate(&rules, &images, &children, now)
            .into_iter()
            .map(|(i, p)| (i.digest.as_str(), p))
            .collect();
        assert_eq!(expired, [("p1", 1), ("u1", 2), ("old", 9)], "p1 is old but rule 1 owns it");
    }

    #[test]
    fn patterns_prefixes_and_validation() {
        assert!(wildcard("prod*", "prod-1") && wildcard("*-rc*", "v1-rc2") && !wildcard("prod*", "dev"));
        assert!(wildcard("a*b*c", "aXbYc") && !wildcard("a*b*c", "acb") && wildcard("exact", "exact"));
        let rule = |selection: &str| {
            parse(&format!(
                r#"{{"rules": [{{"rulePriority": 1, "selection": {selection}, "action": {{"type": "expire"}}}}]}}"#
            ))
        };
        let both = rule(r#"{"tagStatus": "tagged", "tagPrefixList": ["a", "b"], "countType": "imageCountMoreThan", "countNumber": 1}"#).unwrap();
        assert!(
            selects(&both[0], &image("x", &["a1", "b1"], 0)) && !selects(&both[0], &image("x", &["a1"], 0))
        );
        assert!(
            rule(r#"{"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1}"#).is_err()
        );
        assert!(
            rule(r#"{"tagStatus": "untagged", "countType": "sinceImagePushed", "countNumber": 1}"#).is_err()
        );
        assert!(rule(r#"{"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 0}"#).is_err());
        let message = rule(r#"{"tagStatus": "all", "countType": "imageCountMoreThan", "countNumber": 1}"#)
            .unwrap_err()
            .message;
        assert!(message.starts_with("Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: "));
    }
}
