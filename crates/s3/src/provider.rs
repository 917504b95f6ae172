//! `AWS::S3::Bucket` and `AWS::S3::BucketPolicy` for CloudFormation: the template's properties
//! become S3's own requests (create, `?versioning`, `?notification`, `?tagging`, `?cors` …),
//! served in-process by S3's handlers.

use std::sync::Arc;

use hyper::Method;
use nimbus_api::provider::{
    call, document, tag_map, text, ProviderError, ProviderFuture, Provisioned, ResourceProvider,
    ResourceRequest,
};
use nimbus_api::xml::escape;
use nimbus_api::Service;
use serde_json::{Map, Value};

pub struct BucketProvider {
    s3: Arc<dyn Service>,
}

/// Properties turned into a bucket sub-resource document: (property, sub-resource, builder).
type Builder = fn(&Value) -> String;
const CONFIGS: [(&str, &str, Builder); 8] = [
    ("VersioningConfiguration", "versioning", versioning),
    ("NotificationConfiguration", "notification", notification),
    ("CorsConfiguration", "cors", cors),
    ("LifecycleConfiguration", "lifecycle", lifecycle),
    ("BucketEncryption", "encryption", encryption),
    ("PublicAccessBlockConfiguration", "publicAccessBlock", public_access_block),
    ("OwnershipControls", "ownershipControls", ownership),
    ("WebsiteConfiguration", "website", website),
];

/// Accepted and not acted on (nimbus keeps no logs, metrics, replicas, inventories of buckets).
const IGNORED: [&str; 9] = [
    "AccessControl",
    "AccelerateConfiguration",
    "AnalyticsConfigurations",
    "IntelligentTieringConfigurations",
    "InventoryConfigurations",
    "LoggingConfiguration",
    "MetricsConfigurations",
    "ReplicationConfiguration",
    "ObjectLockEnabled",
];

fn el(name: &str, value: &str) -> String {
    format!("<{name}>{}</{name}>", escape(value))
}

fn opt(name: &str, value: Option<&Value>) -> String {
    value.map(|v| el(name, &text(v))).unwrap_or_default()
}

fn items(value: Option<&Value>) -> Vec<&Value> {
    match value {
        Some(Value::Array(items)) => items.iter().collect(),
        _ => Vec::new(),
    }
}

fn versioning(v: &Value) -> String {
    format!("<VersioningConfiguration>{}</VersioningConfiguration>", opt("Status", v.get("Status")))
}

fn filter(v: &Value) -> String {
    let rules: String = items(v.get("Filter").and_then(|f| f.get("S3Key")).and_then(|k| k.get("Rules")))
        .into_iter()
        .map(|r| {
            format!("<FilterRule>{}{}</FilterRule>", opt("Name", r.get("Name")), opt("Value", r.get("Value")))
        })
        .collect();
    if rules.is_empty() {
        String::new()
    } else {
        format!("<Filter><S3Key>{rules}</S3Key></Filter>")
    }
}

fn notification(v: &Value) -> String {
    let mut out = String::from("<NotificationConfiguration>");
    for (list, element, arn) in [
        ("TopicConfigurations", "TopicConfiguration", "Topic"),
        ("QueueConfigurations", "QueueConfiguration", "Queue"),
        ("LambdaConfigurations", "CloudFunctionConfiguration", "Function"),
    ] {
        for c in items(v.get(list)) {
            let target = if arn == "Function" { "CloudFunction" } else { arn };
            out.push_str(&format!(
                "<{element}>{}{}{}</{element}>",
                opt(target, c.get(arn)),
                opt("Event", c.get("Event")),
                filter(c)
            ));
        }
    }
    let eventbridge = v.get("EventBridgeConfiguration").and_then(|e| e.get("EventBridgeEnabled")).map(text);
    if eventbridge.as_deref() == Some("true") {
        out.push_str("<EventBridgeConfiguration></EventBridgeConfiguration>");
    }
    out.push_str("</NotificationConfiguration>");
    out
}

fn cors(v: &Value) -> String {
    let rules: String = items(v.get("CorsRules"))
        .into_iter()
        .map(|r| {
            let mut rule = opt("ID", r.get("Id"));
            for (list, element) in [
                ("AllowedHeaders", "AllowedHeader"),
                ("AllowedMethods", "AllowedMethod"),
                ("AllowedOrigins", "AllowedOrigin"),
                ("ExposedHeaders", "ExposeHeader"),
            ] {
                rule.extend(items(r.get(list)).into_iter().map(|x| el(element, &text(x))));
            }
            rule.push_str(&opt("MaxAgeSeconds", r.get("MaxAge")));
            format!("<CORSRule>{rule}</CORSRule>")
        })
        .collect();
    format!("<CORSConfiguration>{rules}</CORSConfiguration>")
}

