//! TLS for OTLP export: the trusted roots (a custom CA or the Mozilla roots), an optional client certificate (mTLS), for HTTP/protobuf and gRPC alike.
//!
//! `OTEL_EXPORTER_OTLP_CERTIFICATE` (a PEM file) replaces the Mozilla roots, as the
//! specification's "the trusted certificate to use when verifying a server's TLS
//! credentials" and every SDK read it: a private CA is then the only one trusted.
//! `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and `_CLIENT_KEY` (PEM; the key PKCS#8, PKCS#1
//! or SEC1) go together. Files are read once at start; a file that cannot be read or
//! parsed turns the signal off with a line naming the variable and the file.

use std::path::{Path, PathBuf};

use hyper_rustls::ConfigBuilderExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// The TLS settings of one signal's export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`: PEM file of the CA(s) to trust instead of the Mozilla roots.
    pub ca: Option<PathBuf>,
    /// `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`: PEM chain presented to the collector.
    pub client_cert: Option<PathBuf>,
    /// `OTEL_EXPORTER_OTLP_CLIENT_KEY`: its PEM private key.
    pub client_key: Option<PathBuf>,
}

/// Why TLS for a signal could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or held nothing usable.
    #[error("{var}: cannot use {path}: {reason}")]
    File {
        /// The variable that named the file.
        var: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A client certificate without its key, or the other way round.
    #[error(
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY go together; only one is set"
    )]
    HalfClientIdentity,
    /// rustls refused the settings (e.g. a key that does not match the certificate).
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

fn file_error(var: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        var,
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The client configuration for `tls` (the connector adds the ALPN protocols).
pub fn client_config(tls: &Tls) -> Result<ClientConfig, TlsError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()?;
    let builder = match &tls.ca {
        Some(path) => builder.with_root_certificates(roots(path)?),
        None => builder.with_webpki_roots(),
    };
    let config = match (&tls.client_cert, &tls.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = certificates("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| file_error("OTEL_EXPORTER_OTLP_CLIENT_KEY", key, e))?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => return Err(TlsError::HalfClientIdentity),
    };
    Ok(config)
}

/// The custom CA's certificates, the only roots trusted then.
fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let var = "OTEL_EXPORTER_OTLP_CERTIFICATE";
    let mut store = RootCertStore::empty();
    for cert in certificates(var, path)? {
        store.add(cert).map_err(|e| file_error(var, path, e))?;
    }
    Ok(store)
}

fn certificates(var: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(var, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(var, path, e))?;
    if certs.is_empty() {
        return Err(file_error(var, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_certificate_needs_its_key_and_files_are_named_in_errors() {
        let half = Tls {
            client_cert: Some("/c.pem".into()),
            ..Tls::default()
        };
        assert!(matches!(
            client_config(&half),
            Err(TlsError::HalfClientIdentity)
        ));
        let missing = Tls {
            ca: Some("/nonexistent/ca.pem".into()),
            ..Tls::default()
        };
        let error = client_config(&missing).unwrap_err().to_string();
        assert!(
            error.starts_with("OTEL_EXPORTER_OTLP_CERTIFICATE: cannot use /nonexistent/ca.pem: "),
            "{error}"
        );
        assert!(client_config(&Tls::default()).is_ok(), "the Mozilla roots");
    }
}
