//! The connection under a session: TCP, TLS for `wss://`, then the WebSocket upgrade,
//! all within [`super::CONNECT_TIMEOUT`] (applied by the caller).

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::http::Uri;

use super::websocket_config;

/// A byte stream a WebSocket runs over: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type Socket = WebSocketStream<Box<dyn Io>>;

/// Connects to `url` (`ws://` or `wss://`, as validated by `config::sync_url`).
/// Errors are messages for the status file.
pub async fn connect(url: &str, tls: Option<&Arc<ClientConfig>>) -> Result<Socket, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{url} is not a URL: {e}"))?;
    let secure = uri.scheme_str() == Some("wss");
    let host = uri
        .host()
        .ok_or_else(|| format!("{url} names no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    // Frames are small and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Io> = if secure {
        let Some(config) = tls else {
            return Err(format!("{url} is wss:// but no TLS trust is configured"));
        };
        let name = ServerName::try_from(host.clone())
            .map_err(|e| format!("{url}: {host:?} is not a TLS server name: {e}"))?;
        let stream = TlsConnector::from(Arc::clone(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {url} failed: {e}"))?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let (socket, _response) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(websocket_config()))
            .await
            .map_err(|e| format!("WebSocket upgrade with {url} failed: {e}"))?;
    Ok(socket)
}
