//! The proxy's side of a connection to a service: a local process's socket, or a remote end
//! (`url = "https://staging.example.com"`) reached by name, through TLS when its scheme says.
//! `Upstream` is either, read and written the same way by every relay; `RemoteEnd` is where a
//! remote service is and how to speak to it (its TLS settings made once, with the system's
//! roots, or none checked for `insecure`).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName};

/// A service's remote end.
#[derive(Debug)]
pub struct RemoteEnd {
    /// A name (looked up at each connection) or an address.
    pub host: String,
    pub port: u16,
    /// What a request's `Host` (HTTP/1) or `:authority` (HTTP/2) is made: the remote's name,
    /// with its port unless it is the scheme's own.
    pub authority: String,
    /// TLS to it (`https`), or plain.
    pub tls: Option<Tls>,
}

/// TLS to a remote end: its name (SNI and the certificate's check) and the client settings,
/// for HTTP/1 and for HTTP/2 (ALPN).
pub struct Tls {
    name: ServerName<'static>,
    h1: TlsConnector,
    h2: TlsConnector,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tls({:?})", self.name)
    }
}

/// Which protocol a connection carries (what ALPN offers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// HTTP/1.1, or bytes (TCP).
    H1,
    H2,
}

impl RemoteEnd {
    /// The remote end at `host:port`; `tls`: through TLS, its certificate checked against the
    /// system's roots unless `insecure`.
    pub fn new(host: &str, port: u16, tls: bool, insecure: bool) -> Result<RemoteEnd, String> {
        let default_port = if tls { 443 } else { 80 };
        let authority = match port == default_port {
            true => host.to_string(),
            false => format!("{host}:{port}"),
        };
        let tls = match tls {
            false => None,
            true => {
                let name = ServerName::try_from(host.to_string())
                    .map_err(|e| format!("`{host}` is not a name TLS can check: {e}"))?;
                Some(Tls {
                    name,
                    h1: TlsConnector::from(client_config(insecure, Alpn::H1)?),
                    h2: TlsConnector::from(client_config(insecure, Alpn::H2)?),
                })
            }
        };
        Ok(RemoteEnd {
            host: host.to_string(),
            port,
            authority,
            tls,
        })
    }

    /// A new connection to it, TLS done when it has TLS.
    pub async fn connect(&self, alpn: Alpn) -> io::Result<Upstream> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true).ok();
        let Some(tls) = &self.tls else {
            return Ok(Upstream::Tcp(tcp));
        };
        let connector = match alpn {
            Alpn::H1 => &tls.h1,
            Alpn::H2 => &tls.h2,
        };
        let stream = connector.connect(tls.name.clone(), tcp).await?;
        Ok(Upstream::Tls(Box::new(stream)))
    }
}

/// The client settings: the system's roots (or no check), offering `alpn`.
fn client_config(insecure: bool, alpn: Alpn) -> Result<Arc<ClientConfig>, String> {
    // ring builds without a C toolchain (aws-lc-rs needs cmake); a proxy to a staging
    // server needs no post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = match insecure {
        false => builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
        true => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCheck(provider)))
            .with_no_client_auth(),
    };
    config.alpn_protocols = match alpn {
        Alpn::H1 => vec![b"http/1.1".to_vec()],
        Alpn::H2 => vec![b"h2".to_vec()],
    };
    Ok(Arc::new(config))
}

/// The system's trusted roots (and `SSL_CERT_FILE`'s), read once.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            match added {
                0 => Err(format!(
                    "no trusted root certificates found on this machine ({}); install ca-certificates, or set SSL_CERT_FILE",
                    found
                        .errors
                        .first()
                        .map_or("none readable".into(), |e| e.to_string())
                )),
                _ => Ok(Arc::new(roots)),
            }
        })
        .clone()
}

/// `insecure = true`: any certificate is taken (a development certificate), its signatures
/// still checked as TLS requires.
#[derive(Debug)]
struct NoCheck(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A connection to a service: a socket, or TLS over one.
pub enum Upstream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Upstream {
    /// The socket under it.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Upstream::Tcp(s) => s,
            Upstream::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Upstream::Tcp(s) => s.is_write_vectored(),
            Upstream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
