use super::*;

#[test]
fn only_addresses_and_localhost_reach_the_console() {
    for host in ["127.0.0.1:4566", "localhost:4566", "LOCALHOST", "[::1]:4566", "10.0.2.2:4566"] {
        assert!(local_host(Some(host)), "{host}");
    }
    for host in ["evil.example:4566", "localhost.evil.example", "[evil]:80"] {
        assert!(!local_host(Some(host)), "{host}");
    }
}

#[test]
fn every_asset_is_embedded_with_a_type() {
    for name in assets::NAMES {
        let (kind, bytes) = assets::find(name).expect(name);
        assert!(!bytes.is_empty() && !kind.is_empty(), "{name}");
    }
    assert!(assets::find("../Cargo.toml").is_none());
}

#[test]
fn pages_load_scripts_from_files_only() {
    let (_, html) = assets::find("index.html").unwrap();
    let html = std::str::from_utf8(html).unwrap();
    // The CSP forbids inline scripts and styles: the page must have none.
    assert!(!html.contains("<script>") && !html.contains("style=") && !html.contains("onclick"));
    assert!(CSP.contains("script-src 'self'") && !CSP.contains("unsafe-inline"));
}
