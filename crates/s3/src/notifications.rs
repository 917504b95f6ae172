//! Bucket notifications: Put/GetBucketNotificationConfiguration (Lambda, SQS and SNS targets,
//! event types, prefix/suffix filters), the `s3:TestEvent` sent to queues and topics on configuration, and
//! delivery of object events through the integrator's [`NotificationSink`].

use std::sync::Arc;

use serde_json::{json, Value};

use crate::context::{self, Ctx, ObjectEvent, Reply};
use crate::error::{S3Error, S3Result};
use crate::events::{self, RecordContext};
use crate::xml::{self, Node, XmlWriter};
use crate::Inner;

/// Where an event goes. The integrator turns a Lambda target into a durable async invoke, a
/// queue target into an SQS message and a topic target into an SNS message (subject "Amazon S3
/// Notification", the event document as its message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationTarget {
    Lambda {
        function_arn: String,
    },
    Queue {
        queue_arn: String,
    },
    Topic {
        topic_arn: String,
    },
    /// The account's default event bus of the bucket's region (`EventBridgeConfiguration`); the
    /// event is EventBridge's "Object Created"/"Object Deleted" event, not a `Records` document.
    EventBridge {
        region: String,
    },
}

/// Delivery of event documents (`{"Records":[…]}` or the test event). Called after the object
/// is durable and the reply is decided; must return quickly (queue, don't invoke).
pub trait NotificationSink: Send + Sync + 'static {
    fn deliver(&self, target: &NotificationTarget, event: Value);

    /// Whether the queue or function exists. A configuration naming one that does not is
    /// refused, as on AWS, unless the request asks to skip destination validation.
    fn exists(&self, target: &NotificationTarget) -> bool;
}

/// The three destination kinds of a configuration: (XML element, ARN element).
const KINDS: [(&str, &str); 3] = [
    ("TopicConfiguration", "Topic"),
    ("QueueConfiguration", "Queue"),
    ("CloudFunctionConfiguration", "CloudFunction"),
];

const EVENTS: [&str; 27] = [
    "s3:ObjectCreated:*",
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Post",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
    "s3:ObjectRemoved:*",
    "s3:ObjectRemoved:Delete",
    "s3:ObjectRemoved:DeleteMarkerCreated",
    "s3:ObjectRestore:*",
    "s3:ObjectRestore:Post",
    "s3:ObjectRestore:Completed",
    "s3:ObjectRestore:Delete",
    "s3:ReducedRedundancyLostObject",
    "s3:Replication:*",
    "s3:Replication:OperationFailedReplication",
    "s3:Replication:OperationNotTracked",
    "s3:Replication:OperationMissedThreshold",
    "s3:Replication:OperationReplicatedAfterThreshold",
    "s3:LifecycleExpiration:*",
    "s3:LifecycleExpiration:Delete",
    "s3:LifecycleExpiration:DeleteMarkerCreated",
    "s3:LifecycleTransition",
    "s3:IntelligentTiering",
    "s3:ObjectTagging:*",
    "s3:ObjectTagging:Put",
    "s3:ObjectTagging:Delete",
    "s3:ObjectAcl:Put",
];

/// One configuration entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    /// Index into [`KINDS`]: 0 topic, 1 queue, 2 function.
    pub kind: usize,
    pub arn: String,
    pub events: Vec<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
}

impl Rule {
    pub fn matches(&self, event: &ObjectEvent) -> bool {
        let named = self.events.iter().any(|pattern| {
            let pattern = pattern.strip_prefix("s3:").unwrap_or(pattern);
            match pattern.strip_suffix('*') {
                Some(family) => event.name.starts_with(family),
                None => event.name == pattern,
            }
        });
        named
            && self.prefix.as_deref().is_none_or(|p| event.key.starts_with(p))
            && self.suffix.as_deref().is_none_or(|s| event.key.ends_with(s))
    }

    pub fn target(&self) -> Option<NotificationTarget> {
        match self.kind {
            0 => Some(NotificationTarget::Topic { topic_arn: self.arn.clone() }),
            1 => Some(NotificationTarget::Queue { queue_arn: self.arn.clone() }),
            2 => Some(NotificationTarget::Lambda { function_arn: self.arn.clone() }),
            _ => None,
        }
    }
}

/// A whole configuration as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub rules: Vec<Rule>,
    pub event_bridge: bool,
}

