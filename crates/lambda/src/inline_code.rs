//! Inline code (`Code.ZipFile`) packaged as CloudFormation does: `index.py` beside the
//! `cfnresponse` module, `index.js` with `node_modules/cfn-response`.

use std::io::Write as _;

use base64::Engine as _;
use nimbus_api::provider::{text, ProviderError};
use serde_json::{Map, Value};

/// The `cfnresponse` module CloudFormation adds beside inline Python code.
const CFN_RESPONSE_PY: &str = r#"import json
import urllib.request

SUCCESS = "SUCCESS"
FAILED = "FAILED"


def send(event, context, responseStatus, responseData, physicalResourceId=None, noEcho=False, reason=None):
    stream = getattr(context, "log_stream_name", None)
    body = {
        "Status": responseStatus,
        "Reason": reason or "See the details in CloudWatch Log Stream: " + str(stream),
        "PhysicalResourceId": physicalResourceId or stream or event["LogicalResourceId"],
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "NoEcho": noEcho,
        "Data": responseData,
    }
    data = json.dumps(body).encode("utf-8")
    request = urllib.request.Request(event["ResponseURL"], data=data, method="PUT",
                                     headers={"content-type": "", "content-length": str(len(data))})
    try:
        with urllib.request.urlopen(request) as response:
            print("Status code:", response.status)
    except Exception as e:
        print("send(..) failed executing request: " + str(e))
"#;

/// The `cfn-response` module CloudFormation adds beside inline Node.js code.
const CFN_RESPONSE_JS: &str = r#"exports.SUCCESS = "SUCCESS";
exports.FAILED = "FAILED";

exports.send = function (event, context, responseStatus, responseData, physicalResourceId, noEcho) {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({
      Status: responseStatus,
      Reason: "See the details in CloudWatch Log Stream: " + context.logStreamName,
      PhysicalResourceId: physicalResourceId || context.logStreamName,
      StackId: event.StackId,
      RequestId: event.RequestId,
      LogicalResourceId: event.LogicalResourceId,
      NoEcho: noEcho || false,
      Data: responseData,
    });
    const url = new URL(event.ResponseURL);
    const client = url.protocol === "https:" ? require("https") : require("http");
    const finish = () => { if (typeof context.done === "function") context.done(); };
    const request = client.request(
      { hostname: url.hostname, port: url.port, path: url.pathname + url.search, method: "PUT",
        headers: { "content-type": "", "content-length": Buffer.byteLength(body) } },
      (response) => { console.log("Status code: " + response.statusCode); resolve(); finish(); });
    request.on("error", (error) => {
      console.log("send(..) failed executing https.request(..): " + error);
      reject(error);
      finish();
    });
    request.write(body);
    request.end();
  });
};
"#;

/// `ZipFile` source packaged as a zip (base64), named for the runtime.
fn inline_zip(source: &str, runtime: &str) -> Result<String, ProviderError> {
    let mut files: Vec<(&str, &str)> = Vec::new();
    if runtime.starts_with("python") {
        files.push(("index.py", source));
        files.push(("cfnresponse.py", CFN_RESPONSE_PY));
    } else if runtime.starts_with("nodejs") {
        files.push(("index.js", source));
        files.push(("node_modules/cfn-response/index.js", CFN_RESPONSE_JS));
    } else {
        files.push(("index", source));
    }
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
    for (name, body) in files {
        zip.start_file(name, options).map_err(|e| ProviderError::new(e.to_string()))?;
        zip.write_all(body.as_bytes()).map_err(|e| ProviderError::new(e.to_string()))?;
    }
    let bytes = zip.finish().map_err(|e| ProviderError::new(e.to_string()))?.into_inner();
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// `Code` as the API takes it.
pub fn code(properties: &Map<String, Value>) -> Result<Value, ProviderError> {
    let mut code = properties.get("Code").and_then(Value::as_object).cloned().unwrap_or_default();
    if let Some(source) = code.get("ZipFile").map(text) {
        let runtime = properties.get("Runtime").map(text).unwrap_or_default();
        code.insert("ZipFile".into(), inline_zip(&source, &runtime)?.into());
    }
    Ok(Value::Object(code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn files(zipped: &str) -> Vec<(String, String)> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(zipped).unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        (0..archive.len())
            .map(|i| {
                let mut file = archive.by_index(i).unwrap();
                let mut body = String::new();
                file.read_to_string(&mut body).unwrap();
                (file.name().to_owned(), body)
            })
            .collect()
    }

    #[test]
    fn inline_code_is_named_for_its_runtime_with_cfn_response_beside_it() {
        let mut props = Map::new();
        props.insert("Runtime".into(), "python3.12".into());
        props.insert("Code".into(), serde_json::json!({"ZipFile": "def handler(e, c): pass"}));
        let zipped = code(&props).unwrap();
        let names: Vec<String> =
            files(zipped["ZipFile"].as_str().unwrap()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["index.py", "cfnresponse.py"]);
        props.insert("Runtime".into(), "nodejs20.x".into());
        let zipped = code(&props).unwrap();
        let found = files(zipped["ZipFile"].as_str().unwrap());
        assert_eq!(found[0], ("index.js".to_owned(), "def handler(e, c): pass".to_owned()));
        assert_eq!(found[1].0, "node_modules/cfn-response/index.js");
    }
}
