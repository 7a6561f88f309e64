//! The address the predict page puts in its `curl` command for the scoring
//! API, so that the command can be pasted into a shell as it is.
//!
//! The address comes from, in this order:
//!
//! 1. the request's `Host` header, which every browser sends, so the
//!    command names the address the user reached the page on, even behind
//!    a port forward;
//! 2. the authority of an absolute request URI (`GET http://host/ …`);
//! 3. the host and port this process recorded in the store's `server.json`
//!    when it started listening, where an unspecified bind address
//!    (`0.0.0.0`, `::`) becomes the loopback address.
//!
//! A value is used only when it is a plain `host` or `host:port` made of
//! letters, digits, `.`, `-`, `:` and IPv6 brackets. So a forged `Host`
//! header cannot put a quote, a space or a `$` into the command that the
//! user pastes into a shell. The templates escape it for HTML as every
//! value.
//! This module never opens a connection and never writes a file.

use crate::server::daemon::ServerFiles;
use crate::server::state::ServerState;
use http::Request;
use std::net::{IpAddr, Ipv6Addr};

/// The longest `Host` value accepted: a 253-character DNS name, `:` and a
/// five-digit port.
const MAX_HOST_CHARS: usize = 260;

/// Returns the `host:port` the request was sent to, from its `Host` header
/// or an absolute URI, when it is a plain authority.
pub(super) fn from_request<B>(request: &Request<B>) -> Option<String> {
    let from_header = request
        .headers()
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .and_then(plain_authority);
    from_header.or_else(|| {
        request
            .uri()
            .authority()
            .and_then(|authority| plain_authority(authority.as_str()))
    })
}

/// Returns the `host:port` that this process recorded in the store's
/// `server.json`, or `None` when the file is missing, unreadable or written
/// by another process.
pub(super) fn configured(state: &ServerState) -> Option<String> {
    let files = ServerFiles::new(state.artifacts().root());
    let info = files.read_info()?;
    if info.pid != std::process::id() {
        return None;
    }
    let host = match info.host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => "127.0.0.1".to_string(),
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => "[::1]".to_string(),
        Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => info.host,
    };
    plain_authority(&format!("{host}:{}", info.port))
}

/// Returns `text` when it is a `host`, `host:port`, `[ipv6]` or
/// `[ipv6]:port` authority whose host has only letters, digits, `.` and
/// `-`, so that it needs no quoting in a shell.
fn plain_authority(text: &str) -> Option<String> {
    if text.is_empty() || text.len() > MAX_HOST_CHARS {
        return None;
    }
    let (host_is_valid, port) = match text.strip_prefix('[') {
        Some(bracketed) => {
            let (ip, after) = bracketed.split_once(']')?;
            (ip.parse::<Ipv6Addr>().is_ok(), after)
        }
        None => {
            let (host, after) = text.find(':').map_or((text, ""), |i| text.split_at(i));
            let name_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-');
            (!host.is_empty() && host.chars().all(name_chars), after)
        }
    };
    let port_is_valid = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()) && digits.parse::<u16>().is_ok(),
    };
    (host_is_valid && port_is_valid).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_host(host: &str) -> Request<()> {
        Request::get("/").header("host", host).body(()).unwrap()
    }

    #[test]
    fn host_header_is_used() {
        assert_eq!(
            from_request(&with_host("127.0.0.1:8080")).as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            from_request(&with_host("scoring.example")).as_deref(),
            Some("scoring.example")
        );
        assert_eq!(
            from_request(&with_host("[::1]:9000")).as_deref(),
            Some("[::1]:9000")
        );
    }

    #[test]
    fn forged_hosts_are_ignored() {
        for host in [
            "x'; rm -rf ~; echo '",
            "a b:80",
            "user@host:80",
            "$(id):80",
            "host:port",
            "host:99999",
            "host:+80",
            "[::1",
            "[not-ip]:80",
            "a:1:2",
            "",
        ] {
            assert_eq!(from_request(&with_host(host)), None, "{host}");
        }
        let long = "a".repeat(MAX_HOST_CHARS + 1);
        assert_eq!(from_request(&with_host(&long)), None);
    }

    #[test]
    fn absolute_uri_is_second_choice() {
        let request = Request::get("http://10.0.0.5:8080/").body(()).unwrap();
        assert_eq!(from_request(&request).as_deref(), Some("10.0.0.5:8080"));
        let request = Request::get("/").body(()).unwrap();
        assert_eq!(from_request(&request), None);
    }
}
