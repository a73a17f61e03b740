//! An HTTP(S) webhook: each batch is one POST of a JSON array of records.
//! 2xx is delivered; 408, 429, 5xx and transport errors are retried (with
//! the receiver's Retry-After when it gives one); any other status means
//! the receiver will never take the batch, which is dropped and counted.
use std::time::Duration;

use super::queue::{SendError, Transport};

/// Posts batches to one URL.
pub struct WebhookTransport {
    agent: ureq::Agent,
    url: String,
    /// The URL without its query (which may hold a token), for messages.
    shown: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A `Name: value` header, as `--webhook-header` takes it.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not a header: expected NAME: VALUE"))?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        return Err(format!("{name:?} is not a header name"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

impl WebhookTransport {
    /// Posts to `url` with `headers` (e.g. an authorization token), each
    /// request given at most `timeout`; an HTTPS server is verified against
    /// `ca` (PEM certificates) when given, else the built-in roots (Linux)
    /// or the system's (elsewhere).
    pub fn new(
        url: &str,
        headers: Vec<(String, String)>,
        timeout: Duration,
        ca: Option<&[u8]>,
    ) -> Result<Self, String> {
        use ureq::tls::{PemItem, RootCerts, TlsConfig};
        let mut tls = TlsConfig::builder();
        #[cfg(not(target_os = "linux"))]
        {
            tls = tls
                .provider(ureq::tls::TlsProvider::NativeTls)
                .root_certs(RootCerts::PlatformVerifier);
        }
        if let Some(pem) = ca {
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(pem) {
                match item.map_err(|e| format!("reading the CA file: {e}"))? {
                    PemItem::Certificate(c) => certs.push(c),
                    _ => continue,
                }
            }
            if certs.is_empty() {
                return Err("the CA file holds no PEM certificate".into());
            }
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .timeout_global(Some(timeout))
            // Statuses are answers to classify, not errors.
            .http_status_as_error(false)
            .user_agent(concat!("runtime-sensor/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Self {
            agent,
            url: url.to_owned(),
            shown: url.split('?').next().unwrap_or(url).to_owned(),
            headers,
            body: Vec::new(),
        })
    }
}

impl Transport for WebhookTransport {
    fn send(&mut self, batch: &[Vec<u8>]) -> Result<(), SendError> {
        self.body.clear();
        self.body.push(b'[');
        for (i, record) in batch.iter().enumerate() {
            if i > 0 {
                self.body.push(b',');
            }
            self.body.extend_from_slice(record);
        }
        self.body.push(b']');
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = request
            .send(&self.body[..])
            .map_err(|e| SendError::Retry(format!("POST {}: {e}", self.shown), None))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(()),
            408 | 429 | 500..=599 => {
                let asked = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(300)));
                Err(SendError::Retry(
                    format!("POST {}: HTTP {status}", self.shown),
                    asked,
                ))
            }
            _ => Err(SendError::Reject(format!(
                "POST {}: HTTP {status}",
                self.shown
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_name_colon_value() {
        assert_eq!(
            parse_header("Authorization: Bearer a:b").unwrap(),
            ("Authorization".into(), "Bearer a:b".into())
        );
        assert!(
            parse_header("no colon")
                .unwrap_err()
                .contains("NAME: VALUE")
        );
        assert!(
            parse_header("bad name: x")
                .unwrap_err()
                .contains("header name")
        );
    }
}
