//! The local cloud's master key file and what derives from it: AES-256-GCM
//! encryption of SecureString values, and the per-principal credentials the
//! endpoint verifies signatures against.
//!
//! The file lives outside the project tree (a checkout never carries it): in
//! `$PANTSTACK_KEY_DIR`, else `$XDG_DATA_HOME/pantstack/keys`, else
//! `~/.local/share/pantstack/keys`, one file per project directory and environment,
//! created with mode 0600 in a 0700 directory. It holds a credential seed (never
//! rotated, so running tasks keep valid credentials) and the encryption keys, newest
//! last; `rotate` adds a key, the caller re-encrypts, `retire` drops the old ones.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use pantstack_awsproto::sigv4::{hex, hmac};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const NONCE: usize = 12;

/// Credentials of one principal (a service unit, or `user` for a person's shell).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
}

pub struct Keyring {
    path: PathBuf,
    seed: [u8; 32],
    /// (id, key), the current key last.
    keys: Vec<(u32, [u8; 32])>,
}

/// N random bytes from the kernel.
fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("no randomness: {e}"))?;
    Ok(b)
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        let h = (b[2 * i] as char).to_digit(16)?;
        let l = (b[2 * i + 1] as char).to_digit(16)?;
        *o = (h * 16 + l) as u8;
    }
    Some(out)
}

/// Where key files live (see the module documentation).
pub fn key_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PANTSTACK_KEY_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("pantstack").join("keys");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
    PathBuf::from(home)
        .join(".local")
        .join("share")
        .join("pantstack")
        .join("keys")
}

/// The key file of a project directory and environment: named after the
/// directory and a hash of its absolute path, so two checkouts never share keys.
pub fn key_file(root: &Path, env: &str) -> PathBuf {
    let abs = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let text = abs.to_string_lossy();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let name: String = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into())
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    key_dir().join(format!("{name}-{h:016x}-{env}.key"))
}

/// Where a state directory records which master key encrypted its values.
pub fn binding_path(state_dir: &Path) -> PathBuf {
    state_dir.join("key-binding.json")
}

/// Opens the master key of a state directory. The state records the key file and
/// the fingerprint of the key that encrypted it: a project moved or copied to
/// another directory looks for another key file (keys are bound to the project's
/// absolute path, so two checkouts never share one), and instead of creating a
/// fresh key that decrypts nothing, this says what happened and how to move the key.
pub fn open_bound(state_dir: &Path, key_file: &Path) -> Result<Keyring, String> {
    let binding = binding_path(state_dir);
    let bound: Option<Value> = std::fs::read(&binding)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(b) = &bound {
        let old = b["key_file"].as_str().unwrap_or("?");
        let moved = |why: &str| {
            format!(
                "the local cloud's secrets in {} are encrypted under the master key {old}, but {why}: \
                 the project was moved or copied (a key belongs to one project directory, so that two checkouts never share one). \
                 Run `pantstack secrets move-key` to take the key along{}; or, to start over without those secrets, delete {}",
                state_dir.display(),
                if Path::new(old).exists() {
                    String::new()
                } else {
                    format!(" (it needs {old}: copy it from where the project was first)")
                },
                state_dir.display()
            )
        };
        if !key_file.exists() {
            return Err(moved(&format!(
                "this project directory's key file {} does not exist",
                key_file.display()
            )));
        }
        let ring = Keyring::open_or_create(key_file)?;
        if b["fingerprint"].as_str() != Some(ring.fingerprint().as_str()) {
            return Err(moved(&format!(
                "this project directory's key file {} holds another key",
                key_file.display()
            )));
        }
        return Ok(ring);
    }
    let ring = Keyring::open_or_create(key_file)?;
    write_binding(state_dir, &ring)?;
    Ok(ring)
}

/// Records that `ring` encrypts the values of `state_dir`.
pub fn write_binding(state_dir: &Path, ring: &Keyring) -> Result<(), String> {
    let binding = binding_path(state_dir);
    let text = json!({
        "key_file": ring.path.to_string_lossy(),
        "fingerprint": ring.fingerprint(),
    })
    .to_string();
    let tmp = binding.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &binding))
        .map_err(|e| format!("cannot write {}: {e}", binding.display()))
}

