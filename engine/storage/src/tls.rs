//! TLS to PostgreSQL as libpq does it: the `sslmode` and `sslrootcert` of a `DATABASE_URL`
//! (URL or `key=value` form) decide whether the connection is encrypted and what is verified.
//!
//! tokio-postgres itself knows only `disable`, `prefer` and `require` and no `sslrootcert`, so
//! [`split_tls_params`] takes both out of the connection string before the driver parses the
//! rest, and [`client_config`] builds the rustls configuration (ring provider, as the rest of
//! the workspace) for the mode:
//!
//! | sslmode       | encrypted             | certificate chain checked | host name checked |
//! |---------------|-----------------------|---------------------------|-------------------|
//! | `disable`     | never                 | -                         | -                 |
//! | `prefer`      | when the server can   | no                        | no                |
//! | `require`     | always                | only with `sslrootcert`   | no                |
//! | `verify-ca`   | always                | yes                       | no                |
//! | `verify-full` | always                | yes                       | yes               |
//!
//! Roots: the PEM file `sslrootcert` names, else (or with `sslrootcert=system`) the Mozilla
//! roots compiled in (webpki-roots), so trust does not depend on the machine's store. The
//! server's handshake signature is checked in every mode, so the peer holds the key of the
//! certificate it shows even where that certificate is not trusted (`require`, as libpq).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode as DriverSslMode;

use crate::error::StoreError;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    /// libpq's default.
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, StoreError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" | "allow" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(StoreError::Config(format!(
                    "invalid database address: sslmode `{other}` is not one of disable, prefer, \
                     require, verify-ca, verify-full"
                )))
            }
        })
    }

    /// What the driver is told: it only decides whether to negotiate TLS.
    pub fn for_driver(self) -> DriverSslMode {
        match self {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        }
    }
}

/// The TLS parameters of a connection string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsParams {
    pub mode: SslMode,
    /// `sslrootcert`: a PEM file of trusted roots, or `system` for the compiled-in roots.
    pub root_cert: Option<PathBuf>,
}

/// Takes `sslmode` and `sslrootcert` out of a connection string: returns the rest (for
/// `tokio_postgres::Config`) and the parameters.
pub fn split_tls_params(conninfo: &str) -> Result<(String, TlsParams), StoreError> {
    let is_url = conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://");
    let (rest, pairs) = if is_url {
        split_url(conninfo)
    } else {
        split_key_values(conninfo)?
    };
    let mut params = TlsParams::default();
    for (key, value) in pairs {
        match key.as_str() {
            "sslmode" => params.mode = SslMode::parse(&value)?,
            _ => params.root_cert = Some(PathBuf::from(value)),
        }
    }
    Ok((rest, params))
}

fn is_ours(key: &str) -> bool {
    key == "sslmode" || key == "sslrootcert"
}

/// URL form: our keys out of the query string, the other parameters kept verbatim.
fn split_url(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Vec::new());
    };
    let mut kept = Vec::new();
    let mut ours = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key);
        if is_ours(&key) {
            ours.push((key, percent_decode(value)));
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, ours)
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// `key=value` form (libpq's rules: values single-quoted or bare, `\` escapes): our keys out,
/// every other pair kept as written.
fn split_key_values(text: &str) -> Result<(String, Vec<(String, String)>), StoreError> {
    let bad = |why: &str| StoreError::Config(format!("invalid database address: {why}"));
    let mut kept: Vec<&str> = Vec::new();
    let mut ours = Vec::new();
    let mut chars = text.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            return Err(bad(&format!("missing `=` after `{key}`")));
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let quoted = chars.next_if(|(_, c)| *c == '\'').is_some();
        let mut value = String::new();
        let mut closed = !quoted;
        while let Some((_, c)) = chars.next_if(|(_, c)| quoted || !c.is_whitespace()) {
            match c {
                '\\' => value.extend(chars.next().map(|(_, escaped)| escaped)),
                '\'' if quoted => {
                    closed = true;
                    break;
                }
                c => value.push(c),
            }
        }
        if !closed {
            return Err(bad("unterminated quoted value"));
        }
        let end = chars.peek().map_or(text.len(), |(at, _)| *at);
        if is_ours(&key) {
            ours.push((key, value));
        } else {
            kept.push(&text[start..end]);
        }
    }
    Ok((kept.join(" "), ours))
}

