//! The UI's files, embedded in the binary: hand-written, so a clean clone builds and runs the
//! console with cargo alone.

macro_rules! assets {
    ($($name:literal => $type:literal),* $(,)?) => {
        /// The content type and bytes of the asset `name` (a path under `/_nimbus/ui/`).
        pub fn find(name: &str) -> Option<(&'static str, &'static [u8])> {
            match name {
                $($name => Some(($type, include_bytes!(concat!("../assets/", $name)))),)*
                _ => None,
            }
        }
        /// Every asset's name.
        #[cfg(test)]
        pub const NAMES: &[&str] = &[$($name),*];
    };
}

assets! {
    "index.html" => "text/html; charset=utf-8",
    "app.css" => "text/css; charset=utf-8",
    "app.js" => "text/javascript; charset=utf-8",
    "lib.js" => "text/javascript; charset=utf-8",
    "charts.js" => "text/javascript; charset=utf-8",
    "overview.js" => "text/javascript; charset=utf-8",
    "functions.js" => "text/javascript; charset=utf-8",
    "stacks.js" => "text/javascript; charset=utf-8",
    "batch.js" => "text/javascript; charset=utf-8",
    "capacity.js" => "text/javascript; charset=utf-8",
    "cost.js" => "text/javascript; charset=utf-8",
    "states.js" => "text/javascript; charset=utf-8",
    "streams.js" => "text/javascript; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
}