/// `pantstack secrets move-key`: copies the key a state directory is bound to into
/// the key file of the project's present directory. Returns (from, to).
pub fn move_key(state_dir: &Path, key_file: &Path) -> Result<(PathBuf, PathBuf), String> {
    let bound: Value = std::fs::read(binding_path(state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            format!(
                "{} records no master key (the local cloud never ran here): nothing to move",
                state_dir.display()
            )
        })?;
    let from = PathBuf::from(bound["key_file"].as_str().unwrap_or_default());
    if from == key_file {
        return Err(format!(
            "the key is in place already ({})",
            key_file.display()
        ));
    }
    let old = Keyring::open_or_create_existing(&from).map_err(|e| {
        format!("{e}; copy that file from where the project was first, then run this again")
    })?;
    if bound["fingerprint"].as_str() != Some(old.fingerprint().as_str()) {
        return Err(format!(
            "{} holds another key than the one that encrypted {}",
            from.display(),
            state_dir.display()
        ));
    }
    if key_file.exists() {
        let there = Keyring::open_or_create(key_file)?;
        if there.fingerprint() != old.fingerprint() {
            return Err(format!(
                "{} exists and holds another key; if nothing of this directory needs it, delete it and run this again",
                key_file.display()
            ));
        }
    } else {
        let text = std::fs::read_to_string(&from)
            .map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let ring = Keyring::parse(&from, &text)?;
        if let Some(dir) = key_file.parent() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let ring = Keyring {
            path: key_file.to_path_buf(),
            ..ring
        };
        ring.save()?;
    }
    let moved = Keyring::open_or_create(key_file)?;
    write_binding(state_dir, &moved)?;
    Ok((from, key_file.to_path_buf()))
}

impl Keyring {
    /// A short public digest of the key file's seed (never the key): tells whether
    /// two key files are the same key file. The seed is never rotated, so the
    /// fingerprint outlives `rotate-key`.
    pub fn fingerprint(&self) -> String {
        hex(&hmac(&self.seed, b"pantstack master key fingerprint")[..12])
    }

    /// Opens an existing key file (never creates one).
    pub fn open_or_create_existing(path: &Path) -> Result<Keyring, String> {
        if !path.exists() {
            return Err(format!("the key file {} does not exist", path.display()));
        }
        Keyring::open_or_create(path)
    }

    /// Opens the key file, creating it (0600, directory 0700) with fresh random keys
    /// when missing. A file readable by others is refused.
    pub fn open_or_create(path: &Path) -> Result<Keyring, String> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        match std::fs::metadata(path) {
            Ok(meta) => {
                if meta.permissions().mode() & 0o077 != 0 {
                    return Err(format!(
                        "the master key file {} is readable by other users (mode {:o}); run `chmod 600 {}`",
                        path.display(),
                        meta.permissions().mode() & 0o777,
                        path.display()
                    ));
                }
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Self::parse(path, &text)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
                let ring = Keyring {
                    path: path.to_path_buf(),
                    seed: random()?,
                    keys: vec![(1, random()?)],
                };
                // create_new: two processes racing to create it cannot both win.
                let mut f = match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Self::open_or_create(path);
                    }
                    Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
                };
                f.write_all(ring.text().as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                Ok(ring)
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    fn parse(path: &Path, text: &str) -> Result<Keyring, String> {
        let bad = || format!("{} is not a Pantstack key file", path.display());
        let v: Value = serde_json::from_str(text).map_err(|_| bad())?;
        let seed = v["seed"].as_str().and_then(unhex32).ok_or_else(bad)?;
        let mut keys = Vec::new();
        for k in v["keys"].as_array().ok_or_else(bad)? {
            let id = k["id"].as_u64().ok_or_else(bad)? as u32;
            let key = k["key"].as_str().and_then(unhex32).ok_or_else(bad)?;
            keys.push((id, key));
        }
        if keys.is_empty() {
            return Err(bad());
        }
        Ok(Keyring {
            path: path.to_path_buf(),
            seed,
            keys,
        })
    }

    fn text(&self) -> String {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|(id, k)| json!({ "id": id, "key": hex(k) }))
            .collect();
        format!(
            "{}\n",
            json!({ "format": "pantstack-keys-1", "seed": hex(&self.seed), "keys": keys })
        )
    }