pub fn parse(body: &[u8]) -> S3Result<Config> {
    let root = xml::parse(body)?;
    if root.name != "NotificationConfiguration" {
        return Err(S3Error::malformed_xml());
    }
    let mut config =
        Config { rules: Vec::new(), event_bridge: root.child("EventBridgeConfiguration").is_some() };
    for (kind, (element, arn_element)) in KINDS.iter().enumerate() {
        for node in root.children(element) {
            config.rules.push(parse_rule(node, kind, arn_element)?);
        }
    }
    Ok(config)
}

fn parse_rule(node: &Node, kind: usize, arn_element: &str) -> S3Result<Rule> {
    let arn = node.child_text(arn_element).filter(|a| !a.is_empty()).ok_or_else(S3Error::malformed_xml)?;
    let service = ["sns", "sqs", "lambda"][kind];
    if !arn.starts_with(&format!("arn:aws:{service}:")) {
        return Err(S3Error::invalid_argument("Unable to validate the following destination configurations")
            .with("ArgumentName", arn)
            .with("ArgumentValue", "The destination ARN is not valid"));
    }
    let events: Vec<String> = node.children("Event").map(|e| e.text.clone()).collect();
    if events.is_empty() {
        return Err(S3Error::malformed_xml());
    }
    if let Some(bad) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        return Err(S3Error::invalid_argument("The event is not supported for notifications")
            .with("ArgumentName", bad.as_str())
            .with("ArgumentValue", bad.as_str()));
    }
    let (mut prefix, mut suffix) = (None, None);
    let rules = node
        .child("Filter")
        .and_then(|f| f.child("S3Key"))
        .into_iter()
        .flat_map(|k| k.children("FilterRule"));
    for rule in rules {
        let name = rule.child_text("Name").unwrap_or_default().to_ascii_lowercase();
        let value = rule.child_text("Value").unwrap_or_default().to_owned();
        let slot = match name.as_str() {
            "prefix" => &mut prefix,
            "suffix" => &mut suffix,
            _ => {
                let message = "filter rule name must be either prefix or suffix";
                return Err(S3Error::invalid_argument(message).with("ArgumentName", "FilterRule.Name"));
            }
        };
        if slot.replace(value).is_some() {
            let message = "Cannot specify more than one prefix rule in a filter.";
            return Err(S3Error::invalid_argument(message).with("ArgumentName", "FilterRule.Name"));
        }
    }
    let id = node.child_text("Id").filter(|i| !i.is_empty()).map(str::to_owned);
    let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    Ok(Rule { id, kind, arn: arn.to_owned(), events, prefix, suffix })
}

pub fn render(config: &Config) -> String {
    let mut xml = XmlWriter::new();
    xml.open("NotificationConfiguration");
    for (kind, (element, arn_element)) in KINDS.iter().enumerate() {
        for rule in config.rules.iter().filter(|r| r.kind == kind) {
            xml.open(element);
            xml.elem("Id", &rule.id);
            xml.elem(arn_element, &rule.arn);
            rule.events.iter().for_each(|e| xml.elem("Event", e));
            if rule.prefix.is_some() || rule.suffix.is_some() {
                xml.open("Filter");
                xml.open("S3Key");
                for (name, value) in [("Prefix", &rule.prefix), ("Suffix", &rule.suffix)] {
                    if let Some(value) = value {
                        xml.open("FilterRule");
                        xml.elem("Name", name);
                        xml.elem("Value", value);
                        xml.close("FilterRule");
                    }
                }
                xml.close("S3Key");
                xml.close("Filter");
            }
            xml.close(element);
        }
    }
    if config.event_bridge {
        xml.open("EventBridgeConfiguration");
        xml.close("EventBridgeConfiguration");
    }
    xml.close("NotificationConfiguration");
    xml.finish()
}

fn to_json(config: &Config) -> String {
    let rules: Vec<Value> = config
        .rules
        .iter()
        .map(|r| json!({"id": r.id, "kind": r.kind, "arn": r.arn, "events": r.events, "prefix": r.prefix, "suffix": r.suffix}))
        .collect();
    json!({ "rules": rules, "eventBridge": config.event_bridge }).to_string()
}

