//! EC2's and Auto Scaling's CloudFormation resource types, provisioned through their own
//! operations (the same checks and errors as the Query API): `AWS::EC2::Instance`,
//! `SecurityGroup`, `KeyPair`, `LaunchTemplate`, and `AWS::AutoScaling::AutoScalingGroup`.
//! nimbus's EC2 has one default VPC with a subnet per zone and no launch configurations: those
//! types are refused by name.

use nimbus_api::provider::{
    text, ProviderError, ProviderFuture, Provisioned, ResourceProvider, ResourceRequest,
};
use nimbus_api::AwsError;
use serde_json::{json, Map, Value};

use crate::{AutoScaling, Ec2};

const INSTANCE: &str = "AWS::EC2::Instance";
const SECURITY_GROUP: &str = "AWS::EC2::SecurityGroup";
const KEY_PAIR: &str = "AWS::EC2::KeyPair";
const LAUNCH_TEMPLATE: &str = "AWS::EC2::LaunchTemplate";
const ASG: &str = "AWS::AutoScaling::AutoScalingGroup";
/// Types nimbus's EC2 does not model, refused with a message naming them.
const UNSERVED: &[&str] = &["AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::AutoScaling::LaunchConfiguration"];

pub const RESOURCE_TYPES: &[&str] =
    &[INSTANCE, SECURITY_GROUP, KEY_PAIR, LAUNCH_TEMPLATE, "AWS::EC2::VPC", "AWS::EC2::Subnet"];
const SCALING_POLICY: &str = "AWS::AutoScaling::ScalingPolicy";
pub const AUTOSCALING_RESOURCE_TYPES: &[&str] =
    &[ASG, SCALING_POLICY, "AWS::AutoScaling::LaunchConfiguration"];

fn fail(error: AwsError) -> ProviderError {
    ProviderError::new(format!(
        "{} (Service: {}, Status Code: {})",
        error.message,
        error.code,
        error.status.as_u16()
    ))
}

fn refused(kind: &str) -> ProviderError {
    ProviderError::new(format!(
        "nimbus's EC2 does not serve {kind}: it has one default VPC with a subnet per availability zone (use those), and launch templates rather than launch configurations"
    ))
}

/// A CloudFormation value in the Query API's form: every scalar as text (lists stay lists).
pub(crate) fn query_form(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), query_form(v))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(query_form).collect()),
        Value::Null => Value::Null,
        other => Value::String(text(other)),
    }
}

/// `TagSpecification` for `resource_type`: the template's `Tags` and the stack's own.
fn tag_spec(request: &ResourceRequest, resource_type: &str) -> Value {
    let mut tags: Vec<Value> = request.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect();
    for tag in request.property("Tags").and_then(Value::as_array).into_iter().flatten() {
        tags.push(
            json!({"Key": tag.get("Key").map(text), "Value": tag.get("Value").map(text).unwrap_or_default()}),
        );
    }
    json!([{ "ResourceType": resource_type, "Tag": tags }])
}

