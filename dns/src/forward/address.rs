//! Upstreams as an operator writes them: `IP`, `IP:PORT`, `udp://…`, `tcp://…`,
//! `tls://IP[:PORT][#NAME]` (DNS over TLS, RFC 7858) and
//! `https://HOST[:PORT][/PATH][#NAME]` (DNS over HTTPS, RFC 8484). `NAME` is the name
//! the server's certificate must carry; without it, the host (or IP) written.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use tokio_rustls::rustls::pki_types::ServerName;

/// Port of DNS over TLS (RFC 7858 section 3.1).
const DOT_PORT: u16 = 853;
/// Port of HTTPS.
const HTTPS_PORT: u16 = 443;

/// One upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// UDP, retried over TCP when the answer is truncated.
    Udp(SocketAddr),
    /// TCP only.
    Tcp(SocketAddr),
    /// DNS over TLS: one pipelined connection, the certificate checked for `name`.
    Tls { addr: SocketAddr, name: String },
    /// DNS over HTTPS: POST over one HTTP/2 connection.
    Https(HttpsUpstream),
}

/// Where a DoH upstream is and what its certificate must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsUpstream {
    /// An IP address or a host name; a name is looked up through the system's
    /// resolver each time a connection is opened.
    pub host: String,
    pub port: u16,
    /// The request path, `/dns-query` unless written.
    pub path: String,
    /// The name the certificate must carry (the host unless `#NAME` is written).
    pub name: String,
}

impl Upstream {
    /// Whether the upstream is reached over TLS, so needs trust roots.
    pub fn encrypted(&self) -> bool {
        matches!(self, Upstream::Tls { .. } | Upstream::Https(_))
    }
}

/// An upstream as an operator writes it, which does not read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an upstream: {problem}")]
pub struct UpstreamError {
    pub text: String,
    pub problem: &'static str,
}

/// The forms, for error messages.
pub const UPSTREAM_FORMS: &str =
    "use IP, IP:PORT, tcp://IP:PORT, tls://IP:PORT#NAME or https://HOST/dns-query";

impl std::str::FromStr for Upstream {
    type Err = UpstreamError;

    fn from_str(text: &str) -> Result<Upstream, UpstreamError> {
        let fail = |problem| UpstreamError {
            text: text.to_string(),
            problem,
        };
        if let Some(rest) = text.strip_prefix("https://") {
            return parse_https(rest).map_err(fail);
        }
        if let Some(rest) = text.strip_prefix("tls://") {
            let (addr, name) = split_name(rest);
            let addr = socket_addr(addr, DOT_PORT).ok_or_else(|| fail(UPSTREAM_FORMS))?;
            let name = name.map_or_else(|| addr.ip().to_string(), str::to_string);
            check_name(&name).map_err(fail)?;
            return Ok(Upstream::Tls { addr, name });
        }
        let (tcp, addr) = match text.strip_prefix("tcp://") {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix("udp://").unwrap_or(text)),
        };
        let addr = socket_addr(addr, 53).ok_or_else(|| fail(UPSTREAM_FORMS))?;
        Ok(if tcp {
            Upstream::Tcp(addr)
        } else {
            Upstream::Udp(addr)
        })
    }
}

fn parse_https(rest: &str) -> Result<Upstream, &'static str> {
    let (url, name) = split_name(rest);
    let (authority, path) = match url.find('/') {
        Some(slash) => (&url[..slash], &url[slash..]),
        None => (url, "/dns-query"),
    };
    if path.contains(['?', ' ']) {
        return Err("the path must have no query string (queries are sent by POST)");
    }
    let authority: http::uri::Authority = authority
        .parse()
        .map_err(|_| "the host is not a host name or address")?;
    if authority.as_str().contains('@') {
        return Err("the host must have no user name");
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        return Err("the host is missing");
    }
    let name = name.map_or_else(|| host.clone(), str::to_string);
    check_name(&name)?;
    Ok(Upstream::Https(HttpsUpstream {
        port: authority.port_u16().unwrap_or(HTTPS_PORT),
        host,
        path: path.to_string(),
        name,
    }))
}