fn from_json(text: &str) -> Config {
    let value: Value = serde_json::from_str(text).unwrap_or_default();
    let text_of = |v: &Value| v.as_str().map(str::to_owned);
    let rules = value["rules"].as_array().into_iter().flatten().map(|r| Rule {
        id: text_of(&r["id"]).unwrap_or_default(),
        kind: r["kind"].as_u64().unwrap_or(0) as usize,
        arn: text_of(&r["arn"]).unwrap_or_default(),
        events: r["events"].as_array().into_iter().flatten().filter_map(text_of).collect(),
        prefix: text_of(&r["prefix"]),
        suffix: text_of(&r["suffix"]),
    });
    Config { rules: rules.collect(), event_bridge: value["eventBridge"].as_bool().unwrap_or(false) }
}

/// AWS checks every destination of a configuration and refuses the whole configuration,
/// naming each one it could not validate in numbered `ArgumentName`/`ArgumentValue` pairs.
fn check_destinations(sink: &dyn NotificationSink, config: &Config) -> S3Result<()> {
    let mut error = S3Error::invalid_argument("Unable to validate the following destination configurations");
    let mut failed = 0;
    for target in config.rules.iter().filter_map(Rule::target) {
        if sink.exists(&target) {
            continue;
        }
        let (name, value) = match &target {
            NotificationTarget::Queue { queue_arn } => {
                (queue_arn.clone(), "The destination queue does not exist".to_owned())
            }
            // AWS's wording: it cannot tell a missing topic from one whose policy refuses S3.
            NotificationTarget::Topic { topic_arn } => (
                topic_arn.clone(),
                "Permissions on the destination topic do not allow S3 to publish notifications from this bucket"
                    .to_owned(),
            ),
            // AWS's wording: it tries the function's resource policy and reports that.
            NotificationTarget::Lambda { function_arn } => (
                format!("{function_arn}, null"),
                format!("Not authorized to invoke function [{function_arn}]"),
            ),
            NotificationTarget::EventBridge { .. } => continue,
        };
        failed += 1;
        error =
            error.with(format!("ArgumentName{failed}"), name).with(format!("ArgumentValue{failed}"), value);
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(error)
    }
}

