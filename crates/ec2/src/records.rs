//! Records that templates and compute environments name: VPCs, subnets, security groups, key
//! pairs and launch templates. Each region has a default VPC (172.31.0.0/16) with a default
//! subnet per zone and a `default` security group, with stable ids; created ones are stored.

use nimbus_api::AwsError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Digest;

use crate::catalog::{hash, zones};
use crate::model::{new_id, tags_xml};
use crate::query::{any_matches, filters, invalid, tags_for, Input};
use crate::Ec2;

fn stable_id(prefix: &str, parts: &[&str]) -> String {
    format!("{prefix}-{:017x}", hash(parts))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub zone: String,
    pub zone_id: String,
    pub cidr: String,
    pub default: bool,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vpc {
    pub id: String,
    pub cidr: String,
    pub default: bool,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    pub vpc_id: String,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyPair {
    pub id: String,
    pub name: String,
    pub fingerprint: String,
    pub key_type: String,
    pub created_ms: i64,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

/// Where an instance lands.
pub struct Placement {
    pub zone: String,
    pub zone_id: String,
    pub subnet_id: String,
    pub vpc_id: String,
    pub cidr: String,
    pub groups: Vec<(String, String)>,
}

impl Placement {
    /// A free-looking address in the subnet (recorded, not configured inside the sandbox).
    pub fn private_ip(&self) -> String {
        let base: Vec<u32> = self
            .cidr
            .split('/')
            .next()
            .unwrap_or("172.31.0.0")
            .split('.')
            .filter_map(|p| p.parse().ok())
            .collect();
        let (a, b, c) = (
            base.first().copied().unwrap_or(172),
            base.get(1).copied().unwrap_or(31),
            base.get(2).copied().unwrap_or(0),
        );
        let host = 4 + (uuid::Uuid::new_v4().as_u128() % 4000) as u32;
        format!("{a}.{b}.{}.{}", c + host / 256, host % 256)
    }
}

pub fn default_vpc(region: &str) -> Vpc {
    Vpc {
        id: stable_id("vpc", &[region, "default-vpc"]),
        cidr: "172.31.0.0/16".into(),
        default: true,
        tags: Vec::new(),
    }
}

pub fn default_subnets(region: &str) -> Vec<Subnet> {
    let vpc = default_vpc(region);
    zones(region)
        .into_iter()
        .enumerate()
        .map(|(i, (zone, zone_id))| Subnet {
            id: stable_id("subnet", &[region, &zone]),
            vpc_id: vpc.id.clone(),
            zone,
            zone_id,
            cidr: format!("172.31.{}.0/20", i * 16),
            default: true,
            tags: Vec::new(),
        })
        .collect()
}

pub fn default_group(region: &str, vpc_id: &str) -> SecurityGroup {
    SecurityGroup {
        id: stable_id("sg", &[region, vpc_id, "default"]),
        name: "default".into(),
        description: "default VPC security group".into(),
        vpc_id: vpc_id.to_owned(),
        tags: Vec::new(),
    }
}

impl Ec2 {
    fn subnets(&self, region: &str) -> Result<Vec<Subnet>, AwsError> {
        let mut all = default_subnets(region);
        all.extend(self.store.all::<Subnet>("subnet", Some(region))?);
        Ok(all)
    }

    fn vpcs(&self, region: &str) -> Result<Vec<Vpc>, AwsError> {
        let mut all = vec![default_vpc(region)];
        all.extend(self.store.all::<Vpc>("vpc", Some(region))?);
        Ok(all)
    }

    fn groups(&self, region: &str) -> Result<Vec<SecurityGroup>, AwsError> {
        let mut all: Vec<SecurityGroup> =
            self.vpcs(region)?.iter().map(|v| default_group(region, &v.id)).collect();
        all.extend(self.store.all::<SecurityGroup>("security-group", Some(region))?);
        Ok(all)
    }

    pub(crate) fn key_exists(&self, region: &str, name: &str) -> Result<bool, AwsError> {
        Ok(self.store.all::<KeyPair>("key-pair", Some(region))?.iter().any(|k| k.name == name))
    }

    /// The zone, subnet and security groups of a launch.
    pub(crate) fn placement(&self, region: &str, input: &Value) -> Result<Placement, AwsError> {
        let subnets = self.subnets(region)?;
        let zone = input.get("Placement").and_then(|p| p.str("AvailabilityZone"));
        let subnet = match input.str("SubnetId") {
            Some(id) => subnets.iter().find(|s| s.id == id).cloned().ok_or_else(|| {
                AwsError::new(400, "InvalidSubnetID.NotFound", format!("The subnet ID '{id}' does not exist"))
            })?,
            None => match zone {
                Some(zone) => subnets
                    .iter()
                    .find(|s| s.default && s.zone == zone)
                    .cloned()
                    .ok_or_else(|| invalid(format!("Invalid availability zone: [{zone}]")))?,
                None => subnets[0].clone(),
            },
        };
        let all_groups = self.groups(region)?;
        let mut groups = Vec::new();
        for id in input.strings("SecurityGroupId") {
            let group = all_groups.iter().find(|g| g.id == id).ok_or_else(|| {
                AwsError::new(
                    400,
                    "InvalidGroup.NotFound",
                    format!("The security group '{id}' does not exist"),
                )
            })?;
            groups.push((group.id.clone(), group.name.clone()));
        }
        for name in input.strings("SecurityGroup") {
            let group =
                all_groups.iter().find(|g| g.name == name && g.vpc_id == subnet.vpc_id).ok_or_else(|| {
                    AwsError::new(
                        400,
                        "InvalidGroup.NotFound",
                        format!("The security group '{name}' does not exist in VPC '{}'", subnet.vpc_id),
                    )
                })?;
            groups.push((group.id.clone(), group.name.clone()));
        }
        if groups.is_empty() {
            let group = default_group(region, &subnet.vpc_id);
            groups.push((group.id, group.name));
        }
        Ok(Placement {
            zone: subnet.zone.clone(),
            zone_id: subnet.zone_id.clone(),
            subnet_id: subnet.id.clone(),
            vpc_id: subnet.vpc_id.clone(),
            cidr: subnet.cidr.clone(),
            groups,
        })
    }

    pub(crate) fn describe_vpcs(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let ids = input.strings("VpcId");
        let filters = filters(input);
        let vpcs: Vec<Value> = self
            .vpcs(region)?
            .into_iter()
            .filter(|v| ids.is_empty() || ids.contains(&v.id))
            .filter(|v| {
                filters.iter().all(|(n, vals)| match n.as_str() {
                    "vpc-id" => any_matches(vals, std::slice::from_ref(&v.id)),
                    "is-default" | "isDefault" => any_matches(vals, &[v.default.to_string()]),
                    "cidr" | "cidr-block" => any_matches(vals, std::slice::from_ref(&v.cidr)),
                    _ => true,
                })
            })
            .map(|v| {
                json!({
                    "vpcId": v.id, "state": "available", "cidrBlock": v.cidr, "isDefault": v.default,
                    "dhcpOptionsId": "dopt-0d1e2f3a4b5c6d7e8", "instanceTenancy": "default", "ownerId": self.identity.account,
                    "cidrBlockAssociationSet": [{"cidrBlock": v.cidr, "associationId": v.id.replace("vpc-", "vpc-cidr-assoc-"), "cidrBlockState": {"state": "associated"}}],
                    "tagSet": tags_xml(&v.tags),
                })
            })
            .collect();
        if let Some(id) = ids.iter().find(|id| !vpcs.iter().any(|v| v["vpcId"] == id.as_str())) {
            return Err(AwsError::new(
                400,
                "InvalidVpcID.NotFound",
                format!("The vpc ID '{id}' does not exist"),
            ));
        }
        Ok(json!({ "vpcSet": vpcs }))
    }

    pub(crate) fn describe_subnets(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let ids = input.strings("SubnetId");
        let filters = filters(input);
        let subnets: Vec<Value> = self
            .subnets(region)?
            .into_iter()
            .filter(|s| ids.is_empty() || ids.contains(&s.id))
            .filter(|s| {
                filters.iter().all(|(n, vals)| match n.as_str() {
                    "vpc-id" => any_matches(vals, std::slice::from_ref(&s.vpc_id)),
                    "subnet-id" => any_matches(vals, std::slice::from_ref(&s.id)),
                    "availability-zone" | "availabilityZone" => any_matches(vals, std::slice::from_ref(&s.zone)),
                    "default-for-az" | "defaultForAz" => any_matches(vals, &[s.default.to_string()]),
                    _ => true,
                })
            })
            .map(|s| {
                json!({
                    "subnetId": s.id, "vpcId": s.vpc_id, "state": "available", "cidrBlock": s.cidr,
                    "availabilityZone": s.zone, "availabilityZoneId": s.zone_id, "availableIpAddressCount": 4091,
                    "defaultForAz": s.default, "mapPublicIpOnLaunch": s.default, "ownerId": self.identity.account,
                    "subnetArn": format!("arn:aws:ec2:{region}:{}:subnet/{}", self.identity.account, s.id),
                    "tagSet": tags_xml(&s.tags),
                })
            })
            .collect();
        if let Some(id) = ids.iter().find(|id| !subnets.iter().any(|s| s["subnetId"] == id.as_str())) {
            return Err(AwsError::new(
                400,
                "InvalidSubnetID.NotFound",
                format!("The subnet ID '{id}' does not exist"),
            ));
        }
        Ok(json!({ "subnetSet": subnets }))
    }

    pub(crate) fn create_security_group(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let name = input.required("GroupName")?.to_owned();
        let description = input.required("GroupDescription")?.to_owned();
        let vpc_id = input.str("VpcId").map_or_else(|| default_vpc(region).id, str::to_owned);
        if !self.vpcs(region)?.iter().any(|v| v.id == vpc_id) {
            return Err(AwsError::new(
                400,
                "InvalidVpcID.NotFound",
                format!("The vpc ID '{vpc_id}' does not exist"),
            ));
        }
        if self.groups(region)?.iter().any(|g| g.name == name && g.vpc_id == vpc_id) {
            return Err(AwsError::new(
                400,
                "InvalidGroup.Duplicate",
                format!("The security group '{name}' already exists for VPC '{vpc_id}'"),
            ));
        }
        let group = SecurityGroup {
            id: new_id("sg"),
            name,
            description,
            vpc_id,
            tags: tags_for(input, "security-group"),
        };
        self.store.put("security-group", &group.id, region, &group, self.now())?;
        let arn = format!("arn:aws:ec2:{region}:{}:security-group/{}", self.identity.account, group.id);
        Ok(
            json!({ "return": true, "groupId": group.id, "securityGroupArn": arn, "tagSet": tags_xml(&group.tags) }),
        )
    }

    pub(crate) fn describe_security_groups(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let ids = input.strings("GroupId");
        let names = input.strings("GroupName");
        let filters = filters(input);
        let groups: Vec<SecurityGroup> = self
            .groups(region)?
            .into_iter()
            .filter(|g| ids.is_empty() || ids.contains(&g.id))
            .filter(|g| names.is_empty() || names.contains(&g.name))
            .filter(|g| {
                filters.iter().all(|(n, vals)| match n.as_str() {
                    "group-name" => any_matches(vals, std::slice::from_ref(&g.name)),
                    "group-id" => any_matches(vals, std::slice::from_ref(&g.id)),
                    "vpc-id" => any_matches(vals, std::slice::from_ref(&g.vpc_id)),
                    _ => true,
                })
            })
            .collect();
        for id in &ids {
            if !groups.iter().any(|g| &g.id == id) {
                return Err(AwsError::new(
                    400,
                    "InvalidGroup.NotFound",
                    format!("The security group '{id}' does not exist"),
                ));
            }
        }
        let all_egress = json!([{ "ipProtocol": "-1", "ipRanges": [{"cidrIp": "0.0.0.0/0"}], "groups": [], "ipv6Ranges": [], "prefixListIds": [] }]);
        let set: Vec<Value> = groups
            .iter()
            .map(|g| {
                json!({
                    "groupId": g.id, "groupName": g.name, "groupDescription": g.description, "vpcId": g.vpc_id,
                    "ownerId": self.identity.account, "ipPermissions": [], "ipPermissionsEgress": all_egress,
                    "securityGroupArn": format!("arn:aws:ec2:{region}:{}:security-group/{}", self.identity.account, g.id),
                    "tagSet": tags_xml(&g.tags),
                })
            })
            .collect();
        Ok(json!({ "securityGroupInfo": set }))
    }

    pub(crate) fn delete_security_group(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let groups = self.store.all::<SecurityGroup>("security-group", Some(region))?;
        let group = match (input.str("GroupId"), input.str("GroupName")) {
            (Some(id), _) => groups.into_iter().find(|g| g.id == id),
            (None, Some(name)) => groups.into_iter().find(|g| g.name == name),
            (None, None) => {
                return Err(invalid("The request must contain the parameter GroupName or GroupId"))
            }
        };
        let Some(group) = group else {
            let named = input.str("GroupId").or(input.str("GroupName")).unwrap_or_default();
            if named == "default" || self.groups(region)?.iter().any(|g| g.id == named) {
                return Err(AwsError::new(
                    400,
                    "CannotDelete",
                    "the specified group: \"default\" name: \"default\" cannot be deleted by a user",
                ));
            }
            return Err(AwsError::new(
                400,
                "InvalidGroup.NotFound",
                format!("The security group '{named}' does not exist"),
            ));
        };
        self.store.delete("security-group", &group.id)?;
        Ok(json!({ "return": true, "groupId": group.id }))
    }

    pub(crate) fn create_key_pair(
        &self,
        region: &str,
        input: &Value,
        imported: bool,
    ) -> Result<Value, AwsError> {
        let name = input.required("KeyName")?.to_owned();
        if self.key_exists(region, &name)? {
            return Err(AwsError::new(
                400,
                "InvalidKeyPair.Duplicate",
                format!("The keypair '{name}' already exists."),
            ));
        }
        let key_type = input.str("KeyType").unwrap_or("rsa").to_owned();
        let material = if imported {
            input.required("PublicKeyMaterial")?.to_owned()
        } else {
            // Not a usable key: nothing in nimbus logs in over SSH.
            let body = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                uuid::Uuid::new_v4().as_bytes(),
            );
            format!("-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----")
        };
        let digest = sha2::Sha256::digest(material.as_bytes());
        let fingerprint: Vec<String> = digest.iter().take(20).map(|b| format!("{b:02x}")).collect();
        let key = KeyPair {
            id: new_id("key"),
            name,
            fingerprint: fingerprint.join(":"),
            key_type,
            created_ms: self.now(),
            tags: tags_for(input, "key-pair"),
        };
        self.store.put("key-pair", &key.id, region, &key, key.created_ms)?;
        Ok(json!({
            "keyName": key.name, "keyFingerprint": key.fingerprint, "keyPairId": key.id,
            "keyMaterial": (!imported).then_some(material), "tagSet": tags_xml(&key.tags),
        }))
    }

    pub(crate) fn describe_key_pairs(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let names = input.strings("KeyName");
        let ids = input.strings("KeyPairId");
        let keys: Vec<KeyPair> = self
            .store
            .all::<KeyPair>("key-pair", Some(region))?
            .into_iter()
            .filter(|k| names.is_empty() || names.contains(&k.name))
            .filter(|k| ids.is_empty() || ids.contains(&k.id))
            .collect();
        if let Some(name) = names.iter().find(|n| !keys.iter().any(|k| &k.name == *n)) {
            return Err(AwsError::new(
                400,
                "InvalidKeyPair.NotFound",
                format!("The key pair '{name}' does not exist"),
            ));
        }
        let set: Vec<Value> = keys
            .iter()
            .map(|k| json!({"keyPairId": k.id, "keyName": k.name, "keyFingerprint": k.fingerprint, "keyType": k.key_type, "createTime": crate::iso8601(k.created_ms), "tagSet": tags_xml(&k.tags)}))
            .collect();
        Ok(json!({ "keySet": set }))
    }

    pub(crate) fn delete_key_pair(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let keys = self.store.all::<KeyPair>("key-pair", Some(region))?;
        let key = match (input.str("KeyName"), input.str("KeyPairId")) {
            (Some(name), _) => keys.into_iter().find(|k| k.name == name),
            (None, Some(id)) => keys.into_iter().find(|k| k.id == id),
            _ => return Err(invalid("The request must contain the parameter KeyName or KeyPairId")),
        };
        // AWS answers success for a name that does not exist.
        let id = key.map(|k| {
            let _ = self.store.delete("key-pair", &k.id);
            k.id
        });
        Ok(json!({ "return": true, "keyPairId": id }))
    }
}
