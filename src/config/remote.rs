//! A service served elsewhere (`url = "https://billing.staging.example.com"`): where its remote
//! end is, read from the `url`, and how callers here speak to it (plain HTTP to the local port
//! for `http`/`https`, anything for `tcp`).

use super::Protocol;

/// The remote end of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// As written.
    pub url: String,
    pub host: String,
    pub port: u16,
    /// `https`: TLS to it (callers here speak plain HTTP).
    pub tls: bool,
    /// `tcp`: bytes, not HTTP.
    pub tcp: bool,
    /// The certificate is not checked (`insecure = true`: a development certificate).
    pub insecure: bool,
}

impl Remote {
    /// The `url` read: `http://`, `https://` or `tcp://`, a host, a port (the scheme's by
    /// default; `tcp` needs one), nothing after but `/`.
    pub fn parse(url: &str, insecure: bool) -> Result<Remote, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(format!(
                "`{url}`: write `https://host`, `http://host:port` or `tcp://host:port`"
            ));
        };
        let (tls, tcp) = match scheme.to_ascii_lowercase().as_str() {
            "https" => (true, false),
            "http" => (false, false),
            "tcp" => (false, true),
            other => {
                return Err(format!(
                    "`{other}://` is not a scheme devstack forwards to: use https, http or tcp"
                ));
            }
        };
        if uri.path() != "/" || uri.query().is_some() {
            return Err(format!(
                "`{url}`: a path is not supported (callers' paths go to the remote end as they are): write the URL up to its host and port"
            ));
        }
        if authority.as_str().contains('@') {
            return Err(format!("`{url}`: credentials in the URL are not supported"));
        }
        // Written after the host, but not a number (the URL type keeps it as text).
        let written_port = authority.as_str().len() > authority.host().len();
        let port = match authority.port_u16() {
            Some(port) => port,
            None if written_port => return Err(format!("`{url}`: its port is not a number")),
            None if tcp => return Err(format!("`{url}`: a tcp URL needs a port")),
            None if tls => 443,
            None => 80,
        };
        // `[::1]` is the address `::1`.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("`{url}` names no host"));
        }
        if insecure && !tls {
            return Err(
                "`insecure` skips the check of a TLS certificate: only an https `url` has one"
                    .into(),
            );
        }
        Ok(Remote {
            url: url.to_string(),
            host: host.to_string(),
            port,
            tls,
            tcp,
            insecure,
        })
    }

    /// How the proxy reads callers' connections to it: HTTP for an `http`/`https` end; sniffed
    /// for a `tcp` one, as a local service's are (a Redis or Postgres caller is decoded).
    pub fn protocol(&self) -> Protocol {
        if self.tcp {
            Protocol::Auto
        } else {
            Protocol::Http
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_with_the_scheme_s_port_by_default() {
        let r = Remote::parse("https://billing.staging.example.com/", false).unwrap();
        assert_eq!(
            (r.host.as_str(), r.port, r.tls),
            ("billing.staging.example.com", 443, true)
        );
        let r = Remote::parse("http://10.0.0.5:8080", false).unwrap();
        assert_eq!((r.host.as_str(), r.port, r.tls), ("10.0.0.5", 8080, false));
        let r = Remote::parse("tcp://db.internal:5432", false).unwrap();
        assert_eq!((r.port, r.tcp, r.protocol()), (5432, true, Protocol::Auto));
        let r = Remote::parse("https://[::1]:8443", true).unwrap();
        assert_eq!((r.host.as_str(), r.port, r.insecure), ("::1", 8443, true));
        for bad in [
            "billing.example.com",
            "ftp://x",
            "https://x/v1",
            "tcp://db",
            "https://u:p@x",
            "http://x:http",
        ] {
            assert!(Remote::parse(bad, false).is_err(), "{bad}");
        }
        assert!(Remote::parse("http://x", true).is_err());
    }
}