fn attributes(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

fn gone(error: &ProviderError) -> bool {
    error.message.contains("NotFound") || error.message.contains("does not exist")
}

impl Ec2 {
    /// `action` in the stack's region; one EC2 does not serve is refused, as a request signed for it.
    fn run(&self, action: &str, region: &str, input: Value) -> Result<Value, ProviderError> {
        let region = crate::api::served_region(region, &self.identity.region).map_err(fail)?;
        tokio::task::block_in_place(|| self.dispatch(action, &region, &input)).map_err(fail)
    }

    fn cfn_create(&self, request: &ResourceRequest) -> Result<Provisioned, ProviderError> {
        let region = request.region.as_str();
        let kind = request.resource_type.as_str();
        match kind {
            INSTANCE => {
                let mut input = Map::new();
                for name in [
                    "ImageId",
                    "InstanceType",
                    "UserData",
                    "KeyName",
                    "SubnetId",
                    "InstanceInitiatedShutdownBehavior",
                    "IamInstanceProfile",
                    "LaunchTemplate",
                    "MetadataOptions",
                ] {
                    if let Some(value) = request.property(name) {
                        input.insert(name.to_owned(), query_form(value));
                    }
                }
                if let Some(zone) = request.property("AvailabilityZone") {
                    input.insert("Placement".into(), json!({"AvailabilityZone": text(zone)}));
                }
                for (property, parameter) in
                    [("SecurityGroupIds", "SecurityGroupId"), ("SecurityGroups", "SecurityGroup")]
                {
                    if let Some(value) = request.property(property) {
                        input.insert(parameter.into(), query_form(value));
                    }
                }
                input.insert("MinCount".into(), json!("1"));
                input.insert("MaxCount".into(), json!("1"));
                input.insert("TagSpecification".into(), tag_spec(request, "instance"));
                let answer = self.run("RunInstances", region, Value::Object(input))?;
                let instance = answer["instancesSet"][0].clone();
                let id = instance["instanceId"].as_str().unwrap_or_default().to_owned();
                Ok(Provisioned {
                    attributes: attributes(&[
                        ("InstanceId", json!(id)),
                        ("PrivateIp", instance["privateIpAddress"].clone()),
                        (
                            "PublicIp",
                            instance
                                .get("ipAddress")
                                .cloned()
                                .unwrap_or(instance["privateIpAddress"].clone()),
                        ),
                        ("PrivateDnsName", instance["privateDnsName"].clone()),
                        ("PublicDnsName", instance["dnsName"].clone()),
                        ("AvailabilityZone", instance["placement"]["availabilityZone"].clone()),
                        ("VpcId", instance["vpcId"].clone()),
                    ]),
                    physical_id: id,
                })
            }
            SECURITY_GROUP => {
                let name = request
                    .string("GroupName")
                    .map(str::to_owned)
                    .unwrap_or_else(|| request.generated_name(255, false));
                let mut input = json!({
                    "GroupName": name,
                    "GroupDescription": request.property("GroupDescription").map(text).unwrap_or_default(),
                    "TagSpecification": tag_spec(request, "security-group"),
                });
                if let Some(vpc) = request.string("VpcId") {
                    input["VpcId"] = json!(vpc);
                }
                let answer = self.run("CreateSecurityGroup", region, input)?;
                let id = answer["groupId"].as_str().unwrap_or_default().to_owned();
                let described = self.run("DescribeSecurityGroups", region, json!({"GroupId": [id]}))?;
                let vpc = described["securityGroupInfo"][0]["vpcId"].clone();
                Ok(Provisioned {
                    attributes: attributes(&[("GroupId", json!(id)), ("VpcId", vpc)]),
                    physical_id: id,
                })
            }
            KEY_PAIR => {
                let name = request
                    .string("KeyName")
                    .ok_or_else(|| ProviderError::new("Property KeyName cannot be empty."))?;
                let mut input = json!({"KeyName": name, "TagSpecification": tag_spec(request, "key-pair")});
                let action = match request.string("PublicKeyMaterial") {
                    Some(material) => {
                        input["PublicKeyMaterial"] = json!(material);
                        "ImportKeyPair"
                    }
                    None => {
                        input["KeyType"] = json!(request.string("KeyType").unwrap_or("rsa"));
                        "CreateKeyPair"
                    }
                };
                let answer = self.run(action, region, input)?;
                Ok(Provisioned {
                    attributes: attributes(&[
                        ("KeyPairId", answer["keyPairId"].clone()),
                        ("KeyFingerprint", answer["keyFingerprint"].clone()),
                    ]),
                    physical_id: name.to_owned(),
                })
            }
            LAUNCH_TEMPLATE => {
                let name = request
                    .string("LaunchTemplateName")
                    .map(str::to_owned)
                    .unwrap_or_else(|| request.generated_name(128, false));
                let mut data = query_form(request.property("LaunchTemplateData").unwrap_or(&json!({})));
                if let Some(ids) = data.as_object_mut().and_then(|d| d.remove("SecurityGroupIds")) {
                    data["SecurityGroupId"] = ids;
                }
                let input = json!({"LaunchTemplateName": name, "LaunchTemplateData": data});
                let answer = self.run("CreateLaunchTemplate", region, input)?;
                let template = &answer["launchTemplate"];
                let id = template["launchTemplateId"].as_str().unwrap_or_default().to_owned();
                Ok(Provisioned {
                    attributes: attributes(&[
                        ("LaunchTemplateId", json!(id)),
                        ("DefaultVersionNumber", json!(text(&template["defaultVersionNumber"]))),
                        ("LatestVersionNumber", json!(text(&template["latestVersionNumber"]))),
                    ]),
                    physical_id: id,
                })
            }
            other => Err(refused(other)),
        }
    }

    fn cfn_delete(&self, request: &ResourceRequest, id: &str) -> Result<(), ProviderError> {
        let region = request.region.as_str();
        let result = match request.resource_type.as_str() {
            INSTANCE => self.run("TerminateInstances", region, json!({"InstanceId": [id]})),
            SECURITY_GROUP => self.run("DeleteSecurityGroup", region, json!({"GroupId": id})),
            KEY_PAIR => self.run("DeleteKeyPair", region, json!({"KeyName": id})),
            LAUNCH_TEMPLATE => self.run("DeleteLaunchTemplate", region, json!({"LaunchTemplateId": id})),
            _ => return Ok(()),
        };
        match result {
            Err(error) if gone(&error) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

impl ResourceProvider for Ec2 {
    fn resource_types(&self) -> &'static [&'static str] {
        RESOURCE_TYPES
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        match resource_type {
            // nimbus changes no instance in place: a change is a new instance.
            INSTANCE => !matches!(property, "Tags"),
            SECURITY_GROUP => matches!(property, "GroupName" | "GroupDescription" | "VpcId"),
            KEY_PAIR => !matches!(property, "Tags"),
            LAUNCH_TEMPLATE => property == "LaunchTemplateName" || property == "LaunchTemplateData",
            _ => true,
        }
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            if UNSERVED.contains(&request.resource_type.as_str()) {
                return Err(refused(&request.resource_type));
            }
            let created = self.cfn_create(&request)?;
            if request.resource_type == INSTANCE {
                self.cfn_running(&request.region, &created.physical_id).await?;
            }
            Ok(created)
        })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        _previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            // Only tags change in place: they are rewritten.
            let tags = tag_spec(&request, "instance")[0]["Tag"].clone();
            let input = json!({"ResourceId": [physical_id], "Tag": tags});
            if request.resource_type == INSTANCE || request.resource_type == SECURITY_GROUP {
                self.run("CreateTags", &request.region, input)?;
            }
            self.cfn_described(&request, physical_id)
        })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move { self.cfn_delete(&request, &physical_id) })
    }
}

