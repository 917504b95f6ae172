//! The instance metadata service, served to each instance at
//! `$AWS_EC2_METADATA_SERVICE_ENDPOINT` (nimbus's API inside the instance's network, path
//! `/_nimbus/ec2/imds/<instance-id>`), which botocore and the AWS SDKs use instead of
//! 169.254.169.254: IMDSv2 tokens (`PUT /latest/api/token`), IMDSv1 unless the instance requires
//! tokens, and the paths programs read (instance id and type, AMI, zone, IPv4, life cycle, user
//! data, tags when enabled, `spot/instance-action`, `events/recommendations/rebalance`).

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use hyper::StatusCode;
use serde_json::json;

use crate::model::{Instance, State};
use crate::Ec2;

/// IMDSv2 tokens: token → (instance id, expiry ms on the real clock).
#[derive(Default)]
pub struct Tokens(Mutex<HashMap<String, (String, i64)>>);

pub struct Answer {
    pub status: StatusCode,
    pub body: String,
}

fn answer(status: u16, body: impl Into<String>) -> Answer {
    Answer {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body: body.into(),
    }
}

fn real_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

const NOT_FOUND: &str = "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<html><head><title>404 - Not Found</title></head><body><h1>404 - Not Found</h1></body></html>\n";

impl Ec2 {
    /// A request for `rest` (after `/_nimbus/ec2/imds/<id>/`) from instance `id`.
    pub(crate) fn imds(
        &self,
        id: &str,
        method: &str,
        rest: &str,
        header: impl Fn(&str) -> Option<String>,
    ) -> Answer {
        let Ok(Some(instance)) = self.instance(id) else { return answer(404, NOT_FOUND) };
        if matches!(instance.state, State::Terminated | State::Stopped) {
            return answer(404, NOT_FOUND);
        }
        let rest = rest.trim_start_matches('/');
        if rest == "latest/api/token" {
            if method != "PUT" {
                return answer(405, "");
            }
            if header("x-forwarded-for").is_some() {
                return answer(403, "");
            }
            let ttl =
                header("x-aws-ec2-metadata-token-ttl-seconds").and_then(|v| v.trim().parse::<i64>().ok());
            let Some(ttl) = ttl.filter(|t| (1..=21600).contains(t)) else { return answer(400, "") };
            let token = base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes());
            let mut tokens = self.tokens.0.lock().unwrap_or_else(|p| p.into_inner());
            let now = real_now();
            tokens.retain(|_, (_, expires)| *expires > now);
            tokens.insert(token.clone(), (id.to_owned(), now + ttl * 1000));
            return answer(200, token);
        }
        if rest.ends_with("/api/token") {
            return answer(403, "");
        }
        if method != "GET" && method != "HEAD" {
            return answer(405, "");
        }
        let token = header("x-aws-ec2-metadata-token");
        let valid = token.as_ref().is_some_and(|t| {
            let tokens = self.tokens.0.lock().unwrap_or_else(|p| p.into_inner());
            tokens.get(t).is_some_and(|(owner, expires)| owner == id && *expires > real_now())
        });
        if (token.is_some() || instance.http_tokens == "required") && !valid {
            return answer(401, "");
        }
        match self.metadata(&instance, rest) {
            Some(body) => answer(200, body),
            None => answer(404, NOT_FOUND),
        }
    }

    fn metadata(&self, i: &Instance, path: &str) -> Option<String> {
        let path = path.trim_end_matches('/');
        let listing = |items: &[&str]| Some(items.join("\n"));
        let spot_action = i.interruption.as_ref();
        Some(match path {
            "latest" => "api/token\ndynamic\nmeta-data\nuser-data".to_owned(),
            "latest/user-data" => {
                let data = i.user_data.as_ref()?;
                let bytes = base64::engine::general_purpose::STANDARD.decode(data.trim()).ok()?;
                String::from_utf8_lossy(&bytes).into_owned()
            }
            "latest/meta-data" => {
                let mut items = vec![
                    "ami-id", "ami-launch-index", "events/", "hostname", "instance-id", "instance-life-cycle",
                    "instance-type", "local-hostname", "local-ipv4", "mac", "placement/", "reservation-id",
                    "security-groups", "services/",
                ];
                if spot_action.is_some() {
                    items.push("spot/");
                }
                if i.metadata_tags {
                    items.push("tags/");
                }
                return listing(&items);
            }
            "latest/meta-data/ami-id" => i.image_id.clone(),
            "latest/meta-data/ami-launch-index" => i.launch_index.to_string(),
            "latest/meta-data/hostname" | "latest/meta-data/local-hostname" => i.private_dns(),
            "latest/meta-data/instance-id" => i.id.clone(),
            "latest/meta-data/instance-type" => i.instance_type.clone(),
            "latest/meta-data/instance-life-cycle" => i.lifecycle.clone().unwrap_or_else(|| "on-demand".into()),
            "latest/meta-data/local-ipv4" => i.private_ip.clone(),
            "latest/meta-data/mac" => mac(&i.id),
            "latest/meta-data/reservation-id" => i.reservation_id.clone(),
            "latest/meta-data/security-groups" => i.security_groups.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>().join("\n"),
            "latest/meta-data/placement" => "availability-zone\navailability-zone-id\nregion".into(),
            "latest/meta-data/placement/availability-zone" => i.zone.clone(),
            "latest/meta-data/placement/availability-zone-id" => i.zone_id.clone(),
            "latest/meta-data/placement/region" => i.region.clone(),
            "latest/meta-data/services" => "domain\npartition".into(),
            "latest/meta-data/services/domain" => "amazonaws.com".into(),
            "latest/meta-data/services/partition" => "aws".into(),
            "latest/meta-data/events" => "recommendations/".into(),
            "latest/meta-data/events/recommendations" => "rebalance".into(),
            "latest/meta-data/events/recommendations/rebalance" => {
                json!({ "noticeTime": crate::iso_seconds(spot_action?.noticed_ms) }).to_string()
            }
            "latest/meta-data/spot" => {
                spot_action?;
                "instance-action\ntermination-time".into()
            }
            "latest/meta-data/spot/instance-action" => {
                let action = spot_action?;
                json!({ "action": action.action, "time": crate::iso_seconds(action.time_ms) }).to_string()
            }
            "latest/meta-data/spot/termination-time" => {
                let action = spot_action.filter(|a| a.action == "terminate")?;
                crate::iso_seconds(action.time_ms)
            }
            "latest/meta-data/tags" if i.metadata_tags => "instance/".into(),
            "latest/meta-data/tags/instance" if i.metadata_tags => {
                i.tags.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join("\n")
            }
            "latest/dynamic" => "instance-identity/".into(),
            "latest/dynamic/instance-identity" => "document".into(),
            "latest/dynamic/instance-identity/document" => serde_json::to_string_pretty(&json!({
                "accountId": i.account, "architecture": i.arch, "availabilityZone": i.zone, "imageId": i.image_id,
                "instanceId": i.id, "instanceType": i.instance_type, "pendingTime": crate::iso_seconds(i.launch_ms),
                "privateIp": i.private_ip, "region": i.region, "version": "2017-09-30",
                "billingProducts": null, "devpayProductCodes": null, "marketplaceProductCodes": null,
                "kernelId": null, "ramdiskId": null,
            }))
            .ok()?,
            _ => {
                let key = path.strip_prefix("latest/meta-data/tags/instance/").filter(|_| i.metadata_tags)?;
                i.tags.iter().find(|(k, _)| k == key)?.1.clone()
            }
        })
    }
}

fn mac(id: &str) -> String {
    let h = crate::catalog::hash(&[id]);
    format!(
        "0e:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        (h >> 32) as u8,
        (h >> 24) as u8,
        (h >> 16) as u8,
        (h >> 8) as u8,
        h as u8
    )
}
