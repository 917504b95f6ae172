//! The environment variables Lambda gives every function, and the keys users may not set.

use std::path::Path;

use crate::FunctionSpec;

/// Keys AWS reserves; setting one in `Environment.Variables` is refused.
pub const RESERVED_KEYS: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// Lambda's variables for one environment, after the user's own (which they may not shadow,
/// except `AWS_ENDPOINT_URL`, which users may point elsewhere).
pub fn lambda_variables(
    spec: &FunctionSpec,
    runtime_api: &str,
    stream_name: &str,
    task_root: &Path,
    runtime_root: &Path,
    tmp_dir: &Path,
) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = Vec::with_capacity(32);
    let mut set = |k: &str, v: &str| vars.push((k.to_owned(), v.to_owned()));
    set("PATH", "/usr/local/bin:/usr/bin:/bin:/opt/bin");
    set("LANG", "en_US.UTF-8");
    set("TZ", ":UTC");
    set("AWS_ENDPOINT_URL", &spec.endpoint_url);
    for (key, value) in &spec.environment {
        set(key, value);
    }
    let tmp = tmp_dir.to_string_lossy();
    set("LAMBDA_TASK_ROOT", &task_root.to_string_lossy());
    set("LAMBDA_RUNTIME_DIR", &runtime_root.to_string_lossy());
    set("_HANDLER", &spec.handler);
    set("AWS_LAMBDA_RUNTIME_API", runtime_api);
    set("AWS_LAMBDA_FUNCTION_NAME", &spec.name);
    set("AWS_LAMBDA_FUNCTION_VERSION", &spec.version);
    set("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", &spec.memory_mb.to_string());
    set("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand");
    set("AWS_LAMBDA_LOG_GROUP_NAME", &spec.log_group);
    set("AWS_LAMBDA_LOG_STREAM_NAME", stream_name);
    set("AWS_REGION", &spec.region);
    set("AWS_DEFAULT_REGION", &spec.region);
    set("AWS_EXECUTION_ENV", &format!("AWS_Lambda_{}", spec.runtime));
    if let Some(major) = spec.runtime.strip_prefix("nodejs").map(|v| v.trim_end_matches(".x")) {
        // Where AWS's Node.js runtimes look for modules: layers first, then the runtime and code.
        let runtime = runtime_root.to_string_lossy();
        let task = task_root.to_string_lossy();
        let node_path = format!(
            "/opt/nodejs/node{major}/node_modules:/opt/nodejs/node_modules:{runtime}/node_modules:{runtime}:{task}"
        );
        set("NODE_PATH", &node_path);
    }
    // Any credentials are accepted by nimbus; these make SDKs inside the function sign requests,
    // as the function's account (an access key id of twelve digits names it).
    let key = if is_account(&spec.account) { spec.account.as_str() } else { "nimbus" };
    set("AWS_ACCESS_KEY_ID", key);
    set("AWS_SECRET_ACCESS_KEY", "nimbus");
    set("AWS_SESSION_TOKEN", "nimbus");
    // The environment's own /tmp: a sized tmpfs in a sandbox, a private directory otherwise.
    set("TMPDIR", &tmp);
    vars
}

fn is_account(name: &str) -> bool {
    name.len() == 12 && name.bytes().all(|b| b.is_ascii_digit())
}