/// The rustls configuration for `params` (see the module's table).
pub fn client_config(params: &TlsParams) -> Result<ClientConfig, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("TLS set-up: {e}")))?;
    let verify_chain = match params.mode {
        SslMode::VerifyCa | SslMode::VerifyFull => true,
        // libpq: with a root certificate given, `require` verifies the chain.
        SslMode::Require => params.root_cert.is_some(),
        SslMode::Disable | SslMode::Prefer => false,
    };
    let verifier: Arc<dyn ServerCertVerifier> = if verify_chain {
        let roots = Arc::new(root_store(params.root_cert.as_ref())?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| StoreError::Config(format!("TLS set-up: {e}")))?;
        if params.mode == SslMode::VerifyFull {
            webpki
        } else {
            Arc::new(IgnoreHostName(webpki))
        }
    } else {
        Arc::new(AnyCertificate(provider))
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn root_store(file: Option<&PathBuf>) -> Result<RootCertStore, StoreError> {
    let mut roots = RootCertStore::empty();
    match file.filter(|f| f.as_os_str() != "system") {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let unreadable = |e: &dyn std::fmt::Display| {
                StoreError::Config(format!("sslrootcert {}: {e}", path.display()))
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
                roots
                    .add(cert.map_err(|e| unreadable(&e))?)
                    .map_err(|e| unreadable(&e))?;
            }
            if roots.is_empty() {
                return Err(unreadable(&"no certificate in the file"));
            }
        }
    }
    Ok(roots)
}

/// `verify-ca` (and `require` with a root): the chain must lead to a trusted root; the host
/// name is not compared.
#[derive(Debug)]
struct IgnoreHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for IgnoreHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root: encryption without authentication, as libpq.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> (String, TlsParams) {
        split_tls_params(text).expect("parses")
    }

    #[test]
    fn url_parameters_are_taken_out_and_the_rest_kept() {
        let (rest, params) = split(
            "postgresql://u:p@db.example.com:5432/app?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        );
        assert_eq!(
            rest,
            "postgresql://u:p@db.example.com:5432/app?application_name=x"
        );
        assert_eq!(params.mode, SslMode::VerifyFull);
        assert_eq!(params.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        let (rest, params) = split("postgres://u@h/db?sslmode=require");
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!(params.mode, SslMode::Require);
        assert_eq!(split("postgres://u@h/db").1, TlsParams::default());
    }

    #[test]
    fn key_value_parameters_are_taken_out_with_libpq_quoting() {
        let (rest, params) = split(
            r"host=db.example.com  sslmode = verify-ca sslrootcert='/etc/my ca\'s.pem' password='a b\\c' dbname=app",
        );
        assert_eq!(rest, r"host=db.example.com password='a b\\c' dbname=app");
        assert_eq!(params.mode, SslMode::VerifyCa);
        assert_eq!(params.root_cert, Some(PathBuf::from("/etc/my ca's.pem")));
        assert!(rest.parse::<tokio_postgres::Config>().is_ok());
    }

    #[test]
    fn bad_parameters_are_refused_in_words() {
        for bad in [
            "host=h sslmode=verify",
            "postgres://h/db?sslmode=always",
            "host=h password='open",
            "host=h sslmode",
        ] {
            let err = split_tls_params(bad).expect_err(bad);
            assert!(
                err.to_string().contains("invalid database address"),
                "{err}"
            );
        }
    }

    #[test]
    fn only_the_verifying_modes_ask_the_driver_for_tls_always() {
        assert_eq!(SslMode::Disable.for_driver(), DriverSslMode::Disable);
        assert_eq!(SslMode::Prefer.for_driver(), DriverSslMode::Prefer);
        assert_eq!(SslMode::VerifyFull.for_driver(), DriverSslMode::Require);
        for mode in [SslMode::Prefer, SslMode::Require, SslMode::VerifyFull] {
            let params = TlsParams {
                mode,
                root_cert: None,
            };
            assert!(client_config(&params).is_ok());
        }
    }
}