pub fn put(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    s3.db.require_bucket(ctx.bucket())?;
    let body = crate::payload::read(&ctx.request)?.data;
    let config = parse(&body)?;
    let skip_validation = ctx.header("x-amz-skip-destination-validation").is_some_and(|v| v == "true");
    if let Some(sink) = s3.sink.as_deref().filter(|_| !skip_validation) {
        check_destinations(sink, &config)?;
    }
    s3.db.set_notification(ctx.bucket(), &to_json(&config))?;
    if let Some(sink) = &s3.sink {
        let test = events::test_event(ctx.bucket(), &ctx.request_id, &ctx.host_id, context::now_ms());
        // Queues and topics get the test event once each; functions none.
        let mut targets: Vec<NotificationTarget> = Vec::new();
        for target in config.rules.iter().filter(|r| r.kind != 2).filter_map(Rule::target) {
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
        for target in targets {
            sink.deliver(&target, test.clone());
        }
    }
    Ok(Reply::empty(200))
}

pub fn get(s3: &Inner, ctx: &mut Ctx) -> S3Result<Reply> {
    let config = s3.db.notification(ctx.bucket())?.as_deref().map(from_json).unwrap_or_default();
    Ok(Reply::xml(render(&config)))
}

/// Delivers the request's object events to every matching configuration.
pub fn deliver_events(s3: &Inner, ctx: &Ctx) {
    let Some(sink) = &s3.sink else { return };
    if ctx.events.is_empty() {
        return;
    }
    let (config, region) = match s3.db.notification_and_region(ctx.bucket()) {
        Ok(Some((text, region))) => (from_json(&text), region),
        _ => return,
    };
    deliver(s3, sink, ctx, &config, &region);
}

/// Events of a bucket of `region` (their records' `awsRegion`, the event bus's region).
fn deliver(s3: &Inner, sink: &Arc<dyn NotificationSink>, ctx: &Ctx, config: &Config, region: &str) {
    let source_ip = ctx
        .header("x-forwarded-for")
        .and_then(|f| f.split(',').next())
        .map(str::trim)
        .unwrap_or("127.0.0.1")
        .to_owned();
    for event in &ctx.events {
        let sequencer = s3.sequencer.next();
        if config.event_bridge {
            let detail = events::event_bridge_detail(
                ctx.bucket(),
                event,
                &sequencer,
                &ctx.request_id,
                &s3.account,
                &source_ip,
            );
            sink.deliver(&NotificationTarget::EventBridge { region: region.to_owned() }, detail);
        }
        for rule in config.rules.iter().filter(|r| r.matches(event)) {
            let Some(target) = rule.target() else { continue };
            let record = RecordContext {
                region,
                account: &s3.account,
                bucket: ctx.bucket(),
                request_id: &ctx.request_id,
                host_id: &ctx.host_id,
                source_ip: &source_ip,
                configuration_id: &rule.id,
                time_ms: context::now_ms(),
                sequencer: &sequencer,
            };
            sink.deliver(&target, events::document(&record, event));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTO3_CONFIG: &str = r#"<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
        <QueueConfiguration><Id>q</Id><Queue>arn:aws:sqs:us-east-1:000000000000:q</Queue>
          <Event>s3:ObjectCreated:*</Event>
          <Filter><S3Key><FilterRule><Name>prefix</Name><Value>in/</Value></FilterRule>
            <FilterRule><Name>Suffix</Name><Value>.csv</Value></FilterRule></S3Key></Filter>
        </QueueConfiguration>
        <CloudFunctionConfiguration><CloudFunction>arn:aws:lambda:us-east-1:000000000000:function:f</CloudFunction>
          <Event>s3:ObjectRemoved:Delete</Event></CloudFunctionConfiguration>
      </NotificationConfiguration>"#;

    fn event(name: &'static str, key: &str) -> ObjectEvent {
        ObjectEvent { name, key: key.into(), size: None, etag: None }
    }

    #[test]
    fn parses_what_boto3_sends_and_round_trips() {
        let config = parse(BOTO3_CONFIG.as_bytes()).unwrap();
        assert_eq!(config.rules.len(), 2);
        let queue = &config.rules[0];
        assert_eq!(
            (queue.id.as_str(), queue.prefix.as_deref(), queue.suffix.as_deref()),
            ("q", Some("in/"), Some(".csv"))
        );
        assert!(!config.rules[1].id.is_empty(), "ids are generated when missing");
        assert_eq!(from_json(&to_json(&config)), config);
        let rendered = render(&config);
        assert!(rendered.contains("<Name>Prefix</Name><Value>in/</Value>"), "{rendered}");
        assert_eq!(parse(rendered.as_bytes()).unwrap(), config);
    }

    #[test]
    fn events_match_by_family_and_filters() {
        let config = parse(BOTO3_CONFIG.as_bytes()).unwrap();
        let (queue, function) = (&config.rules[0], &config.rules[1]);
        assert!(queue.matches(&event("ObjectCreated:Put", "in/a.csv")));
        assert!(queue.matches(&event("ObjectCreated:CompleteMultipartUpload", "in/b.csv")));
        assert!(!queue.matches(&event("ObjectCreated:Put", "out/a.csv")));
        assert!(!queue.matches(&event("ObjectCreated:Put", "in/a.json")));
        assert!(!queue.matches(&event("ObjectRemoved:Delete", "in/a.csv")));
        assert!(function.matches(&event("ObjectRemoved:Delete", "anything")));
        assert!(!function.matches(&event("ObjectCreated:Copy", "anything")));
    }

    #[test]
    fn bad_configurations_are_refused() {
        let bad_event = BOTO3_CONFIG.replace("s3:ObjectRemoved:Delete", "s3:ObjectDeleted");
        assert_eq!(parse(bad_event.as_bytes()).unwrap_err().code, "InvalidArgument");
        let bad_rule = BOTO3_CONFIG.replace("<Name>prefix</Name>", "<Name>infix</Name>");
        assert_eq!(parse(bad_rule.as_bytes()).unwrap_err().code, "InvalidArgument");
        let bad_arn = BOTO3_CONFIG.replace("arn:aws:sqs:", "arn:aws:lambda:");
        assert_eq!(parse(bad_arn.as_bytes()).unwrap_err().code, "InvalidArgument");
        assert_eq!(parse(b"<NotificationConfiguration>").unwrap_err().code, "MalformedXML");
        let empty = parse(b"<NotificationConfiguration/>").unwrap();
        assert_eq!(empty, Config::default());
    }
}
