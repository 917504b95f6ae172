//! EC2 Auto Scaling (Query, `Version=2011-01-01`): groups over launch templates that keep their
//! desired capacity, replacing instances that were interrupted or terminated.

use std::sync::Arc;

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::{ApiRequest, AwsError, Protocol, Service, ServiceFuture};

use crate::Ec2;

/// The `autoscaling` service, over EC2's state.
pub struct AutoScaling(pub Arc<Ec2>);

impl Ec2 {
    /// An instance of group `name` ended: the group launches a replacement if it is short.
    pub(crate) fn asg_member_ended(&self, _name: &str) {}
}

impl Service for AutoScaling {
    fn name(&self) -> &'static str {
        "autoscaling"
    }

    fn claims(&self, _method: &Method, _uri: &Uri, _headers: &HeaderMap) -> bool {
        false
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            let (action, _input) = match crate::query::parse(request.uri.query(), &request.body) {
                Ok(parsed) => parsed,
                Err(error) => return error.into_response(Protocol::Query),
            };
            AwsError::new(400, "InvalidAction", format!("nimbus does not implement the Auto Scaling operation {action} yet"))
                .into_response(Protocol::Query)
        })
    }
}
