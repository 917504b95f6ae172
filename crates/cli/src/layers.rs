//! `nimbus layers import ARN ZIP`: a layer version published in another account (AWS's
//! Powertools layers, say), which nimbus cannot fetch, stored under its own ARN from a zip, so
//! that the functions naming it find it at `/opt` from their next new environment.

use std::path::Path;

use crate::http::{aws_error, Client, Error};
use crate::style::Console;
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct LayersArgs {
    #[command(flatten)]
    pub common: Common,
    /// `import ARN ZIP`: the layer version's ARN and its content.
    #[arg(num_args = 3, value_names = ["ACTION", "ARN", "ZIP"])]
    pub action: Vec<String>,
}

pub const PATH: &str = "/_nimbus/layers/import";

pub fn run(args: &LayersArgs, client: &Client, _console: &Console) -> Result<(), Error> {
    let [verb, arn, zip] = args.action.as_slice() else {
        return Err(Error::Usage("nimbus layers import ARN ZIP".into()));
    };
    if verb != "import" {
        return Err(Error::Usage("nimbus layers import ARN ZIP".into()));
    }
    let path = Path::new(zip);
    let body =
        std::fs::read(path).map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
    let url = format!("{PATH}?arn={}", crate::images::encode(arn));
    let reply = client.post(&url, &[("content-type", "application/zip")], &body)?;
    if reply.status >= 400 {
        return Err(aws_error(&reply).unwrap_or(Error::Status {
            url,
            status: reply.status,
            body: String::from_utf8_lossy(&reply.body).into_owned(),
        }));
    }
    let raw = crate::http::parse_json(PATH, &reply.body)?;
    let text = if args.common.json {
        crate::pretty(&raw)
    } else {
        format!(
            "imported {} ({} bytes)\n",
            raw["LayerVersionArn"].as_str().unwrap_or(arn),
            raw["Content"]["CodeSize"].as_u64().unwrap_or_default()
        )
    };
    crate::write_stdout(&text)
}
