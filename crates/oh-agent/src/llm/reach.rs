//! Why an LLM endpoint on a loopback address cannot be reached from inside a container.

use std::sync::OnceLock;

/// Whether this process runs in a container (Docker's `/.dockerenv`, Podman's
/// `/run/.containerenv`), read once.
fn in_container() -> bool {
    static IN_CONTAINER: OnceLock<bool> = OnceLock::new();
    *IN_CONTAINER.get_or_init(|| {
        std::path::Path::new("/.dockerenv").exists()
            || std::path::Path::new("/run/.containerenv").exists()
    })
}

/// The host part of `url` (`scheme://host[:port]/…`), brackets kept for IPv6.
fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if authority.starts_with('[') {
        return authority.split_once(']').map(|(h, _)| &h[1..]);
    }
    Some(authority.split(':').next().unwrap_or(authority))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A hint to add to "cannot reach `url`" when this process runs in a container and `url`
/// is a loopback address: there, loopback is the container itself.
pub(crate) fn loopback_hint(url: &str) -> Option<String> {
    hint_for(url, in_container())
}

fn hint_for(url: &str, in_container: bool) -> Option<String> {
    let host = host_of(url)?;
    if !in_container || !is_loopback(host) {
        return None;
    }
    Some(format!(
        "this agent runs in a container, where {host} is the container itself, not the \
         machine that runs it: give the container the host's network (DockerWorkspace: \
         .network(\"host\")) or point the LLM's base_url at an address the container can \
         reach (on Docker's default bridge, the host is usually 172.17.0.1)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_in_a_container_get_the_hint() {
        for url in [
            "http://127.0.0.1:9000/v1/chat/completions",
            "http://localhost:9000/v1",
            "https://user:pw@127.0.0.2/v1",
            "http://[::1]:8080/v1/messages",
        ] {
            let hint = hint_for(url, true).unwrap_or_else(|| panic!("no hint for {url}"));
            assert!(hint.contains("the container itself"), "{hint}");
        }
    }

    #[test]
    fn other_hosts_or_outside_a_container_get_none() {
        assert_eq!(hint_for("http://127.0.0.1:9000/v1", false), None);
        assert_eq!(hint_for("https://api.openai.com/v1", true), None);
        assert_eq!(hint_for("http://172.17.0.1:9000/v1", true), None);
        assert_eq!(hint_for("not a url", true), None);
    }
}
