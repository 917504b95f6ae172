//! IAM's resource types for CloudFormation (Role, Policy, ManagedPolicy, InstanceProfile),
//! stored through IAM's own API in-process. Policies are kept, not enforced.

use std::sync::Arc;

use hyper::Method;
use nimbus_api::provider::{
    call, document, text, xml_field, ProviderError, ProviderFuture, Provisioned, ResourceProvider,
    ResourceRequest,
};
use nimbus_api::Service;
use serde_json::{Map, Value};

pub struct IamProvider {
    iam: Arc<dyn Service>,
}

fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items.iter().map(text).collect(),
        _ => Vec::new(),
    }
}

/// Inline policies `[{PolicyName, PolicyDocument}]` as name → document.
fn inline(value: Option<&Value>) -> Vec<(String, String)> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| {
                (
                    p.get("PolicyName").map(text).unwrap_or_default(),
                    p.get("PolicyDocument").map(document).unwrap_or_default(),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn missing(name: &str) -> ProviderError {
    ProviderError::new(format!("Property {name} cannot be empty."))
}

/// The kinds a policy attaches to: (property, API noun, name parameter).
const ROLE: (&str, &str) = ("Role", "RoleName");
const USER: (&str, &str) = ("User", "UserName");
const GROUP: (&str, &str) = ("Group", "GroupName");

const TARGETS: [(&str, &str, &str); 3] =
    [("Roles", "Role", "RoleName"), ("Users", "User", "UserName"), ("Groups", "Group", "GroupName")];

impl IamProvider {
    pub fn new(iam: Arc<dyn Service>) -> IamProvider {
        IamProvider { iam }
    }

    async fn action(&self, action: &str, params: &[(&str, String)]) -> Result<String, ProviderError> {
        let mut body = format!("Action={action}&Version=2010-05-08");
        for (key, value) in params {
            body.push_str(&format!("&{key}={}", encode(value)));
        }
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        let bytes = call(self.iam.as_ref(), Method::POST, "/", &headers, body.into_bytes()).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Deletes, ignoring "already gone".
    async fn forget(&self, action: &str, params: &[(&str, String)]) -> Result<(), ProviderError> {
        match self.action(action, params).await {
            Err(error)
                if error.message.contains("NoSuchEntity") || error.message.contains("cannot be found") =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// Brings a role's, user's or group's managed and inline policies to the template's.
    async fn sync_policies(
        &self,
        (noun, param): (&str, &str),
        name: &str,
        request: &ResourceRequest,
        previous: Option<&Map<String, Value>>,
    ) -> Result<(), ProviderError> {
        let (old_managed, new_managed) = (
            previous.map(|p| list(p.get("ManagedPolicyArns"))).unwrap_or_default(),
            list(request.property("ManagedPolicyArns")),
        );
        for arn in old_managed.iter().filter(|a| !new_managed.contains(a)) {
            self.forget(&format!("Detach{noun}Policy"), &[(param, name.into()), ("PolicyArn", arn.clone())])
                .await?;
        }
        for arn in new_managed.iter().filter(|a| !old_managed.contains(a)) {
            self.action(&format!("Attach{noun}Policy"), &[(param, name.into()), ("PolicyArn", arn.clone())])
                .await?;
        }
        let (old_inline, new_inline) = (
            previous.map(|p| inline(p.get("Policies"))).unwrap_or_default(),
            inline(request.property("Policies")),
        );
        for (policy, _) in old_inline.iter().filter(|(n, _)| !new_inline.iter().any(|(m, _)| m == n)) {
            self.forget(
                &format!("Delete{noun}Policy"),
                &[(param, name.into()), ("PolicyName", policy.clone())],
            )
            .await?;
        }
        for (policy, doc) in &new_inline {
            if !old_inline.contains(&(policy.clone(), doc.clone())) {
                let params =
                    [(param, name.into()), ("PolicyName", policy.clone()), ("PolicyDocument", doc.clone())];
                self.action(&format!("Put{noun}Policy"), &params).await?;
            }
        }
        Ok(())
    }

    /// Deletes a role's, user's or group's policies (before the principal itself).
    async fn drop_policies(
        &self,
        (noun, param): (&str, &str),
        name: &str,
        request: &ResourceRequest,
    ) -> Result<(), ProviderError> {
        for arn in list(request.property("ManagedPolicyArns")) {
            self.forget(&format!("Detach{noun}Policy"), &[(param, name.into()), ("PolicyArn", arn)]).await?;
        }
        for (policy, _) in inline(request.property("Policies")) {
            self.forget(&format!("Delete{noun}Policy"), &[(param, name.into()), ("PolicyName", policy)])
                .await?;
        }
        Ok(())
    }

    async fn role_provisioned(&self, name: String) -> Result<Provisioned, ProviderError> {
        let got = self.action("GetRole", &[("RoleName", name.clone())]).await?;
        let mut attributes = Map::new();
        attributes.insert("Arn".into(), xml_field(&got, "Arn").unwrap_or_default().into());
        attributes.insert("RoleId".into(), xml_field(&got, "RoleId").unwrap_or_default().into());
        Ok(Provisioned { physical_id: name, attributes })
    }

    /// Attaches (or puts, for inline policies) a policy to every role, user and group it names.
    async fn attach_all(
        &self,
        request: &ResourceRequest,
        inline_policy: bool,
        detach: bool,
        policy: &str,
    ) -> Result<(), ProviderError> {
        for (property, noun, param) in TARGETS {
            for target in list(request.property(property)) {
                let (action, params) = match (inline_policy, detach) {
                    (true, false) => (
                        format!("Put{noun}Policy"),
                        vec![
                            (param, target),
                            ("PolicyName", policy.to_owned()),
                            (
                                "PolicyDocument",
                                request.property("PolicyDocument").map(document).unwrap_or_default(),
                            ),
                        ],
                    ),
                    (true, true) => (
                        format!("Delete{noun}Policy"),
                        vec![(param, target), ("PolicyName", policy.to_owned())],
                    ),
                    (false, false) => (
                        format!("Attach{noun}Policy"),
                        vec![(param, target), ("PolicyArn", policy.to_owned())],
                    ),
                    (false, true) => (
                        format!("Detach{noun}Policy"),
                        vec![(param, target), ("PolicyArn", policy.to_owned())],
                    ),
                };
                if detach {
                    self.forget(&action, &params).await?;
                } else {
                    self.action(&action, &params).await?;
                }
            }
        }
        Ok(())
    }
}

impl ResourceProvider for IamProvider {
    fn resource_types(&self) -> &'static [&'static str] {
        &[
            "AWS::IAM::Role",
            "AWS::IAM::Policy",
            "AWS::IAM::ManagedPolicy",
            "AWS::IAM::InstanceProfile",
            "AWS::IAM::User",
            "AWS::IAM::Group",
            "AWS::IAM::AccessKey",
        ]
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        match resource_type {
            "AWS::IAM::Role" => matches!(property, "RoleName" | "Path"),
            "AWS::IAM::ManagedPolicy" => matches!(property, "ManagedPolicyName" | "Path" | "Description"),
            "AWS::IAM::InstanceProfile" => matches!(property, "InstanceProfileName" | "Path"),
            "AWS::IAM::User" => matches!(property, "UserName" | "Path"),
            "AWS::IAM::Group" => matches!(property, "GroupName" | "Path"),
            "AWS::IAM::AccessKey" => matches!(property, "UserName" | "Serial"),
            _ => false,
        }
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            match request.resource_type.as_str() {
                "AWS::IAM::Role" => {
                    let name = request
                        .string("RoleName")
                        .map(str::to_owned)
                        .unwrap_or_else(|| request.generated_name(64, false));
                    let trust = request
                        .property("AssumeRolePolicyDocument")
                        .map(document)
                        .ok_or_else(|| missing("AssumeRolePolicyDocument"))?;
                    let mut params = vec![("RoleName", name.clone()), ("AssumeRolePolicyDocument", trust)];
                    for key in ["Path", "Description", "MaxSessionDuration", "PermissionsBoundary"] {
                        if let Some(v) = request.property(key) {
                            params.push((key, text(v)));
                        }
                    }
                    self.action("CreateRole", &params).await?;
                    if let Err(error) = self.sync_policies(ROLE, &name, &request, None).await {
                        let _ = self.delete(request.clone(), name.clone()).await;
                        return Err(error);
                    }
                    self.role_provisioned(name).await
                }
                "AWS::IAM::Policy" => {
                    let name = request.string("PolicyName").ok_or_else(|| missing("PolicyName"))?.to_owned();
                    self.attach_all(&request, true, false, &name).await?;
                    let physical = request.generated_name(128, false);
                    Ok(Provisioned { physical_id: physical, attributes: Map::new() })
                }
                "AWS::IAM::ManagedPolicy" => {
                    let name = request
                        .string("ManagedPolicyName")
                        .map(str::to_owned)
                        .unwrap_or_else(|| request.generated_name(128, false));
                    let doc = request
                        .property("PolicyDocument")
                        .map(document)
                        .ok_or_else(|| missing("PolicyDocument"))?;
                    let mut params = vec![("PolicyName", name), ("PolicyDocument", doc)];
                    for key in ["Path", "Description"] {
                        if let Some(v) = request.property(key) {
                            params.push((key, text(v)));
                        }
                    }
                    let created = self.action("CreatePolicy", &params).await?;
                    let arn = xml_field(&created, "Arn").unwrap_or_default();
                    self.attach_all(&request, false, false, &arn).await?;
                    let mut attributes = Map::new();
                    attributes.insert("PolicyArn".into(), arn.clone().into());
                    Ok(Provisioned { physical_id: arn, attributes })
                }
                "AWS::IAM::User" | "AWS::IAM::Group" => {
                    let (kind, (noun, param)) = if request.resource_type == "AWS::IAM::User" {
                        ("User", USER)
                    } else {
                        ("Group", GROUP)
                    };
                    let name = request
                        .string(param)
                        .map(str::to_owned)
                        .unwrap_or_else(|| request.generated_name(64, false));
                    let mut params = vec![(param, name.clone())];
                    if let Some(path) = request.string("Path") {
                        params.push(("Path", path.to_owned()));
                    }
                    let created = self.action(&format!("Create{kind}"), &params).await?;
                    self.sync_policies((noun, param), &name, &request, None).await?;
                    for group in list(request.property("Groups")) {
                        self.action("AddUserToGroup", &[("GroupName", group), ("UserName", name.clone())])
                            .await?;
                    }
                    let mut attributes = Map::new();
                    attributes.insert("Arn".into(), xml_field(&created, "Arn").unwrap_or_default().into());
                    Ok(Provisioned { physical_id: name, attributes })
                }
                "AWS::IAM::AccessKey" => {
                    let user = request.string("UserName").ok_or_else(|| missing("UserName"))?.to_owned();
                    let created = self.action("CreateAccessKey", &[("UserName", user.clone())]).await?;
                    let id = xml_field(&created, "AccessKeyId").unwrap_or_default();
                    if request.string("Status") == Some("Inactive") {
                        let params =
                            [("UserName", user), ("AccessKeyId", id.clone()), ("Status", "Inactive".into())];
                        self.action("UpdateAccessKey", &params).await?;
                    }
                    let mut attributes = Map::new();
                    let secret = xml_field(&created, "SecretAccessKey").unwrap_or_default();
                    attributes.insert("SecretAccessKey".into(), secret.into());
                    Ok(Provisioned { physical_id: id, attributes })
                }
                _ => {
                    let name = request
                        .string("InstanceProfileName")
                        .map(str::to_owned)
                        .unwrap_or_else(|| request.generated_name(128, false));
                    let mut params = vec![("InstanceProfileName", name.clone())];
                    if let Some(path) = request.string("Path") {
                        params.push(("Path", path.to_owned()));
                    }
                    let created = self.action("CreateInstanceProfile", &params).await?;
                    for role in list(request.property("Roles")) {
                        self.action(
                            "AddRoleToInstanceProfile",
                            &[("InstanceProfileName", name.clone()), ("RoleName", role)],
                        )
                        .await?;
                    }
                    let mut attributes = Map::new();
                    attributes.insert("Arn".into(), xml_field(&created, "Arn").unwrap_or_default().into());
                    Ok(Provisioned { physical_id: name, attributes })
                }
            }
        })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            match request.resource_type.as_str() {
                "AWS::IAM::Role" => {
                    if previous.get("AssumeRolePolicyDocument")
                        != request.property("AssumeRolePolicyDocument")
                    {
                        let trust =
                            request.property("AssumeRolePolicyDocument").map(document).unwrap_or_default();
                        self.action(
                            "UpdateAssumeRolePolicy",
                            &[("RoleName", physical_id.clone()), ("PolicyDocument", trust)],
                        )
                        .await?;
                    }
                    self.sync_policies(ROLE, &physical_id, &request, Some(&previous)).await?;
                    self.role_provisioned(physical_id).await
                }
                "AWS::IAM::Policy" => {
                    let mut old = request.clone();
                    old.properties = previous.clone();
                    let old_name = old.string("PolicyName").unwrap_or_default().to_owned();
                    self.attach_all(&old, true, true, &old_name).await?;
                    let name = request.string("PolicyName").ok_or_else(|| missing("PolicyName"))?.to_owned();
                    self.attach_all(&request, true, false, &name).await?;
                    Ok(Provisioned { physical_id, attributes: Map::new() })
                }
                "AWS::IAM::ManagedPolicy" => {
                    if previous.get("PolicyDocument") != request.property("PolicyDocument") {
                        let doc = request.property("PolicyDocument").map(document).unwrap_or_default();
                        let params = [
                            ("PolicyArn", physical_id.clone()),
                            ("PolicyDocument", doc),
                            ("SetAsDefault", "true".into()),
                        ];
                        self.action("CreatePolicyVersion", &params).await?;
                    }
                    let mut old = request.clone();
                    old.properties = previous.clone();
                    self.attach_all(&old, false, true, &physical_id).await?;
                    self.attach_all(&request, false, false, &physical_id).await?;
                    let mut attributes = Map::new();
                    attributes.insert("PolicyArn".into(), physical_id.clone().into());
                    Ok(Provisioned { physical_id, attributes })
                }
                "AWS::IAM::User" | "AWS::IAM::Group" => {
                    let principal = if request.resource_type == "AWS::IAM::User" { USER } else { GROUP };
                    self.sync_policies(principal, &physical_id, &request, Some(&previous)).await?;
                    let (old, new) = (list(previous.get("Groups")), list(request.property("Groups")));
                    for group in old.iter().filter(|g| !new.contains(g)) {
                        let params = [("GroupName", group.clone()), ("UserName", physical_id.clone())];
                        self.forget("RemoveUserFromGroup", &params).await?;
                    }
                    for group in new.iter().filter(|g| !old.contains(g)) {
                        let params = [("GroupName", group.clone()), ("UserName", physical_id.clone())];
                        self.action("AddUserToGroup", &params).await?;
                    }
                    let (noun, param) = principal;
                    let got = self.action(&format!("Get{noun}"), &[(param, physical_id.clone())]).await?;
                    let mut attributes = Map::new();
                    attributes.insert("Arn".into(), xml_field(&got, "Arn").unwrap_or_default().into());
                    Ok(Provisioned { physical_id, attributes })
                }
                "AWS::IAM::AccessKey" => {
                    let user = request.string("UserName").unwrap_or_default().to_owned();
                    let status = request.string("Status").unwrap_or("Active").to_owned();
                    let params =
                        [("UserName", user), ("AccessKeyId", physical_id.clone()), ("Status", status)];
                    self.action("UpdateAccessKey", &params).await?;
                    Ok(Provisioned { physical_id, attributes: Map::new() })
                }
                _ => {
                    let (old, new) = (list(previous.get("Roles")), list(request.property("Roles")));
                    for role in old.iter().filter(|r| !new.contains(r)) {
                        let params =
                            [("InstanceProfileName", physical_id.clone()), ("RoleName", role.clone())];
                        self.forget("RemoveRoleFromInstanceProfile", &params).await?;
                    }
                    for role in new.iter().filter(|r| !old.contains(r)) {
                        let params =
                            [("InstanceProfileName", physical_id.clone()), ("RoleName", role.clone())];
                        self.action("AddRoleToInstanceProfile", &params).await?;
                    }
                    let got = self
                        .action("GetInstanceProfile", &[("InstanceProfileName", physical_id.clone())])
                        .await?;
                    let mut attributes = Map::new();
                    attributes.insert("Arn".into(), xml_field(&got, "Arn").unwrap_or_default().into());
                    Ok(Provisioned { physical_id, attributes })
                }
            }
        })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            match request.resource_type.as_str() {
                "AWS::IAM::Role" => {
                    self.drop_policies(ROLE, &physical_id, &request).await?;
                    self.forget("DeleteRole", &[("RoleName", physical_id)]).await
                }
                "AWS::IAM::User" => {
                    self.drop_policies(USER, &physical_id, &request).await?;
                    for group in list(request.property("Groups")) {
                        let params = [("GroupName", group), ("UserName", physical_id.clone())];
                        self.forget("RemoveUserFromGroup", &params).await?;
                    }
                    self.forget("DeleteUser", &[("UserName", physical_id)]).await
                }
                "AWS::IAM::Group" => {
                    self.drop_policies(GROUP, &physical_id, &request).await?;
                    self.forget("DeleteGroup", &[("GroupName", physical_id)]).await
                }
                "AWS::IAM::AccessKey" => {
                    let user = request.string("UserName").unwrap_or_default().to_owned();
                    self.forget("DeleteAccessKey", &[("UserName", user), ("AccessKeyId", physical_id)]).await
                }
                "AWS::IAM::Policy" => {
                    let name = request.string("PolicyName").unwrap_or_default().to_owned();
                    self.attach_all(&request, true, true, &name).await
                }
                "AWS::IAM::ManagedPolicy" => {
                    self.attach_all(&request, false, true, &physical_id).await?;
                    self.forget("DeletePolicy", &[("PolicyArn", physical_id)]).await
                }
                _ => {
                    for role in list(request.property("Roles")) {
                        let params = [("InstanceProfileName", physical_id.clone()), ("RoleName", role)];
                        self.forget("RemoveRoleFromInstanceProfile", &params).await?;
                    }
                    self.forget("DeleteInstanceProfile", &[("InstanceProfileName", physical_id)]).await
                }
            }
        })
    }
}