/// How long an instance's create waits for it to run (CloudFormation's create completes then).
const RUNNING_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

impl Ec2 {
    /// Waits until instance `id` is `running`; one that ends first fails the resource.
    async fn cfn_running(&self, region: &str, id: &str) -> Result<(), ProviderError> {
        let deadline = std::time::Instant::now() + RUNNING_WAIT;
        loop {
            let answer = self.run("DescribeInstances", region, json!({"InstanceId": [id]}))?;
            let state = answer["reservationSet"][0]["instancesSet"][0]["instanceState"]["name"].clone();
            match state.as_str() {
                Some("running") => return Ok(()),
                Some(ended @ ("shutting-down" | "terminated" | "stopping" | "stopped")) => {
                    return Err(ProviderError::new(format!("Instance {id} is {ended} instead of running")))
                }
                _ if std::time::Instant::now() > deadline => {
                    return Err(ProviderError::new(format!(
                        "Instance {id} did not reach running within {} seconds",
                        RUNNING_WAIT.as_secs()
                    )))
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }

    /// The attributes of a resource that stays, read back.
    fn cfn_described(&self, request: &ResourceRequest, id: String) -> Result<Provisioned, ProviderError> {
        let region = request.region.as_str();
        let mut out = Provisioned { physical_id: id.clone(), attributes: Map::new() };
        if request.resource_type == INSTANCE {
            let answer = self.run("DescribeInstances", region, json!({"InstanceId": [id]}))?;
            let instance = &answer["reservationSet"][0]["instancesSet"][0];
            out.attributes = attributes(&[
                ("InstanceId", json!(id)),
                ("PrivateIp", instance["privateIpAddress"].clone()),
                (
                    "PublicIp",
                    instance.get("ipAddress").cloned().unwrap_or(instance["privateIpAddress"].clone()),
                ),
                ("AvailabilityZone", instance["placement"]["availabilityZone"].clone()),
            ]);
        } else if request.resource_type == SECURITY_GROUP {
            out.attributes = attributes(&[("GroupId", json!(id))]);
        }
        Ok(out)
    }
}

impl AutoScaling {
    fn run(&self, action: &str, region: &str, input: Value) -> Result<Option<Value>, ProviderError> {
        let region = crate::api::served_region(region, &self.0.identity.region).map_err(fail)?;
        tokio::task::block_in_place(|| self.dispatch(action, &region, &input)).map_err(fail)
    }

    /// The group's parameters: CloudFormation's property names are the API's.
    fn group_input(request: &ResourceRequest, name: &str) -> Value {
        let mut input = Map::new();
        for property in [
            "MinSize",
            "MaxSize",
            "DesiredCapacity",
            "LaunchTemplate",
            "MixedInstancesPolicy",
            "AvailabilityZones",
            "HealthCheckType",
            "HealthCheckGracePeriod",
            "DefaultCooldown",
            "CapacityRebalance",
        ] {
            if let Some(value) = request.property(property) {
                input.insert(property.to_owned(), query_form(value));
            }
        }
        if let Some(subnets) = request.property("VPCZoneIdentifier") {
            let joined = match subnets {
                Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
                other => text(other),
            };
            input.insert("VPCZoneIdentifier".into(), json!(joined));
        }
        let mut tags: Vec<Value> = request
            .tags
            .iter()
            .map(|(k, v)| json!({"Key": k, "Value": v, "PropagateAtLaunch": "true"}))
            .collect();
        if let Some(Value::Array(items)) = request.property("Tags") {
            tags.extend(items.iter().map(query_form));
        }
        input.insert("Tags".into(), Value::Array(tags));
        input.insert("AutoScalingGroupName".into(), json!(name));
        Value::Object(input)
    }

    /// `AWS::AutoScaling::ScalingPolicy`: put under `name`; its `Ref` is the policy's ARN.
    fn put_policy(&self, request: &ResourceRequest, name: &str) -> Result<Provisioned, ProviderError> {
        let mut input = Map::new();
        for property in [
            "AutoScalingGroupName",
            "PolicyType",
            "AdjustmentType",
            "ScalingAdjustment",
            "Cooldown",
            "StepAdjustments",
            "MetricAggregationType",
            "EstimatedInstanceWarmup",
            "MinAdjustmentMagnitude",
            "TargetTrackingConfiguration",
        ] {
            if let Some(value) = request.property(property) {
                input.insert(property.to_owned(), query_form(value));
            }
        }
        input.insert("PolicyName".into(), json!(name));
        let answer = self.run("PutScalingPolicy", &request.region, Value::Object(input))?.unwrap_or_default();
        let arn = answer["PolicyARN"].as_str().unwrap_or_default().to_owned();
        Ok(Provisioned {
            physical_id: arn.clone(),
            attributes: attributes(&[("Arn", json!(arn)), ("PolicyName", json!(name))]),
        })
    }
}

/// A scaling policy's name, from its ARN (`…:policyName/<name>`).
fn policy_name(arn: &str) -> &str {
    arn.rsplit_once(":policyName/").map_or(arn, |(_, name)| name)
}

impl ResourceProvider for AutoScaling {
    fn resource_types(&self) -> &'static [&'static str] {
        AUTOSCALING_RESOURCE_TYPES
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        match resource_type {
            SCALING_POLICY => property == "AutoScalingGroupName",
            _ => resource_type != ASG || property == "AutoScalingGroupName",
        }
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            if request.resource_type == SCALING_POLICY {
                return self.put_policy(&request, &request.generated_name(255, false));
            }
            if request.resource_type != ASG {
                return Err(refused(&request.resource_type));
            }
            let name = request
                .string("AutoScalingGroupName")
                .map(str::to_owned)
                .unwrap_or_else(|| request.generated_name(255, false));
            self.run("CreateAutoScalingGroup", &request.region, Self::group_input(&request, &name))?;
            Ok(Provisioned { physical_id: name, attributes: Map::new() })
        })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        _previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            if request.resource_type == SCALING_POLICY {
                return self.put_policy(&request, policy_name(&physical_id));
            }
            let mut input = Self::group_input(&request, &physical_id);
            if let Some(object) = input.as_object_mut() {
                object.remove("Tags");
            }
            self.run("UpdateAutoScalingGroup", &request.region, input)?;
            Ok(Provisioned { physical_id, attributes: Map::new() })
        })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            if request.resource_type == SCALING_POLICY {
                let input = json!({"PolicyName": physical_id});
                return match self.run("DeletePolicy", &request.region, input) {
                    Err(error) if error.message.contains("No such policy") => Ok(()),
                    other => other.map(|_| ()),
                };
            }
            if request.resource_type != ASG {
                return Ok(());
            }
            let input = json!({"AutoScalingGroupName": physical_id, "ForceDelete": "true"});
            match self.run("DeleteAutoScalingGroup", &request.region, input) {
                Err(error) if error.message.contains("not found") => Ok(()),
                other => other.map(|_| ()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: &str, properties: Value) -> ResourceRequest {
        ResourceRequest::example("stack", "Res", kind, properties)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn groups_and_keys_are_created_tagged_and_deleted_once() {
        let fixture = crate::tests::Fixture::new(4);
        let ec2 = fixture.open();
        let group = ec2.create(request(SECURITY_GROUP, json!({"GroupDescription": "web"}))).await.unwrap();
        assert!(group.physical_id.starts_with("sg-") && group.attributes["VpcId"].as_str().is_some());
        let described =
            ec2.run("DescribeSecurityGroups", "us-east-1", json!({"GroupId": [group.physical_id]})).unwrap();
        let info = &described["securityGroupInfo"][0];
        assert!(info["groupName"].as_str().unwrap().starts_with("stack-Res-"));
        assert!(info.to_string().contains("aws:cloudformation:stack-name"));
        let key = ec2.create(request(KEY_PAIR, json!({"KeyName": "k1"}))).await.unwrap();
        assert_eq!(key.physical_id, "k1");
        for (kind, id) in [(SECURITY_GROUP, group.physical_id), (KEY_PAIR, key.physical_id)] {
            ec2.delete(request(kind, json!({})), id.clone()).await.unwrap();
            ec2.delete(request(kind, json!({})), id).await.unwrap();
        }
        let error = ec2.create(request("AWS::EC2::VPC", json!({}))).await.unwrap_err();
        assert!(error.message.contains("does not serve AWS::EC2::VPC"), "{error}");
    }

    #[test]
    fn template_values_take_the_query_form() {
        let value = json!({"MinSize": 1, "Flag": true, "Ids": ["a", 2], "Nested": {"N": 3}});
        assert_eq!(
            query_form(&value),
            json!({"MinSize": "1", "Flag": "true", "Ids": ["a", "2"], "Nested": {"N": "3"}})
        );
    }
}
