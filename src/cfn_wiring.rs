//! CloudFormation's reach into the other services: the providers of services that open on
//! first use (a stack naming a topic opens SNS then, not nimbus's start), and the SAM
//! transform applied wherever a template names it.

use std::sync::Arc;

use nimbus_api::provider::{ProviderError, ProviderFuture, Provisioned, ResourceProvider, ResourceRequest};
use nimbus_api::Service;
use serde_json::{Map, Value};

use crate::lazy::Lazy;

/// A provider whose service opens on its first resource.
pub struct LazyProvider<S> {
    lazy: Arc<Lazy<S>>,
    types: &'static [&'static str],
}

impl<S> LazyProvider<S> {
    pub fn new(lazy: Arc<Lazy<S>>, types: &'static [&'static str]) -> Arc<LazyProvider<S>> {
        Arc::new(LazyProvider { lazy, types })
    }
}

impl<S: Service + ResourceProvider> LazyProvider<S> {
    async fn open(&self) -> Result<Arc<S>, ProviderError> {
        self.lazy.get().await.map_err(ProviderError::new)
    }
}

impl<S: Service + ResourceProvider> ResourceProvider for LazyProvider<S> {
    fn resource_types(&self) -> &'static [&'static str] {
        self.types
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        let opened = match self.lazy.opened() {
            Some(service) => Ok(service.clone()),
            None => tokio::task::block_in_place(|| self.lazy.get_blocking()),
        };
        opened.is_ok_and(|service| service.replaces(resource_type, property))
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move { self.open().await?.create(request).await })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move { self.open().await?.update(request, physical_id, previous).await })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move { self.open().await?.delete(request, physical_id).await })
    }
}

/// `AWS::Serverless-2016-10-31`, by nimbus's own transform (crates/sam).
pub struct SamTransform;

impl nimbus_cloudformation::Transforms for SamTransform {
    fn apply(
        &self,
        name: &str,
        input: &nimbus_cloudformation::TransformInput<'_>,
    ) -> Option<Result<Value, String>> {
        if name != nimbus_sam::TRANSFORM_NAME {
            return None;
        }
        let mut context = nimbus_sam::Context::new(input.region, input.account, input.stack);
        context.parameters.extend(input.parameters.clone());
        // YAML keeps its key order, which SAM's output follows in places.
        for (path, keys) in nimbus_template::key_order(input.text) {
            context.source_order.insert(path, keys);
        }
        Some(nimbus_sam::transform(input.template, &context).map_err(|error| error.to_string()))
    }
}

/// A provider whose definitions may live in S3 (`BodyS3Location` of API Gateway's APIs): the
/// object is read from nimbus's S3 and handed on as `Body`.
pub struct S3Bodies {
    inner: Arc<dyn ResourceProvider>,
    s3: Arc<nimbus_s3::S3>,
}

impl S3Bodies {
    pub fn new(inner: Arc<dyn ResourceProvider>, s3: Arc<nimbus_s3::S3>) -> Arc<S3Bodies> {
        Arc::new(S3Bodies { inner, s3 })
    }

    fn resolve(&self, mut request: ResourceRequest) -> Result<ResourceRequest, ProviderError> {
        if request.property("Body").is_some() {
            return Ok(request);
        }
        let Some(location) = request.property("BodyS3Location").cloned() else { return Ok(request) };
        let field = |name: &str| location.get(name).and_then(Value::as_str).map(str::to_owned);
        let (Some(bucket), Some(key)) = (field("Bucket"), field("Key")) else {
            return Err(ProviderError::new("BodyS3Location needs Bucket and Key"));
        };
        let bytes = self
            .s3
            .read_object(&bucket, &key, field("Version").as_deref())
            .map_err(|e| ProviderError::new(format!("BodyS3Location s3://{bucket}/{key}: {}", e.message)))?;
        let text = String::from_utf8(bytes).map_err(|_| {
            ProviderError::new(format!("BodyS3Location s3://{bucket}/{key} is not UTF-8 text"))
        })?;
        request.properties.insert("Body".into(), Value::String(text));
        Ok(request)
    }
}