fn lifecycle(v: &Value) -> String {
    let rules: String = items(v.get("Rules"))
        .into_iter()
        .map(|r| {
            let mut rule = opt("ID", r.get("Id"));
            rule.push_str(&format!(
                "<Filter>{}</Filter>",
                el("Prefix", &r.get("Prefix").map(text).unwrap_or_default())
            ));
            rule.push_str(&opt("Status", r.get("Status")));
            if let Some(days) = r.get("ExpirationInDays") {
                rule.push_str(&format!("<Expiration>{}</Expiration>", el("Days", &text(days))));
            }
            if let Some(days) = r.get("NoncurrentVersionExpirationInDays") {
                rule.push_str(&format!(
                    "<NoncurrentVersionExpiration>{}</NoncurrentVersionExpiration>",
                    el("NoncurrentDays", &text(days))
                ));
            }
            if let Some(days) =
                r.get("AbortIncompleteMultipartUpload").and_then(|a| a.get("DaysAfterInitiation"))
            {
                rule.push_str(&format!(
                    "<AbortIncompleteMultipartUpload>{}</AbortIncompleteMultipartUpload>",
                    el("DaysAfterInitiation", &text(days))
                ));
            }
            format!("<Rule>{rule}</Rule>")
        })
        .collect();
    format!("<LifecycleConfiguration>{rules}</LifecycleConfiguration>")
}

fn encryption(v: &Value) -> String {
    let rules: String = items(v.get("ServerSideEncryptionConfiguration"))
        .into_iter()
        .map(|r| {
            let default = r.get("ServerSideEncryptionByDefault");
            format!(
                "<Rule><ApplyServerSideEncryptionByDefault>{}{}</ApplyServerSideEncryptionByDefault>{}</Rule>",
                opt("SSEAlgorithm", default.and_then(|d| d.get("SSEAlgorithm"))),
                opt("KMSMasterKeyID", default.and_then(|d| d.get("KMSMasterKeyID"))),
                opt("BucketKeyEnabled", r.get("BucketKeyEnabled"))
            )
        })
        .collect();
    format!("<ServerSideEncryptionConfiguration>{rules}</ServerSideEncryptionConfiguration>")
}

fn public_access_block(v: &Value) -> String {
    let fields: String =
        ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"]
            .iter()
            .map(|f| opt(f, v.get(*f)))
            .collect();
    format!("<PublicAccessBlockConfiguration>{fields}</PublicAccessBlockConfiguration>")
}

fn ownership(v: &Value) -> String {
    let rules: String = items(v.get("Rules"))
        .into_iter()
        .map(|r| format!("<Rule>{}</Rule>", opt("ObjectOwnership", r.get("ObjectOwnership"))))
        .collect();
    format!("<OwnershipControls>{rules}</OwnershipControls>")
}

fn website(v: &Value) -> String {
    let mut out = String::from("<WebsiteConfiguration>");
    if let Some(index) = v.get("IndexDocument") {
        out.push_str(&format!("<IndexDocument>{}</IndexDocument>", el("Suffix", &text(index))));
    }
    if let Some(error) = v.get("ErrorDocument") {
        out.push_str(&format!("<ErrorDocument>{}</ErrorDocument>", el("Key", &text(error))));
    }
    out.push_str("</WebsiteConfiguration>");
    out
}

fn tagging(tags: &Map<String, Value>) -> String {
    let tags: String =
        tags.iter().map(|(k, v)| format!("<Tag>{}{}</Tag>", el("Key", k), el("Value", &text(v)))).collect();
    format!("<Tagging><TagSet>{tags}</TagSet></Tagging>")
}

impl BucketProvider {
    pub fn new(s3: Arc<dyn Service>) -> BucketProvider {
        BucketProvider { s3 }
    }

    async fn send(&self, method: Method, path: &str, body: String) -> Result<(), ProviderError> {
        let headers = [("host", "localhost"), ("content-type", "application/xml")];
        call(self.s3.as_ref(), method, path, &headers, body.into_bytes()).await.map(|_| ())
    }

    fn provisioned(&self, request: &ResourceRequest, name: String) -> Provisioned {
        let region = &request.region;
        let mut attributes = Map::new();
        let mut set = |k: &str, v: String| {
            attributes.insert(k.to_owned(), Value::String(v));
        };
        set("Arn", format!("arn:aws:s3:::{name}"));
        set("DomainName", format!("{name}.s3.amazonaws.com"));
        set("RegionalDomainName", format!("{name}.s3.{region}.amazonaws.com"));
        set("DualStackDomainName", format!("{name}.s3.dualstack.{region}.amazonaws.com"));
        set("WebsiteURL", format!("http://{name}.s3-website-{region}.amazonaws.com"));
        Provisioned { physical_id: name, attributes }
    }

