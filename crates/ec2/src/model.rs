//! An instance as nimbus keeps it, and as DescribeInstances shows it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// AWS's instance states and their codes (the low byte of `InstanceState.Code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

impl State {
    pub fn code(self) -> u32 {
        match self {
            State::Pending => 0,
            State::Running => 16,
            State::ShuttingDown => 32,
            State::Terminated => 48,
            State::Stopping => 64,
            State::Stopped => 80,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::ShuttingDown => "shutting-down",
            State::Terminated => "terminated",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
        }
    }

    pub fn xml(self) -> Value {
        json!({ "code": self.code(), "name": self.name() })
    }

    /// Holding host capacity: its processes run (or are about to).
    pub fn holds_capacity(self) -> bool {
        matches!(self, State::Pending | State::Running | State::Stopping | State::ShuttingDown)
    }
}

/// A spot instance's pending interruption: the two-minute notice.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Interruption {
    /// `terminate`, `stop` or `hibernate`.
    pub action: String,
    /// When the action happens (ms since the epoch on nimbus's clock).
    pub time_ms: i64,
    pub noticed_ms: i64,
    /// `capacity` (forced, or the interruption rate) or `price` (above the max price).
    #[serde(default)]
    pub cause: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub region: String,
    pub account: String,
    pub reservation_id: String,
    pub image_id: String,
    pub instance_type: String,
    pub arch: String,
    pub state: State,
    pub launch_ms: i64,
    pub zone: String,
    pub zone_id: String,
    pub subnet_id: String,
    pub vpc_id: String,
    pub private_ip: String,
    pub security_groups: Vec<(String, String)>,
    pub key_name: Option<String>,
    pub tags: Vec<(String, String)>,
    /// As given (base64).
    pub user_data: Option<String>,
    pub launch_index: u32,
    /// `spot` for spot instances; None for on-demand (AWS omits `InstanceLifecycle` then).
    pub lifecycle: Option<String>,
    pub spot_request_id: Option<String>,
    pub interruption_behavior: String,
    /// `stop` (default) or `terminate`: what a shutdown from inside does.
    pub shutdown_behavior: String,
    pub state_reason: Option<(String, String)>,
    pub transition_reason: String,
    pub interruption: Option<Interruption>,
    pub client_token: Option<String>,
    /// `optional` or `required` (IMDSv2).
    pub http_tokens: String,
    pub metadata_tags: bool,
    /// Boots so far (user data runs at each).
    pub boots: u32,
    /// When it last stopped or terminated.
    #[serde(default)]
    pub ended_ms: Option<i64>,
    /// The node whose sandbox runs its processes.
    #[serde(default)]
    pub node: String,
}

impl Instance {
    pub fn is_spot(&self) -> bool {
        self.lifecycle.as_deref() == Some("spot")
    }

    pub fn arn(&self) -> String {
        format!("arn:aws:ec2:{}:{}:instance/{}", self.region, self.account, self.id)
    }

    pub fn private_dns(&self) -> String {
        format!("ip-{}.ec2.internal", self.private_ip.replace('.', "-"))
    }

    pub fn xml(&self) -> Value {
        let running = self.state == State::Running;
        json!({
            "instanceId": self.id,
            "imageId": self.image_id,
            "instanceState": self.state.xml(),
            "privateDnsName": self.private_dns(),
            "dnsName": "",
            "reason": self.transition_reason,
            "keyName": self.key_name,
            "amiLaunchIndex": self.launch_index,
            "productCodes": [],
            "instanceType": self.instance_type,
            "launchTime": crate::iso8601(self.launch_ms),
            "placement": { "availabilityZone": self.zone, "availabilityZoneId": self.zone_id, "groupName": "", "tenancy": "default" },
            "monitoring": { "state": "disabled" },
            "subnetId": self.subnet_id,
            "vpcId": self.vpc_id,
            "privateIpAddress": self.private_ip,
            "architecture": self.arch,
            "rootDeviceType": "ebs",
            "rootDeviceName": "/dev/xvda",
            "blockDeviceMapping": [],
            "virtualizationType": "hvm",
            "hypervisor": "xen",
            "instanceLifecycle": self.lifecycle,
            "spotInstanceRequestId": self.spot_request_id,
            "clientToken": self.client_token,
            "tagSet": tags_xml(&self.tags),
            "groupSet": self.security_groups.iter().map(|(id, name)| json!({"groupId": id, "groupName": name})).collect::<Vec<_>>(),
            "sourceDestCheck": true,
            "stateReason": self.state_reason.as_ref().map(|(code, message)| json!({"code": code, "message": message})),
            "ebsOptimized": false,
            "enaSupport": true,
            "bootMode": "uefi-preferred",
            "platformDetails": "Linux/UNIX",
            "usageOperation": "RunInstances",
            "metadataOptions": {
                "state": if running { "applied" } else { "pending" },
                "httpTokens": self.http_tokens,
                "httpPutResponseHopLimit": 2,
                "httpEndpoint": "enabled",
                "httpProtocolIpv6": "disabled",
                "instanceMetadataTags": if self.metadata_tags { "enabled" } else { "disabled" },
            },
            "networkInterfaceSet": [],
        })
    }
}

pub fn tags_xml(tags: &[(String, String)]) -> Vec<Value> {
    tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect()
}

/// An EC2-style id: `prefix-` then 17 hex digits.
pub fn new_id(prefix: &str) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &hex[..17])
}