impl ResourceProvider for S3Bodies {
    fn resource_types(&self) -> &'static [&'static str] {
        self.inner.resource_types()
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        self.inner.replaces(resource_type, property)
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move { self.inner.create(self.resolve(request)?).await })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move { self.inner.update(self.resolve(request)?, physical_id, previous).await })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        self.inner.delete(request, physical_id)
    }
}

/// CodeDeploy's traffic shifting for aliases whose update policy is
/// `CodeDeployLambdaAliasUpdate` (the alias's update waits for the deployment).
pub struct CodeDeployShifts(pub Arc<Lazy<nimbus_codedeploy::CodeDeploy>>);

impl nimbus_cloudformation::AliasDeployments for CodeDeployShifts {
    fn shift<'a>(
        &'a self,
        request: &'a ResourceRequest,
        previous: &'a Map<String, Value>,
        policy: &'a Value,
    ) -> nimbus_cloudformation::ShiftFuture<'a> {
        Box::pin(async move {
            let codedeploy = self.0.get().await?;
            let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
            let function = text(request.property("FunctionName")).unwrap_or_default();
            // The function may be named by ARN; the alias belongs to its name.
            let function = function.split(':').nth(6).map(str::to_owned).unwrap_or(function);
            let shift = nimbus_codedeploy::AliasShift {
                application: text(policy.get("ApplicationName")).unwrap_or_default(),
                group: text(policy.get("DeploymentGroupName")).unwrap_or_default(),
                function,
                alias: text(request.property("Name")).unwrap_or_default(),
                from: text(previous.get("FunctionVersion")).unwrap_or_default(),
                to: text(request.property("FunctionVersion")).unwrap_or_default(),
                before_hook: text(policy.get("BeforeAllowTrafficHook")),
                after_hook: text(policy.get("AfterAllowTrafficHook")),
            };
            codedeploy.shift_alias(shift).await.map(|_| ())
        })
    }
}

/// What CodeDeploy's deployments reach: Lambda's aliases and functions, CloudWatch's alarms.
pub struct CodeDeployTargets {
    /// Lambda of every region (a function named by ARN is found in its region).
    pub lambda: Arc<dyn Service>,
    pub metrics: Arc<dyn Service>,
}

impl nimbus_codedeploy::Targets for CodeDeployTargets {
    fn route<'a>(
        &'a self,
        function: &'a str,
        alias: &'a str,
        version: &'a str,
        extra: Option<(&'a str, f64)>,
    ) -> nimbus_codedeploy::TargetFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let weights = match extra {
                Some((other, weight)) => serde_json::json!({ other: weight }),
                None => serde_json::json!({}),
            };
            let body = serde_json::json!({
                "FunctionVersion": version,
                "RoutingConfig": {"AdditionalVersionWeights": weights},
            });
            let path = format!("/2015-03-31/functions/{function}/aliases/{alias}");
            let headers = [("content-type", "application/json")];
            nimbus_api::provider::call(
                self.lambda.as_ref(),
                hyper::Method::PUT,
                &path,
                &headers,
                body.to_string().into_bytes(),
            )
            .await
            .map(|_| ())
            .map_err(|e| e.message)
        })
    }

    fn invoke<'a>(
        &'a self,
        function: &'a str,
        payload: Vec<u8>,
    ) -> nimbus_codedeploy::TargetFuture<'a, Result<(), String>> {
        use nimbus_cloudformation::Functions;
        let functions = crate::wiring::CfnFunctions(self.lambda.clone());
        Box::pin(async move { functions.invoke_async(function, payload).await })
    }

    fn alarms_in_alarm<'a>(
        &'a self,
        names: &'a [String],
    ) -> nimbus_codedeploy::TargetFuture<'a, Vec<String>> {
        Box::pin(async move {
            let body = serde_json::json!({ "AlarmNames": names }).to_string().into_bytes();
            let headers = [
                ("x-amz-target", "GraniteServiceVersion20100801.DescribeAlarms"),
                ("content-type", "application/x-amz-json-1.0"),
            ];
            let Ok(bytes) =
                nimbus_api::provider::call(self.metrics.as_ref(), hyper::Method::POST, "/", &headers, body)
                    .await
            else {
                return Vec::new();
            };
            let answer: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            ["MetricAlarms", "CompositeAlarms"]
                .iter()
                .flat_map(|kind| answer[kind].as_array().cloned().unwrap_or_default())
                .filter(|alarm| alarm["StateValue"] == "ALARM")
                .filter_map(|alarm| alarm["AlarmName"].as_str().map(str::to_owned))
                .collect()
        })
    }
}