    async fn configure(
        &self,
        name: &str,
        request: &ResourceRequest,
        previous: Option<&Map<String, Value>>,
    ) -> Result<(), ProviderError> {
        for (property, sub, build) in CONFIGS {
            let (now, before) = (request.property(property), previous.and_then(|p| p.get(property)));
            if now == before {
                continue; // unchanged, or never set
            }
            match now {
                Some(value) => self.send(Method::PUT, &format!("/{name}?{sub}"), build(value)).await?,
                None if sub == "versioning" => {
                    let suspended =
                        "<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>";
                    self.send(Method::PUT, &format!("/{name}?{sub}"), suspended.to_owned()).await?
                }
                None if sub == "notification" => {
                    let empty = "<NotificationConfiguration></NotificationConfiguration>".to_owned();
                    self.send(Method::PUT, &format!("/{name}?{sub}"), empty).await?
                }
                None => self.send(Method::DELETE, &format!("/{name}?{sub}"), String::new()).await?,
            }
        }
        let tags = tag_map(request.property("Tags"));
        let before = previous.map(|p| tag_map(p.get("Tags")));
        if before.as_ref() != Some(&tags) {
            if tags.is_empty() {
                if before.is_some() {
                    self.send(Method::DELETE, &format!("/{name}?tagging"), String::new()).await?;
                }
            } else {
                self.send(Method::PUT, &format!("/{name}?tagging"), tagging(&tags)).await?;
            }
        }
        Ok(())
    }
}

fn check_properties(request: &ResourceRequest) -> Result<(), ProviderError> {
    let known = |k: &str| {
        k == "BucketName" || k == "Tags" || CONFIGS.iter().any(|(p, _, _)| *p == k) || IGNORED.contains(&k)
    };
    match request.properties.keys().find(|k| !known(k)) {
        Some(unknown) => Err(ProviderError::new(format!(
            "nimbus does not support the property {unknown} of AWS::S3::Bucket"
        ))),
        None => Ok(()),
    }
}

impl ResourceProvider for BucketProvider {
    fn resource_types(&self) -> &'static [&'static str] {
        &["AWS::S3::Bucket", "AWS::S3::BucketPolicy"]
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        match resource_type {
            "AWS::S3::Bucket" => matches!(property, "BucketName" | "ObjectLockEnabled"),
            _ => property == "Bucket",
        }
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            if request.resource_type == "AWS::S3::BucketPolicy" {
                let bucket =
                    request.string("Bucket").ok_or(ProviderError::new("Property Bucket cannot be empty."))?;
                let policy = request.property("PolicyDocument").map(document).unwrap_or_default();
                self.send(Method::PUT, &format!("/{bucket}?policy"), policy).await?;
                return Ok(Provisioned { physical_id: bucket.to_owned(), attributes: Map::new() });
            }
            check_properties(&request)?;
            let name = match request.string("BucketName") {
                Some(name) => name.to_owned(),
                None => request.generated_name(63, true),
            };
            let location = if request.region == "us-east-1" {
                String::new()
            } else {
                format!(
                    "<CreateBucketConfiguration>{}</CreateBucketConfiguration>",
                    el("LocationConstraint", &request.region)
                )
            };
            self.send(Method::PUT, &format!("/{name}"), location).await?;
            if let Err(error) = self.configure(&name, &request, None).await {
                let _ = self.send(Method::DELETE, &format!("/{name}"), String::new()).await;
                return Err(error);
            }
            Ok(self.provisioned(&request, name))
        })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            if request.resource_type == "AWS::S3::BucketPolicy" {
                let policy = request.property("PolicyDocument").map(document).unwrap_or_default();
                self.send(Method::PUT, &format!("/{physical_id}?policy"), policy).await?;
                return Ok(Provisioned { physical_id, attributes: Map::new() });
            }
            check_properties(&request)?;
            self.configure(&physical_id, &request, Some(&previous)).await?;
            Ok(self.provisioned(&request, physical_id))
        })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            let path = if request.resource_type == "AWS::S3::BucketPolicy" {
                format!("/{physical_id}?policy")
            } else {
                format!("/{physical_id}")
            };
            match self.send(Method::DELETE, &path, String::new()).await {
                Err(error) if error.message.contains("NoSuchBucket") => Ok(()),
                other => other,
            }
        })
    }
}
