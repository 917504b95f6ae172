//! From a function reference (name, ARN, partial ARN, with or without `:qualifier`) and a
//! `Qualifier` to the function, and to the version that serves it: `$LATEST`, a published
//! version, or an alias — whose weighted routing picks a version per invocation.

use std::sync::Arc;

use nimbus_api::AwsError;
use serde_json::Value;

use crate::registry::{Entry, Function, LATEST};
use crate::{split_reference, Lambda};

/// A resolved, qualified reference.
pub struct Target {
    pub function: Arc<Function>,
    /// The version that serves this request.
    pub entry: Arc<Entry>,
    /// The qualifier as the caller gave it (a version, an alias or `$LATEST`), if any.
    pub qualifier: Option<String>,
}

impl Lambda {
    /// The function a reference names, ignoring any qualifier.
    pub(crate) fn function(&self, reference: &str) -> Result<Arc<Function>, AwsError> {
        let (name, _) = split_reference(reference);
        self.registry.get(name).ok_or_else(|| self.not_found(name, None))
    }

    pub(crate) fn not_found(&self, name: &str, qualifier: Option<&str>) -> AwsError {
        let arn = self.function_arn(name);
        match qualifier {
            Some(q) => AwsError::not_found(format!("Function not found: {arn}:{q}")),
            None => AwsError::not_found(format!("Function not found: {arn}")),
        }
    }

    /// The version a request names; an alias stands for its primary version.
    pub(crate) fn find(&self, reference: &str, qualifier: Option<&str>) -> Result<Target, AwsError> {
        self.resolve(reference, qualifier, false)
    }

    /// Like [`Lambda::find`], but an alias with weighted routing picks a version at random
    /// in proportion to the weights, as for an invocation.
    pub(crate) fn route_invocation(
        &self,
        reference: &str,
        qualifier: Option<&str>,
    ) -> Result<Target, AwsError> {
        self.resolve(reference, qualifier, true)
    }

    fn resolve(&self, reference: &str, qualifier: Option<&str>, weighted: bool) -> Result<Target, AwsError> {
        let (name, suffix) = split_reference(reference);
        let qualifier = qualifier.or(suffix).filter(|q| !q.is_empty());
        let function = self.registry.get(name).ok_or_else(|| self.not_found(name, qualifier))?;
        let entry = match qualifier {
            None | Some(LATEST) => function.latest.clone(),
            Some(q) => match q.parse::<u64>() {
                Ok(number) => function.versions.get(&number).cloned(),
                Err(_) => {
                    function.resource("alias", q).and_then(|alias| alias_version(&function, alias, weighted))
                }
            }
            .ok_or_else(|| self.not_found(name, Some(q)))?,
        };
        Ok(Target { function, entry, qualifier: qualifier.map(str::to_owned) })
    }
}

/// The version an alias sends this request to.
fn alias_version(function: &Function, alias: &Value, weighted: bool) -> Option<Arc<Entry>> {
    let primary = alias["FunctionVersion"].as_str()?;
    let mut chosen = primary;
    if weighted {
        if let Some(weights) = alias["RoutingConfig"]["AdditionalVersionWeights"].as_object() {
            let mut roll = random_unit();
            for (version, weight) in weights {
                let weight = weight.as_f64().unwrap_or(0.0);
                if roll < weight {
                    chosen = version;
                    break;
                }
                roll -= weight;
            }
        }
    }
    version_entry(function, chosen)
}

pub(crate) fn version_entry(function: &Function, version: &str) -> Option<Arc<Entry>> {
    if version == LATEST {
        return Some(function.latest.clone());
    }
    function.versions.get(&version.parse().ok()?).cloned()
}

/// A uniform number in [0, 1) from the thread's fast random source.
fn random_unit() -> f64 {
    // The low 53 bits of a v4 UUID are random (its version and variant bits sit higher).
    let bits = uuid::Uuid::new_v4().as_u128() & ((1u128 << 53) - 1);
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::random_unit;

    #[test]
    fn random_units_are_in_range_and_spread() {
        let samples: Vec<f64> = (0..10_000).map(|_| random_unit()).collect();
        assert!(samples.iter().all(|x| (0.0..1.0).contains(x)));
        let below = samples.iter().filter(|x| **x < 0.3).count();
        assert!((2_700..3_300).contains(&below), "{below}");
    }
}