    /// Replaces the file atomically (temp 0600, fsync, rename).
    fn save(&self) -> Result<(), String> {
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = self.path.with_extension("key.tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        f.write_all(self.text().as_bytes())
            .and_then(|_| f.sync_all())
            .and_then(|_| std::fs::rename(&tmp, &self.path))
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ids of the keys this file holds (values sealed under others cannot
    /// be opened with it).
    pub fn key_ids(&self) -> Vec<u32> {
        self.keys.iter().map(|(id, _)| *id).collect()
    }

    /// The id of the key new values are encrypted under.
    pub fn current_id(&self) -> u32 {
        self.keys.last().map(|(id, _)| *id).unwrap_or(0)
    }

    /// Adds a new current key (old ones stay readable until `retire`).
    pub fn rotate(&mut self) -> Result<u32, String> {
        let id = self.current_id() + 1;
        self.keys.push((id, random()?));
        self.save()?;
        Ok(id)
    }

    /// Drops every key but the current one (after everything was re-encrypted).
    pub fn retire(&mut self) -> Result<(), String> {
        let n = self.keys.len();
        if n > 1 {
            self.keys.drain(..n - 1);
            self.save()?;
        }
        Ok(())
    }

    /// Encrypts `plain` under the current key, bound to `aad` (the parameter's
    /// name): `key id (4, BE) | nonce (12) | ciphertext+tag`.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, String> {
        let (id, key) = self
            .keys
            .last()
            .ok_or_else(|| "no encryption key".to_string())?;
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| "bad key length".to_string())?;
        let nonce = random::<NONCE>()?;
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| "encryption failed".to_string())?;
        let mut out = Vec::with_capacity(4 + NONCE + ct.len());
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts what `seal` wrote for the same `aad`.
    pub fn open(&self, aad: &[u8], blob: &[u8]) -> Result<Vec<u8>, String> {
        if blob.len() < 4 + NONCE + 16 {
            return Err("ciphertext too short".into());
        }
        let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
        let (_, key) = self.keys.iter().find(|(k, _)| *k == id).ok_or_else(|| {
            format!("encrypted under key {id}, which this key file does not hold")
        })?;
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| "bad key length".to_string())?;
        cipher
            .decrypt(
                Nonce::from_slice(&blob[4..4 + NONCE]),
                Payload {
                    msg: &blob[4 + NONCE..],
                    aad,
                },
            )
            .map_err(|_| {
                format!(
                    "the value does not decrypt with the master key {}: that file holds another key than the one that encrypted it (replaced, or taken from another copy of the project), or the stored value was altered",
                    self.path.display()
                )
            })
    }

    /// The key id a sealed value was encrypted under.
    pub fn key_of(blob: &[u8]) -> Option<u32> {
        blob.get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Credentials of `principal`, derived from the seed: the same on every start,
    /// never stored.
    pub fn credentials(&self, principal: &str) -> Credentials {
        let a = hmac(&self.seed, format!("access:{principal}").as_bytes());
        let s = hmac(&self.seed, format!("secret:{principal}").as_bytes());
        // Access key ids look like AWS's: 20 upper-case characters.
        let access: String = hex(&a[..8]).to_ascii_uppercase();
        Credentials {
            access_key: format!("PSKA{access}"),
            secret_key: hex(&s[..20]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_rotate_and_permissions() {
        let dir = std::env::temp_dir().join(format!("pantstack-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("k.key");
        let mut ring = Keyring::open_or_create(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let blob = ring.seal(b"/a/b", b"hunter2").unwrap();
        assert!(!blob.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(ring.open(b"/a/b", &blob).unwrap(), b"hunter2");
        assert!(ring.open(b"/a/c", &blob).is_err(), "bound to the name");
        let creds = ring.credentials("api");
        assert_eq!(creds.access_key.len(), 20);
        assert_ne!(creds, ring.credentials("user"));
        ring.rotate().unwrap();
        let again = Keyring::open_or_create(&path).unwrap();
        assert_eq!(again.current_id(), 2);
        assert_eq!(again.open(b"/a/b", &blob).unwrap(), b"hunter2");
        assert_eq!(
            again.credentials("api"),
            creds,
            "rotation keeps credentials"
        );
        let new = again.seal(b"/a/b", b"x").unwrap();
        assert_eq!(Keyring::key_of(&new), Some(2));
        let mut again = again;
        again.retire().unwrap();
        assert!(again.open(b"/a/b", &blob).is_err(), "the old key is gone");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            Keyring::open_or_create(&path)
                .err()
                .unwrap()
                .contains("chmod 600")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