/// `ADDR#NAME` into its two halves.
fn split_name(text: &str) -> (&str, Option<&str>) {
    match text.split_once('#') {
        Some((addr, name)) => (addr, Some(name)),
        None => (text, None),
    }
}

/// `IP:PORT` or `IP` (with `default_port`).
fn socket_addr(text: &str, default_port: u16) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, default_port))
    })
}

fn check_name(name: &str) -> Result<(), &'static str> {
    ServerName::try_from(name)
        .map(|_| ())
        .map_err(|_| "the name after # is not a host name or address")
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Udp(addr) => write!(f, "{addr}"),
            Upstream::Tcp(addr) => write!(f, "tcp://{addr}"),
            Upstream::Tls { addr, name } => write!(f, "tls://{addr}#{name}"),
            Upstream::Https(https) => {
                let host = match https.host.parse::<IpAddr>() {
                    Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
                    _ => https.host.clone(),
                };
                write!(f, "https://{host}:{}{}", https.port, https.path)?;
                if https.name != https.host {
                    write!(f, "#{}", https.name)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Upstream {
        text.parse().unwrap()
    }

    #[test]
    fn plain_forms_default_to_port_53() {
        assert_eq!(
            parse("192.0.2.1"),
            Upstream::Udp("192.0.2.1:53".parse().unwrap())
        );
        assert_eq!(
            parse("udp://[2001:db8::1]:5353"),
            Upstream::Udp("[2001:db8::1]:5353".parse().unwrap())
        );
        assert_eq!(
            parse("tcp://192.0.2.1"),
            Upstream::Tcp("192.0.2.1:53".parse().unwrap())
        );
    }

    #[test]
    fn tls_takes_a_name_to_verify_and_port_853() {
        assert_eq!(
            parse("tls://9.9.9.9#dns.quad9.net"),
            Upstream::Tls {
                addr: "9.9.9.9:853".parse().unwrap(),
                name: "dns.quad9.net".into()
            }
        );
        assert_eq!(
            parse("tls://[::1]:8853"),
            Upstream::Tls {
                addr: "[::1]:8853".parse().unwrap(),
                name: "::1".into()
            }
        );
        assert_eq!(
            parse("tls://9.9.9.9#dns.quad9.net").to_string(),
            "tls://9.9.9.9:853#dns.quad9.net"
        );
    }

    #[test]
    fn https_takes_a_host_port_path_and_name() {
        let Upstream::Https(https) = parse("https://dns.example/dns-query") else {
            panic!("not https");
        };
        assert_eq!(
            (
                https.host.as_str(),
                https.port,
                https.path.as_str(),
                https.name.as_str()
            ),
            ("dns.example", 443, "/dns-query", "dns.example")
        );
        let Upstream::Https(https) = parse("https://[::1]:8443/q#localhost") else {
            panic!("not https");
        };
        assert_eq!(
            (
                https.host.as_str(),
                https.port,
                https.path.as_str(),
                https.name.as_str()
            ),
            ("::1", 8443, "/q", "localhost")
        );
        assert_eq!(
            parse("https://[::1]:8443/q#localhost").to_string(),
            "https://[::1]:8443/q#localhost"
        );
        let Upstream::Https(https) = parse("https://10.0.0.1") else {
            panic!("not https");
        };
        assert_eq!(https.path, "/dns-query");
    }

    #[test]
    fn bad_forms_say_what_is_wrong() {
        for (text, problem) in [
            ("resolver.example", UPSTREAM_FORMS),
            ("tls://resolver.example#x", UPSTREAM_FORMS),
            (
                "tls://10.0.0.1#bad name",
                "the name after # is not a host name or address",
            ),
            (
                "https://dns.example/q?dns=x",
                "the path must have no query string (queries are sent by POST)",
            ),
            (
                "https://user@dns.example/",
                "the host must have no user name",
            ),
            (
                "https:///dns-query",
                "the host is not a host name or address",
            ),
        ] {
            let error = text.parse::<Upstream>().unwrap_err();
            assert_eq!(error.problem, problem, "{text}");
        }
    }
}
