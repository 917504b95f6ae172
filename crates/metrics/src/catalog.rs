//! The metrics served, their units, and the dimension combinations under which each is
//! published — as AWS publishes Lambda's, plus nimbus's billed GB-seconds.

use crate::bucket::Architecture;

pub const LAMBDA_NAMESPACE: &str = "AWS/Lambda";
/// nimbus's own namespace, so nothing in `AWS/Lambda` differs from what AWS would list.
pub const NIMBUS_NAMESPACE: &str = "Nimbus/Lambda";

pub const FUNCTION_NAME: &str = "FunctionName";
pub const RESOURCE: &str = "Resource";
pub const ARCHITECTURE: &str = "Architecture";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    Invocations,
    Errors,
    Throttles,
    Duration,
    ConcurrentExecutions,
    /// `Nimbus/Lambda` `BilledGBSeconds`: billed duration × memory, what Lambda charges for.
    BilledGbSeconds,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::Invocations,
        Metric::Errors,
        Metric::Throttles,
        Metric::Duration,
        Metric::ConcurrentExecutions,
        Metric::BilledGbSeconds,
    ];

    pub fn find(namespace: &str, name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.namespace() == namespace && m.name() == name)
    }

    pub fn namespace(self) -> &'static str {
        match self {
            Metric::BilledGbSeconds => NIMBUS_NAMESPACE,
            _ => LAMBDA_NAMESPACE,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::Invocations => "Invocations",
            Metric::Errors => "Errors",
            Metric::Throttles => "Throttles",
            Metric::Duration => "Duration",
            Metric::ConcurrentExecutions => "ConcurrentExecutions",
            Metric::BilledGbSeconds => "BilledGBSeconds",
        }
    }

    /// The `StandardUnit` every data point carries.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Duration => "Milliseconds",
            Metric::BilledGbSeconds => "None",
            _ => "Count",
        }
    }

    /// Whether a function version's own series (`Resource` = `name:version`) is published.
    fn per_version(self) -> bool {
        self != Metric::ConcurrentExecutions
    }
}

/// Which series a metric's dimensions select, and for billing which architecture.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Selection {
    pub function: Option<String>,
    pub version: Option<String>,
    pub architecture: Option<Architecture>,
}

impl Selection {
    /// The selection `dimensions` name, or `None` when the metric is not published under that
    /// combination (CloudWatch then has no data points, which is not an error).
    pub fn from_dimensions(metric: Metric, dimensions: &[(String, String)]) -> Option<Selection> {
        let value = |name: &str| {
            let mut matching = dimensions.iter().filter(|(n, _)| n == name);
            matching.next().map(|(_, v)| v.as_str()).filter(|_| matching.next().is_none())
        };
        let (function, resource, architecture) = (value(FUNCTION_NAME), value(RESOURCE), value(ARCHITECTURE));
        let known = [function, resource, architecture].iter().flatten().count();
        if known != dimensions.len() {
            return None;
        }
        let mut selection = Selection { function: function.map(str::to_owned), ..Selection::default() };
        if let Some(resource) = resource {
            let (name, qualifier) = resource.split_once(':')?;
            if !metric.per_version() || Some(name) != function {
                return None;
            }
            selection.version = Some(qualifier.to_owned());
        }
        if let Some(architecture) = architecture {
            if metric != Metric::BilledGbSeconds
                || function.is_some()
                || !["x86_64", "arm64"].contains(&architecture)
            {
                return None;
            }
            selection.architecture = Some(Architecture::parse(architecture));
        }
        Some(selection)
    }

    /// The dimensions naming this selection, as CloudWatch lists them.
    pub fn dimensions(&self) -> Vec<(&'static str, String)> {
        let mut dimensions = Vec::new();
        if let Some(function) = &self.function {
            dimensions.push((FUNCTION_NAME, function.clone()));
            if let Some(version) = &self.version {
                dimensions.push((RESOURCE, format!("{function}:{version}")));
            }
        }
        if let Some(architecture) = self.architecture {
            dimensions.push((ARCHITECTURE, architecture.as_str().to_owned()));
        }
        dimensions
    }