type MakeProvider = Box<dyn Fn(&str, &str) -> Result<Arc<dyn ResourceProvider>, String> + Send + Sync>;

/// A provider per region and account: a stack's resources are made in the stack's region (its
/// `ResourceRequest`'s), by the provider `make` gives for it.
pub struct PerRegion {
    types: &'static [&'static str],
    /// Nimbus's own region's, which also answers `replaces` (the same in every region).
    home: Arc<dyn ResourceProvider>,
    make: MakeProvider,
    made: std::sync::Mutex<crate::regional::Instances<Arc<dyn ResourceProvider>>>,
}

impl PerRegion {
    pub fn new(
        home: Arc<dyn ResourceProvider>,
        make: impl Fn(&str, &str) -> Result<Arc<dyn ResourceProvider>, String> + Send + Sync + 'static,
    ) -> Arc<PerRegion> {
        let types = home.resource_types();
        Arc::new(PerRegion { types, home, make: Box::new(make), made: Default::default() })
    }

    /// For a service that lives per region: its provider, opened on first use, in each region.
    pub fn lazy<S: Service + ResourceProvider + 'static>(
        regional: Arc<crate::regional::Regional<S>>,
        types: &'static [&'static str],
    ) -> Arc<PerRegion> {
        let home = LazyProvider::new(regional.home().clone(), types);
        PerRegion::new(home, move |region, account| {
            Ok(LazyProvider::new(regional.at(region, account)?, types) as Arc<dyn ResourceProvider>)
        })
    }

    fn provider(&self, request: &ResourceRequest) -> Result<Arc<dyn ResourceProvider>, ProviderError> {
        let key = (request.region.clone(), request.account.clone());
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(provider) = made.get(&key) {
            return Ok(provider.clone());
        }
        let provider = (self.make)(&request.region, &request.account).map_err(ProviderError::new)?;
        made.insert(key, provider.clone());
        Ok(provider)
    }
}

impl ResourceProvider for PerRegion {
    fn resource_types(&self) -> &'static [&'static str] {
        self.types
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        self.home.replaces(resource_type, property)
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move { self.provider(&request)?.create(request).await })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move { self.provider(&request)?.update(request, physical_id, previous).await })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move { self.provider(&request)?.delete(request, physical_id).await })
    }
}

/// A service's requests signed for one region and account (for providers that call their
/// service over its wire protocol, as a client in that region would).
pub struct SignedFor {
    service: Arc<dyn Service>,
    authorization: hyper::header::HeaderValue,
}

impl SignedFor {
    pub fn wrap(service: Arc<dyn Service>, region: &str, account: &str) -> Result<Arc<dyn Service>, String> {
        let name = service.name();
        let auth = nimbus_api::scope::authorization(account, region, name);
        let authorization = auth.parse().map_err(|_| format!("not a region: {region}"))?;
        Ok(Arc::new(SignedFor { service, authorization }))
    }
}

impl Service for SignedFor {
    fn name(&self) -> &'static str {
        self.service.name()
    }

    fn claims(&self, method: &hyper::Method, uri: &hyper::Uri, headers: &hyper::HeaderMap) -> bool {
        self.service.claims(method, uri, headers)
    }

    fn call(&self, mut request: nimbus_api::ApiRequest) -> nimbus_api::ServiceFuture<'_> {
        request.headers.insert("authorization", self.authorization.clone());
        self.service.call(request)
    }
}
