//! Secrets: the MQTT credentials and the web token, from the environment,
//! a systemd credential (`LoadCredential=`), a file or the config itself;
//! and the checks on the files they and the TLS material come from (a
//! secret file other users can read is a warning). Secrets never show in
//! `Debug` output, nor in errors (`error.rs` masks them).

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::mqtt::{MQTT_MAX_STRING, TOO_LONG_FOR_MQTT};
use super::{ConfigError, Validator, ENV_MQTT_PASSWORD, ENV_MQTT_USERNAME, ENV_WEB_TOKEN};

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Option<String>,
}

impl fmt::Debug for Credentials {
    // Keeps the password out of logs and `check` output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A new web token: 128 bits from the kernel's random source, in hex (so
/// it needs no escaping in TOML or a header).
pub fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        let rest = &mut bytes[filled..];
        // SAFETY: getrandom writes at most `rest.len()` bytes into `rest`.
        let got = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match usize::try_from(got) {
            Ok(got) => filled += got,
            Err(_) => {
                let error = std::io::Error::last_os_error();
                if error.kind() != std::io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A secret that never shows in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The environment variable systemd sets to the directory of the
/// service's credentials (`LoadCredential=NAME:PATH`).
const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// Secret files hold one short secret; anything bigger is the wrong file.
const MAX_SECRET_BYTES: u64 = 4096;

/// `Ok` for a regular file (or a link to one). Devices, FIFOs and
/// directories are refused: reading `/dev/zero` would never end, and
/// opening a FIFO waits for a writer.
fn regular_file(path: &Path) -> Result<(), String> {
    let metadata = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if metadata.is_file() {
        Ok(())
    } else {
        Err(format!("{} is not a regular file", path.display()))
    }
}

/// Reads a secret file of at most `MAX_SECRET_BYTES`.
fn read_secret(path: &Path) -> Result<String, String> {
    use std::io::Read;
    regular_file(path)?;
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut secret = String::new();
    std::fs::File::open(path)
        .map_err(cannot)?
        .take(MAX_SECRET_BYTES + 1)
        .read_to_string(&mut secret)
        .map_err(cannot)?;
    if secret.len() as u64 > MAX_SECRET_BYTES {
        return Err(format!(
            "{} is larger than {MAX_SECRET_BYTES} bytes; it should hold only the secret",
            path.display()
        ));
    }
    Ok(secret)
}

impl Validator<'_> {
    /// A path that must be a readable regular file.
    pub(super) fn readable(&self, path: toml::Spanned<PathBuf>, key: &str) -> Result<PathBuf, ConfigError> {
        // Checked before opening: opening a FIFO would wait for a writer.
        let opened = regular_file(path.get_ref()).and_then(|()| {
            std::fs::File::open(path.get_ref()).map_err(|e| format!("cannot read {}: {e}", path.get_ref().display()))
        });
        match opened {
            Ok(_) => {
                // A client certificate's private key is a secret too.
                if key.ends_with("key_file") {
                    self.warn_if_shared(path.get_ref(), key, 0o044);
                }
                Ok(path.into_inner())
            }
            Err(message) => Err(self.error(&path, key, message)),
        }
    }

    /// Warns when `path`, which holds the secret of `key`, has any of the
    /// permission bits of `others` (read by group or others).
    fn warn_if_shared(&self, path: &Path, key: &str, others: u32) {
        let Ok(mode) = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777) else {
            return;
        };
        if mode & others == 0 {
            return;
        }
        let who = if mode & others & 0o040 != 0 && mode & others & 0o004 == 0 {
            "its group"
        } else {
            "other users"
        };
        self.warnings.borrow_mut().push(format!(
            "`{key}`: {} is readable by {who} (mode {mode:04o}): `chmod 600` it, owned by the user majortom runs as, \
             or hand it over with systemd's LoadCredential= (see the README's Secrets)",
            path.display()
        ));
    }

    /// A secret from `$env`, else the systemd credential named like the key
    /// (`mqtt_password`, `web_token` in `$CREDENTIALS_DIRECTORY`), else the
    /// file at `<key>_file`, else `<key>` inline; both `<key>` and
    /// `<key>_file` set is an error.
    fn secret(
        &self,
        env: &str,
        file: Option<toml::Spanned<PathBuf>>,
        inline: Option<toml::Spanned<String>>,
        key: &str,
    ) -> Result<Option<String>, ConfigError> {
        let file_key = format!("{key}_file");
        let inline_name = key.rsplit('.').next().unwrap_or(key);
        if let (Some(_), Some(file)) = (&inline, &file) {
            let message = format!("set either `{inline_name}` or `{inline_name}_file`, not both");
            return Err(self.error(file, &file_key, message));
        }
        if let Some(from_env) = (self.ctx.env)(env) {
            return Ok(Some(from_env));
        }
        // `LoadCredential=mqtt_password:…` hands over `mqtt.password`.
        if let Some(dir) = (self.ctx.env)(CREDENTIALS_DIRECTORY).filter(|d| !d.is_empty()) {
            let credential = Path::new(&dir).join(key.replace('.', "_"));
            if credential.exists() {
                return match read_secret(&credential) {
                    Ok(secret) => Ok(Some(secret.trim_end_matches(['\r', '\n']).to_owned())),
                    Err(message) => Err(self.error(&toml::Spanned::new(0..0, ()), key, message)),
                };
            }
        }
        match (file, inline) {
            (Some(file), _) => match read_secret(file.get_ref()) {
                // A trailing newline from `echo secret > file` is not part of it.
                Ok(secret) => {
                    self.warn_if_shared(file.get_ref(), &file_key, 0o044);
                    Ok(Some(secret.trim_end_matches(['\r', '\n']).to_owned()))
                }
                Err(message) => Err(self.error(&file, &file_key, message)),
            },
            (None, Some(inline)) => {
                // The config is root:majortom 0640 when installed; readable
                // by every user, it gives the secret away.
                if let super::Origin::File(path) = self.origin {
                    self.warn_if_shared(path, key, 0o004);
                }
                Ok(Some(inline.into_inner()))
            }
            (None, None) => Ok(None),
        }
    }

    /// The dashboard's write token: long enough to be worth checking.
    pub(super) fn web_token(
        &self,
        token: Option<toml::Spanned<String>>,
        token_file: Option<toml::Spanned<PathBuf>>,
    ) -> Result<Option<Secret>, ConfigError> {
        let span = token
            .as_ref()
            .map(toml::Spanned::span)
            .or_else(|| token_file.as_ref().map(toml::Spanned::span))
            .unwrap_or(0..0);
        let Some(token) = self.secret(ENV_WEB_TOKEN, token_file, token, "web.token")? else {
            return Ok(None);
        };
        if token.chars().count() < 8 {
            let spanned = toml::Spanned::new(span, ());
            return Err(self.error(
                &spanned,
                "web.token",
                format!("must be at least 8 characters (from ${ENV_WEB_TOKEN}, web.token_file or web.token)"),
            ));
        }
        Ok(Some(Secret(token)))
    }

    /// Username from the file or `$MAJORTOM_MQTT_USERNAME`; the password from
    /// `$MAJORTOM_MQTT_PASSWORD`, `password_file` or `password`, in that order.
    pub(super) fn credentials(
        &self,
        username: Option<toml::Spanned<String>>,
        password: Option<toml::Spanned<String>>,
        password_file: Option<toml::Spanned<PathBuf>>,
    ) -> Result<Option<Credentials>, ConfigError> {
        let password_span = password
            .as_ref()
            .map(toml::Spanned::span)
            .or_else(|| password_file.as_ref().map(toml::Spanned::span))
            .unwrap_or(0..0);
        let password = self.secret(ENV_MQTT_PASSWORD, password_file, password, "mqtt.password")?;
        if password.as_ref().is_some_and(|p| p.len() > MQTT_MAX_STRING) {
            let spanned = toml::Spanned::new(password_span, ());
            return Err(self.error(&spanned, "mqtt.password", TOO_LONG_FOR_MQTT));
        }
        let username = match (self.ctx.env)(ENV_MQTT_USERNAME) {
            Some(from_env) => toml::Spanned::new(0..0, from_env),
            None => match username {
                Some(username) => username,
                None => return Ok(None),
            },
        };
        if username.get_ref().len() > MQTT_MAX_STRING {
            return Err(self.error(&username, "mqtt.username", TOO_LONG_FOR_MQTT));
        }
        let username = username.into_inner();
        Ok((!username.is_empty()).then_some(Credentials { username, password }))
    }
}