    pub fn accepts(&self, function: &str, version: &str) -> bool {
        self.function.as_deref().is_none_or(|f| f == function)
            && self.version.as_deref().is_none_or(|v| v == version)
    }

    /// Every selection under which `metric` is published for a series of `function` `version`
    /// that ran on `architectures`.
    pub fn published(
        metric: Metric,
        function: &str,
        version: &str,
        architectures: &[Architecture],
    ) -> Vec<Selection> {
        let named = Selection { function: Some(function.to_owned()), ..Selection::default() };
        let mut all = vec![Selection::default(), named.clone()];
        if metric.per_version() {
            all.push(Selection { version: Some(version.to_owned()), ..named });
        }
        if metric == Metric::BilledGbSeconds {
            let by_architecture =
                |a: &Architecture| Selection { architecture: Some(*a), ..Selection::default() };
            all.extend(architectures.iter().map(by_architecture));
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn lambda_dimension_combinations_select_series() {
        let all = Selection::from_dimensions(Metric::Invocations, &[]).unwrap();
        assert!(all.accepts("f", "1") && all.accepts("g", "$LATEST"));
        let function = Selection::from_dimensions(Metric::Duration, &dims(&[("FunctionName", "f")])).unwrap();
        assert!(function.accepts("f", "1") && function.accepts("f", "2") && !function.accepts("g", "1"));
        let version =
            Selection::from_dimensions(Metric::Errors, &dims(&[("Resource", "f:2"), ("FunctionName", "f")]))
                .unwrap();
        assert!(version.accepts("f", "2") && !version.accepts("f", "1"));
        assert_eq!(
            version.dimensions(),
            vec![("FunctionName", "f".to_string()), ("Resource", "f:2".to_string())]
        );
    }

    #[test]
    fn unpublished_combinations_select_nothing() {
        let none =
            |metric, pairs: &[(&str, &str)]| Selection::from_dimensions(metric, &dims(pairs)).is_none();
        assert!(none(Metric::Invocations, &[("FunctionName", "f"), ("Resource", "g:1")]));
        assert!(none(Metric::Invocations, &[("Resource", "f:1")]));
        assert!(none(Metric::Invocations, &[("FunctionName", "f"), ("Other", "x")]));
        assert!(none(Metric::Invocations, &[("FunctionName", "f"), ("FunctionName", "f")]));
        assert!(none(Metric::ConcurrentExecutions, &[("FunctionName", "f"), ("Resource", "f:1")]));
        assert!(none(Metric::Invocations, &[("Architecture", "arm64")]));
        assert!(none(Metric::BilledGbSeconds, &[("Architecture", "sparc")]));
        let arm =
            Selection::from_dimensions(Metric::BilledGbSeconds, &dims(&[("Architecture", "arm64")])).unwrap();
        assert_eq!(arm.architecture, Some(Architecture::Arm64));
    }

    #[test]
    fn metrics_are_found_in_their_own_namespace_only() {
        assert_eq!(Metric::find("AWS/Lambda", "Duration"), Some(Metric::Duration));
        assert_eq!(Metric::find("Nimbus/Lambda", "BilledGBSeconds"), Some(Metric::BilledGbSeconds));
        assert_eq!(Metric::find("AWS/Lambda", "BilledGBSeconds"), None);
        assert_eq!(Metric::find("AWS/EC2", "Invocations"), None);
    }

    #[test]
    fn published_selections_match_what_they_select() {
        let published = Selection::published(Metric::BilledGbSeconds, "f", "3", &[Architecture::Arm64]);
        assert_eq!(published.len(), 4);
        for selection in &published {
            let dimensions: Vec<_> =
                selection.dimensions().into_iter().map(|(n, v)| (n.to_string(), v)).collect();
            assert_eq!(
                Selection::from_dimensions(Metric::BilledGbSeconds, &dimensions).as_ref(),
                Some(selection)
            );
        }
        assert_eq!(Selection::published(Metric::ConcurrentExecutions, "f", "3", &[]).len(), 2);
    }
}
