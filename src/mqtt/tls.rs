//! Builds the rustls client configuration (ring provider) from the TLS
//! config: trusted CAs and an optional client certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::TlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificates from {}: {reason} (expected PEM `CERTIFICATE` blocks; check mqtt.tls)", path.display())]
    Certificates { path: PathBuf, reason: String },
    #[error("no usable CA certificate in {} (check mqtt.tls.ca_file)", path.display())]
    NoCa { path: PathBuf },
    #[error("cannot read the private key from {}: {reason} (check mqtt.tls.key_file)", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("`{name}` is not a DNS name or IP address (check mqtt.tls.server_name)")]
    ServerName { name: String },
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(String),
}

/// Checks the broker's certificate fully (chain, expiry, signatures) but
/// against the configured `server_name` instead of the host we dialled.
#[derive(Debug)]
struct NamedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    expected: ServerName<'static>,
}

impl ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.expected, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The rustls client config for `tls`.
pub fn client_config(tls: &TlsConfig) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certificates(&tls.ca_file)?);
    if added == 0 {
        return Err(TlsError::NoCa {
            path: tls.ca_file.clone(),
        });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match &tls.server_name {
        None => builder.with_root_certificates(roots),
        Some(name) => {
            let expected =
                ServerName::try_from(name.clone()).map_err(|_| TlsError::ServerName { name: name.clone() })?;
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NamedVerifier { inner, expected }))
        }
    };
    let config = match &tls.client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => {
            let chain = certificates(&auth.cert_file)?;
            let key = PrivateKeyDer::from_pem_file(&auth.key_file).map_err(|e| TlsError::Key {
                path: auth.key_file.clone(),
                reason: e.to_string(),
            })?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    Ok(Arc::new(config))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |reason: String| TlsError::Certificates {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no certificate found".to_owned()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_should_be_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate\n").expect("write");
        let tls = TlsConfig {
            ca_file: ca.clone(),
            client_auth: None,
            server_name: None,
        };
        let message = client_config(&tls).expect_err("no certs").to_string();
        assert!(
            message.contains(&ca.display().to_string()) && message.contains("mqtt.tls"),
            "{message}"
        );
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    #[test]
    fn a_ca_and_a_client_certificate_should_make_a_config() {
        let tls = TlsConfig {
            ca_file: fixture("ca.pem"),
            client_auth: Some(crate::config::ClientAuth {
                cert_file: fixture("client.crt"),
                key_file: fixture("client.key"),
            }),
            server_name: None,
        };
        let config = client_config(&tls).expect("valid TLS material");
        assert!(config.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn a_key_file_without_a_key_should_name_the_file() {
        let tls = TlsConfig {
            ca_file: fixture("ca.pem"),
            client_auth: Some(crate::config::ClientAuth {
                cert_file: fixture("client.crt"),
                key_file: fixture("ca.pem"),
            }),
            server_name: None,
        };
        let message = client_config(&tls).expect_err("no key").to_string();
        assert!(
            message.contains("ca.pem") && message.contains("mqtt.tls.key_file"),
            "{message}"
        );
    }
}
