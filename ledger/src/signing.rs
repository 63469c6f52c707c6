//! Ed25519 keys and signed checkpoints.
//!
//! A checkpoint signs the RFC 8785 canonical JSON of
//! `{"hash": <hex>, "position": <n>, "signed_at": <RFC 3339, microseconds, Z>}`.
//! Keys are PKCS#8 PEM files; the key id is the first 16 hex digits of the SHA-256 of the
//! public key's raw 32 bytes, so a verifier can tell which key signed a checkpoint.

use std::path::Path;

use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::entry::{format_recorded_at, Hash};
use crate::error::LedgerError;

/// A signed statement that the ledger had `hash` at `position` at `signed_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The position covered.
    pub position: i64,
    /// The chain hash at that position.
    pub hash: Hash,
    /// When it was signed (the sealer's clock).
    pub signed_at: DateTime<Utc>,
    /// Which key signed it.
    pub key_id: String,
    /// The Ed25519 signature.
    pub signature: [u8; 64],
}

#[derive(Serialize)]
struct Signed<'a> {
    hash: &'a str,
    position: i64,
    signed_at: &'a str,
}

/// The exact bytes a checkpoint signs.
pub fn checkpoint_message(position: i64, hash: &Hash, signed_at: DateTime<Utc>) -> Vec<u8> {
    let hash = hex::encode(hash);
    let signed_at = format_recorded_at(signed_at);
    let message = Signed {
        hash: &hash,
        position,
        signed_at: &signed_at,
    };
    serde_json_canonicalizer::to_vec(&message)
        .expect("two strings and an integer always canonicalise")
}

/// The id of a public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// The sealer's signing key.
#[derive(Clone)]
pub struct LedgerKey {
    signing: SigningKey,
}

impl std::fmt::Debug for LedgerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LedgerKey({})", self.key_id())
    }
}

impl LedgerKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self {
            signing: SigningKey::generate(&mut rand_core::OsRng),
        }
    }

    /// Reads a PKCS#8 PEM key.
    pub fn from_pem(pem: &str) -> Result<Self, LedgerError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(|signing| Self { signing })
            .map_err(|e| LedgerError::Key(format!("not an Ed25519 PKCS#8 PEM private key: {e}")))
    }

    /// The key as PKCS#8 PEM.
    pub fn to_pem(&self) -> Result<String, LedgerError> {
        self.signing
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| LedgerError::Key(e.to_string()))
    }

    /// Loads the key at `path`, or generates one there (mode 0600) when the file does not
    /// exist. Returns the key and whether it was generated.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), LedgerError> {
        match std::fs::read_to_string(path) {
            Ok(pem) => Ok((Self::from_pem(&pem)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| LedgerError::Key(format!("{}: {e}", dir.display())))?;
                }
                write_private(path, key.to_pem()?.as_bytes())?;
                Ok((key, true))
            }
            Err(e) => Err(LedgerError::Key(format!("{}: {e}", path.display()))),
        }
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The key's id.
    pub fn key_id(&self) -> String {
        key_id(&self.verifying_key())
    }

    /// The public key as SPKI PEM, as served at `/v1/ledger/public-key`.
    pub fn public_pem(&self) -> Result<String, LedgerError> {
        public_pem(&self.verifying_key())
    }

    /// Signs a checkpoint.
    pub fn sign(&self, position: i64, hash: Hash, signed_at: DateTime<Utc>) -> Checkpoint {
        let signature = self
            .signing
            .sign(&checkpoint_message(position, &hash, signed_at));
        Checkpoint {
            position,
            hash,
            signed_at,
            key_id: self.key_id(),
            signature: signature.to_bytes(),
        }
    }
}

/// A public key as SPKI PEM.
pub fn public_pem(key: &VerifyingKey) -> Result<String, LedgerError> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| LedgerError::Key(e.to_string()))
}

/// Reads an SPKI PEM public key.
pub fn public_key_from_pem(pem: &str) -> Result<VerifyingKey, LedgerError> {
    VerifyingKey::from_public_key_pem(pem)
        .map_err(|e| LedgerError::Key(format!("not an Ed25519 public key PEM: {e}")))
}

/// Why a checkpoint does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointProblem {
    /// Signed by another key.
    UnknownKey(String),
    /// The signature does not match the statement.
    BadSignature,
}

/// Checks a checkpoint's signature with `key`.
pub fn verify_checkpoint(
    checkpoint: &Checkpoint,
    key: &VerifyingKey,
) -> Result<(), CheckpointProblem> {
    if checkpoint.key_id != key_id(key) {
        return Err(CheckpointProblem::UnknownKey(checkpoint.key_id.clone()));
    }
    let message = checkpoint_message(checkpoint.position, &checkpoint.hash, checkpoint.signed_at);
    key.verify(&message, &Signature::from_bytes(&checkpoint.signature))
        .map_err(|_| CheckpointProblem::BadSignature)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), LedgerError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| LedgerError::Key(format!("{}: {e}", path.display())))?;
    file.write_all(bytes)
        .map_err(|e| LedgerError::Key(format!("{}: {e}", path.display())))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), LedgerError> {
    std::fs::write(path, bytes).map_err(|e| LedgerError::Key(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_a_forged_one_does_not() {
        let key = LedgerKey::generate();
        let checkpoint = key.sign(42, [7u8; 32], at());
        assert_eq!(verify_checkpoint(&checkpoint, &key.verifying_key()), Ok(()));
        let mut forged = checkpoint.clone();
        forged.hash = [8u8; 32];
        assert_eq!(
            verify_checkpoint(&forged, &key.verifying_key()),
            Err(CheckpointProblem::BadSignature)
        );
        let other = LedgerKey::generate();
        assert!(matches!(
            verify_checkpoint(&checkpoint, &other.verifying_key()),
            Err(CheckpointProblem::UnknownKey(_))
        ));
    }

    #[test]
    fn keys_round_trip_through_pem_files_created_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("keys/ledger.pem");
        let (key, generated) = LedgerKey::load_or_generate(&path).expect("generated");
        assert!(generated);
        let (again, generated) = LedgerKey::load_or_generate(&path).expect("loaded");
        assert!(!generated);
        assert_eq!(key.key_id(), again.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let public = public_key_from_pem(&key.public_pem().expect("pem")).expect("parses");
        assert_eq!(public, key.verifying_key());
        assert!(LedgerKey::from_pem("garbage").is_err());
    }

    #[test]
    fn the_signed_message_is_canonical_json() {
        let message = checkpoint_message(3, &[0u8; 32], at());
        assert_eq!(
            String::from_utf8(message).expect("utf-8"),
            format!(
                r#"{{"hash":"{}","position":3,"signed_at":"2026-03-02T09:00:00.000000Z"}}"#,
                "0".repeat(64)
            )
        );
    }
}
