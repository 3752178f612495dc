//! Identities: a key pair and the self-signed certificate that names it.
//!
//! Technicians and the rendezvous keep one for years, in a file only their
//! user can read; the agent makes a new one at every start and keeps it in
//! memory only, so nothing can reconnect to an agent after it exits.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lifebuoy_proto::Fingerprint;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

/// What can go wrong making, loading or saving an identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Key generation or certificate signing failed.
    #[error("cannot create a key: {0}")]
    Generate(#[from] rcgen::Error),
    /// The key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The key file is readable by other users; refusing to use it.
    #[error(
        "{path} can be read by other users (mode {mode:o}); a key anyone can read lets them \
         pose as you. Run: chmod 600 {path}"
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file does not hold one certificate and one private key.
    #[error("{path} is not a lifebuoy key file: {problem}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong.
        problem: String,
    },
}

/// A certificate and the private key it was made for.
pub struct Identity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    fingerprint: Fingerprint,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Identity").field("fingerprint", &self.fingerprint).finish()
    }
}

impl Identity {
    /// A fresh Ed25519 key and a self-signed certificate naming `common_name`.
    ///
    /// Ed25519 because its signatures are the fastest to make and check of
    /// what rustls offers, and the handshake makes and checks two.
    pub fn generate(common_name: &str) -> Result<Identity, IdentityError> {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let mut params = rcgen::CertificateParams::new(vec!["lifebuoy".to_owned()])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
        let cert = params.self_signed(&key_pair)?;
        let key = PrivatePkcs8KeyDer::from(key_pair.serialize_der());
        Ok(Identity::from_parts(cert.der().clone(), key))
    }

    fn from_parts(cert: CertificateDer<'static>, key: PrivatePkcs8KeyDer<'static>) -> Identity {
        let fingerprint = Fingerprint::of_certificate(&cert);
        Identity { cert, key, fingerprint }
    }

    /// Loads the identity in `path`, or creates one there if the file does
    /// not exist. The boolean tells whether it was created.
    pub fn load_or_create(path: &Path, common_name: &str) -> Result<(Identity, bool), IdentityError> {
        match Identity::load(path) {
            Ok(id) => Ok((id, false)),
            Err(IdentityError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                let id = Identity::generate(common_name)?;
                id.save_new(path)?;
                Ok((id, true))
            }
            Err(e) => Err(e),
        }
    }

    /// Loads an identity written by [`Identity::save_new`]. Refuses a file
    /// that other users can read.
    pub fn load(path: &Path) -> Result<Identity, IdentityError> {
        let io = |source| IdentityError::Io { path: path.to_owned(), source };
        let malformed =
            |problem: &str| IdentityError::Malformed { path: path.to_owned(), problem: problem.into() };
        let file = fs::File::open(path).map_err(io)?;
        check_private(path, &file)?;
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(&file, 64 * 1024), &mut text).map_err(io)?;
        let cert = CertificateDer::from_pem_slice(&text).map_err(|_| malformed("no CERTIFICATE block"))?;
        let key = match PrivateKeyDer::from_pem_slice(&text).map_err(|_| malformed("no PRIVATE KEY block"))? {
            PrivateKeyDer::Pkcs8(k) => k,
            _ => return Err(malformed("the private key is not PKCS#8")),
        };
        let id = Identity::from_parts(cert, key);
        // A file whose key does not match its certificate would fail every
        // handshake with an obscure error; say so now.
        id.certified_key()
            .map_err(|e| malformed(&format!("key and certificate do not belong together ({e})")))?;
        Ok(id)
    }

    /// Writes the identity to a new file readable only by this user (mode
    /// 0600, folder 0700). Never overwrites: a technician's key is their
    /// name in the staff directory.
    pub fn save_new(&self, path: &Path) -> Result<(), IdentityError> {
        let io = |source| IdentityError::Io { path: path.to_owned(), source };
        if let Some(dir) = path.parent() {
            create_private_dir(dir).map_err(|source| IdentityError::Io { path: dir.to_owned(), source })?;
        }
        let text = pem::encode_many(&[
            pem::Pem::new("PRIVATE KEY", self.key.secret_pkcs8_der()),
            pem::Pem::new("CERTIFICATE", self.cert.as_ref()),
        ]);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io)?;
        file.write_all(text.as_bytes()).and_then(|_| file.sync_all()).map_err(io)
    }

    /// SHA-256 of the certificate: what others pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The certificate in DER.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The private key in PKCS#8 DER.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    /// A secret for `purpose` derived from the private key: the same for
    /// as long as the key is kept, and telling nothing about the key.
    pub fn derive_secret(&self, purpose: &str) -> [u8; 32] {
        blake3::derive_key(purpose, self.key.secret_pkcs8_der())
    }

    /// Certificate and signing key as rustls uses them.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, rustls::Error> {
        let provider = rustls::crypto::ring::default_provider();
        CertifiedKey::from_der(vec![self.cert.clone()], self.private_key(), &provider).map(Arc::new)
    }
}

#[cfg(unix)]
fn check_private(path: &Path, file: &fs::File) -> Result<(), IdentityError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file
        .metadata()
        .map_err(|source| IdentityError::Io { path: path.to_owned(), source })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(IdentityError::TooOpen { path: path.to_owned(), mode: mode & 0o777 });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _file: &fs::File) -> Result<(), IdentityError> {
    // The per-user profile folder's ACL protects it on Windows.
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_identities_differ() {
        let a = Identity::generate("a").unwrap();
        let b = Identity::generate("a").unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn saved_identity_loads_with_the_same_fingerprint_and_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/technician.pem");
        let (created, was_new) = Identity::load_or_create(&path, "Anna").unwrap();
        assert!(was_new);
        let (loaded, was_new) = Identity::load_or_create(&path, "Anna").unwrap();
        assert!(!was_new);
        assert_eq!(created.fingerprint(), loaded.fingerprint());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        }
        // Never overwrites.
        assert!(Identity::generate("x").unwrap().save_new(&path).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn key_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        Identity::generate("x").unwrap().save_new(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Identity::load(&path).unwrap_err();
        assert!(matches!(err, IdentityError::TooOpen { mode: 0o644, .. }), "{err}");
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn garbage_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(&path).unwrap().write_all(b"hello").unwrap();
        assert!(matches!(Identity::load(&path), Err(IdentityError::Malformed { .. })));
    }
}
