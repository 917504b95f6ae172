//! Image references as users write them: `repo:tag`, `repo@sha256:…`, with or without a
//! registry host (`000000000000.dkr.ecr.us-east-1.localhost:4566/repo:tag`).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The registry host as written (`None`: nimbus's own, by name alone).
    pub host: Option<String>,
    /// The region an ECR host names (`<account>.dkr.ecr.<region>.…`).
    pub region: Option<String>,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(text: &str) -> Result<Reference, String> {
        let text = text.trim();
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_owned())),
            None => (text, None),
        };
        let (host, path) = match rest.split_once('/') {
            Some((first, path)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (Some(first.to_owned()), path)
            }
            _ => (None, rest),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag.to_owned())),
            _ => (path, None),
        };
        if repository.is_empty() || !valid_repository(repository) {
            return Err(format!("invalid image reference {text:?}"));
        }
        if let Some(digest) = &digest {
            crate::digest::check(digest)?;
        }
        let region = host.as_deref().and_then(ecr_region);
        Ok(Reference { host, region, repository: repository.to_owned(), tag, digest })
    }

    /// The tag or digest to look up (`latest` when neither is given).
    pub fn version(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }
}

/// The region of `<account>.dkr.ecr.<region>.<domain>[:port]`.
pub fn ecr_region(host: &str) -> Option<String> {
    let host = host.split(':').next()?;
    let mut parts = host.split('.');
    let account = parts.next()?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(())?;
    (parts.next()? == "dkr" && parts.next()? == "ecr").then_some(())?;
    parts.next().filter(|r| !r.is_empty()).map(str::to_owned)
}

/// ECR's repository name rule: `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`,
/// 2 to 256 characters.
pub fn valid_repository(name: &str) -> bool {
    (2..=256).contains(&name.len())
        && name.split('/').all(|part| {
            !part.is_empty()
                && part.split(['.', '_', '-']).all(|run| {
                    !run.is_empty() && run.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                })
        })
}

/// A tag as the distribution spec allows: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric() || b == b'_')
        && tag.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_users_write() {
        let r = Reference::parse("000000000000.dkr.ecr.eu-west-1.localhost:4566/team/app:v1").unwrap();
        assert_eq!(r.region.as_deref(), Some("eu-west-1"));
        assert_eq!((r.repository.as_str(), r.version()), ("team/app", "v1"));
        let r = Reference::parse("127.0.0.1:5000/app").unwrap();
        assert_eq!(
            (r.host.as_deref(), r.region.clone(), r.version()),
            (Some("127.0.0.1:5000"), None, "latest")
        );
        let d = format!("app@{}", crate::digest::of(b""));
        assert!(Reference::parse(&d).unwrap().version().starts_with("sha256:"));
        assert!(Reference::parse("App:x").is_err());
        assert!(valid_tag("v1.2_x-3") && !valid_tag(".x") && !valid_tag(""));
    }
}
