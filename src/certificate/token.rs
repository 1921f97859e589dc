//! Verification tokens (核验令牌) printed in the QR code of every document.
//!
//! A token names one print job and carries the gateway's Ed25519 signature over it, so a forged
//! or altered code is told apart from an unknown job without a lookup, and anyone holding the
//! gateway's public key can check a token offline. Form: `base64url(job id, 16 bytes)` `.`
//! `base64url(signature, 64 bytes)`, 109 characters.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use uuid::Uuid;

/// Domain separation: these signatures mean "tongban print job", nothing else.
const CONTEXT: &[u8] = b"tongban print-job token v1:";

/// The gateway's token key (打证核验签名密钥).
#[derive(Clone)]
pub struct TokenKey {
    key: SigningKey,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey(public {})", self.public_base64())
    }
}

impl TokenKey {
    /// A key from its 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> TokenKey {
        TokenKey { key: SigningKey::from_bytes(&seed) }
    }

    /// Loads the seed at `path`, or creates it (mode 0600) on first start.
    pub fn load_or_create(path: &Path) -> Result<TokenKey, String> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    format!(
                        "{}: a token key file holds exactly 32 bytes, this one {}; delete it to have a new key made (printed QR codes then stop verifying)",
                        path.display(),
                        bytes.len()
                    )
                })?;
                Ok(TokenKey::from_seed(seed))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(|error| format!("no randomness for a token key: {error}"))?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                }
                write_private(path, &seed).map_err(|e| format!("{}: {e}", path.display()))?;
                tracing::info!(path = %path.display(), "Created the print token key.");
                Ok(TokenKey::from_seed(seed))
            }
            Err(error) => Err(format!("{}: {error}", path.display())),
        }
    }

    /// The public key, standard base64, for offline checks.
    pub fn public_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.key.verifying_key().as_bytes())
    }

    /// The token for a job.
    pub fn issue(&self, job: Uuid) -> String {
        let signature = self.key.sign(&message(job));
        format!("{}.{}", URL_SAFE_NO_PAD.encode(job.as_bytes()), URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    /// The job a token names, when the token is ours and unaltered.
    pub fn check(&self, token: &str) -> Option<Uuid> {
        let (job, signature) = token.split_once('.')?;
        let job = Uuid::from_slice(&URL_SAFE_NO_PAD.decode(job).ok()?).ok()?;
        let signature = ed25519_dalek::Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?).ok()?;
        self.key.verifying_key().verify_strict(&message(job), &signature).ok()?;
        Some(job)
    }
}

fn message(job: Uuid) -> Vec<u8> {
    let mut message = CONTEXT.to_vec();
    message.extend_from_slice(job.as_bytes());
    message
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_job_and_resists_tampering() {
        let key = TokenKey::from_seed([1; 32]);
        let job = Uuid::now_v7();
        let token = key.issue(job);
        assert_eq!(token.len(), 109);
        assert_eq!(key.check(&token), Some(job));
        // Another job id under the same signature, another key, garbage: all unknown.
        let other = key.issue(Uuid::now_v7());
        let swapped = format!("{}.{}", other.split_once('.').unwrap().0, token.split_once('.').unwrap().1);
        assert_eq!(key.check(&swapped), None);
        assert_eq!(TokenKey::from_seed([2; 32]).check(&token), None);
        for garbage in ["", ".", "abc", "abc.def", "%%%.%%%"] {
            assert_eq!(key.check(garbage), None);
        }
    }

    #[test]
    fn the_key_file_is_created_once_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/token.key");
        let first = TokenKey::load_or_create(&path).unwrap();
        let again = TokenKey::load_or_create(&path).unwrap();
        assert_eq!(first.public_base64(), again.public_base64());
        std::fs::write(&path, b"short").unwrap();
        assert!(TokenKey::load_or_create(&path).unwrap_err().contains("32 bytes"));
    }
}
