//! `nimbus images`: the images in nimbus's registry (repository, tags, digest, size), and
//! `nimbus images import FILE` for a `docker save` tarball or an OCI image layout (a directory
//! or a tar of one), which the running nimbus stores and unpacks; `nimbus images pull REF`
//! fetches an image from another registry now (a tag resolved again even when cached);
//! `nimbus images gc` collects what no image uses any more.

use std::path::Path;

use serde_json::Value;

use crate::http::{aws_error, Client, Error};
use crate::style::{Console, Paint, Style};
use crate::table::{Align, Cell, Table};
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct ImagesArgs {
    #[command(flatten)]
    pub common: Common,
    /// `import FILE` (a docker save tarball, an OCI layout directory or tar), `pull REF` or
    /// `gc`; without it, list the images.
    #[arg(num_args = 0..=2, value_names = ["ACTION", "FILE"])]
    pub action: Vec<String>,
    /// The repository to import into (default: the image's own name).
    #[arg(long)]
    pub repository: Option<String>,
    /// The tag to give the imported image (default: its own).
    #[arg(long)]
    pub tag: Option<String>,
    /// The architecture `pull` fetches from a multi-platform image (x86_64 or arm64; default:
    /// this machine's).
    #[arg(long)]
    pub architecture: Option<String>,
}

pub const PATH: &str = "/_nimbus/images";

pub fn run(args: &ImagesArgs, client: &Client, console: &Console) -> Result<(), Error> {
    let raw =
        match args.action.as_slice() {
            [] => client.get_json(PATH)?,
            [verb, file] if verb == "import" => import(args, client, Path::new(file))?,
            [verb, reference] if verb == "pull" => {
                let mut path = format!("{PATH}/pull?reference={}", encode(reference));
                if let Some(architecture) = &args.architecture {
                    path.push_str(&format!("&architecture={}", encode(architecture)));
                }
                answer(client.post(&path, &[], b"")?)?
            }
            [verb] if verb == "gc" => answer(client.post(&format!("{PATH}/gc"), &[], b"")?)?,
            _ => return Err(Error::Usage(
                "nimbus images [import FILE [--repository R] [--tag T] | pull REF [--architecture A] | gc]"
                    .into(),
            )),
        };
    let text = if args.common.json {
        crate::pretty(&raw)
    } else if raw.get("imported").is_some() {
        imported(&raw, &console.stdout)
    } else if raw.get("resolved").is_some() {
        format!(
            "pulled {} ({})\n",
            raw["resolved"].as_str().unwrap_or("-"),
            raw["architecture"].as_str().unwrap_or("-")
        )
    } else if raw.get("images").is_some() {
        render(&raw, &console.stdout)
    } else {
        crate::pretty(&raw)
    };
    crate::write_stdout(&text)
}

fn answer(reply: crate::http::Reply) -> Result<Value, Error> {
    if reply.status >= 400 {
        return Err(aws_error(&reply).unwrap_or(Error::Status {
            url: PATH.into(),
            status: reply.status,
            body: String::from_utf8_lossy(&reply.body).into_owned(),
        }));
    }
    crate::http::parse_json(PATH, &reply.body)
}

fn import(args: &ImagesArgs, client: &Client, file: &Path) -> Result<Value, Error> {
    let body = if file.is_dir() {
        let mut builder = tar::Builder::new(Vec::new());
        builder.follow_symlinks(false);
        builder
            .append_dir_all(".", file)
            .and_then(|()| builder.into_inner())
            .map_err(|e| Error::Usage(format!("cannot read the image layout {}: {e}", file.display())))?
    } else {
        std::fs::read(file).map_err(|e| Error::Usage(format!("cannot read {}: {e}", file.display())))?
    };
    let mut query = Vec::new();
    for (key, value) in [("repository", &args.repository), ("tag", &args.tag)] {
        if let Some(value) = value {
            query.push(format!("{key}={}", encode(value)));
        }
    }
    let path = format!("{PATH}/import?{}", query.join("&"));
    answer(client.post(&path, &[("content-type", "application/x-tar")], &body)?)
}

/// Percent-encodes a query value (repository names hold `/`).
pub(crate) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn imported(raw: &Value, style: &Style) -> String {
    let mut out = String::new();
    for image in raw["imported"].as_array().into_iter().flatten() {
        let name = format!(
            "{}:{}",
            image["repository"].as_str().unwrap_or("-"),
            image["tag"].as_str().unwrap_or("<untagged>")
        );
        out.push_str(&format!(
            "imported {} {}\n",
            style.paint(&name, Paint::Bold),
            image["digest"].as_str().unwrap_or("-")
        ));
    }
    out
}

pub fn render(listing: &Value, style: &Style) -> String {
    let rows = listing["images"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "no images (push one with skopeo or docker, or `nimbus images import FILE`)\n".into();
    }
    let mut table = Table::new(&[
        ("REPOSITORY", Align::Left),
        ("TAGS", Align::Left),
        ("DIGEST", Align::Left),
        ("SIZE", Align::Right),
    ]);
    for row in rows {
        let tags: Vec<&str> =
            row["tags"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let digest = row["digest"].as_str().unwrap_or("-");
        table.push(vec![
            Cell::painted(row["uri"].as_str().unwrap_or("-").to_owned(), Some(Paint::Bold)),
            Cell::new(if tags.is_empty() { "<untagged>".to_owned() } else { tags.join(",") }),
            Cell::new(digest.chars().take(19).collect::<String>()),
            Cell::new(size(row["size"].as_u64().unwrap_or(0))),
        ]);
    }
    table.render(style)
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_images_and_imports() {
        let listing = serde_json::json!({ "images": [
            { "repository": "app", "uri": "000000000000.dkr.ecr.us-east-1.localhost:4566/app", "tags": ["v1", "latest"],
              "digest": "sha256:0123456789abcdef0123", "size": 3 << 20 },
            { "repository": "app", "uri": "000000000000.dkr.ecr.us-east-1.localhost:4566/app", "tags": [],
              "digest": "sha256:fedcba", "size": 512 },
        ], "roots": [] });
        let text = render(&listing, &Style::PLAIN);
        assert!(text.lines().nth(1).unwrap().contains("v1,latest"));
        assert!(text.contains("sha256:0123456789ab") && text.contains("3.0 MiB"));
        assert!(text.lines().nth(2).unwrap().contains("<untagged>"));
        assert!(render(&serde_json::json!({ "images": [] }), &Style::PLAIN).starts_with("no images"));
        let imported =
            serde_json::json!({ "imported": [{ "repository": "a/b", "tag": "t", "digest": "sha256:1" }] });
        assert_eq!(super::imported(&imported, &Style::PLAIN), "imported a/b:t sha256:1\n");
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }
}
