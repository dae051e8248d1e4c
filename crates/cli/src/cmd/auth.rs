//! The docker CLI's credentials: `config.json` in `$DOCKER_CONFIG` (default `~/.docker`) with
//! `auths` (base64 `user:password` in `auth`, or tokens), and credential helpers
//! (`credsStore`, `credHelpers`: `docker-credential-<name> get|store|erase` speaking JSON on
//! stdin/stdout), so `docker login` and `berth login` share what they store.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The key Docker Hub's credentials are stored under.
pub const INDEX_SERVER: &str = "https://index.docker.io/v1/";

/// docker's `types.AuthConfig` (also the `X-Registry-Auth` payload).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthEntry {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub serveraddress: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identitytoken: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registrytoken: String,
}

impl AuthEntry {
    /// docker's `X-Registry-Auth` value: base64url of the JSON.
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE
            .encode(serde_json::to_vec(self).expect("auth serializes"))
    }
}

/// `getAuthConfigKey`: Docker Hub's names map to its index URL, others stay host names.
pub fn auth_key(domain: &str) -> String {
    match domain {
        "docker.io" | "index.docker.io" => INDEX_SERVER.into(),
        d => d.into(),
    }
}

/// `credentials.ConvertToHostname`: `https://host:5000/v2/` → `host:5000`.
pub fn to_hostname(s: &str) -> String {
    let stripped = s.split_once("://").map(|(_, r)| r).unwrap_or(s);
    stripped.split('/').next().unwrap_or(stripped).to_string()
}

/// Where the CLI's config lives: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker")
}

/// `config.json`, keeping every key berth does not use as it was.
pub struct ConfigFile {
    pub path: PathBuf,
    raw: Map<String, Value>,
    pub auths: BTreeMap<String, AuthEntry>,
    pub creds_store: Option<String>,
    pub cred_helpers: BTreeMap<String, String>,
}

fn decode_auth(s: &str) -> Result<(String, String), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("illegal base64 data: {e}"))?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    match text.split_once(':') {
        Some((u, p)) if !u.is_empty() => Ok((u.to_string(), p.trim_matches('\0').to_string())),
        _ => Err("invalid auth configuration file".into()),
    }
}

impl ConfigFile {
    pub fn load_default() -> Result<ConfigFile, String> {
        ConfigFile::load(&config_dir())
    }

    pub fn load(dir: &Path) -> Result<ConfigFile, String> {
        let path = dir.join("config.json");
        let raw: Map<String, Value> = match std::fs::read(&path) {
            Ok(b) if b.iter().all(|c| c.is_ascii_whitespace()) => Map::new(),
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| format!("loading config file: {}: {e}", path.display()))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(format!("loading config file: {}: {e}", path.display())),
        };
        let mut auths = BTreeMap::new();
        if let Some(Value::Object(a)) = raw.get("auths") {
            for (k, v) in a {
                let mut e: AuthEntry = serde_json::from_value(v.clone()).unwrap_or_default();
                if !e.auth.is_empty() {
                    let (u, p) = decode_auth(&e.auth)?;
                    e.username = u;
                    e.password = p;
                }
                e.auth.clear();
                e.serveraddress = k.clone();
                auths.insert(k.clone(), e);
            }
        }
        let creds_store = raw
            .get("credsStore")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let cred_helpers = raw
            .get("credHelpers")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        Ok(ConfigFile {
            path,
            raw,
            auths,
            creds_store,
            cred_helpers,
        })
    }

    /// Writes the file back (temp + rename, mode 0600), auths encoded as docker does.
    pub fn save(&mut self) -> Result<(), String> {
        let mut auths = Map::new();
        for (k, e) in &self.auths {
            let mut out = e.clone();
            if !(e.username.is_empty() && e.password.is_empty()) {
                out.auth = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", e.username, e.password));
            }
            out.username.clear();
            out.password.clear();
            out.serveraddress.clear();
            auths.insert(k.clone(), serde_json::to_value(&out).expect("serializes"));
        }
        self.raw.insert("auths".into(), Value::Object(auths));
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // docker writes the file with tab indentation.
        let mut text = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut text, fmt);
        self.raw.serialize(&mut ser).expect("serializes");
        let tmp = dir.join(format!(".config.json.{}", std::process::id()));
        let write = || -> io::Result<()> {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("saving {}: {e}", self.path.display())
        })
    }

    /// The helper for a key (`credHelpers` first, then `credsStore`).
    pub fn helper_for(&self, key: &str) -> Option<String> {
        self.cred_helpers
            .get(key)
            .cloned()
            .or_else(|| self.creds_store.clone())
    }

    fn file_get(&self, key: &str) -> AuthEntry {
        if let Some(e) = self.auths.get(key) {
            return e.clone();
        }
        self.auths
            .iter()
            .find(|(k, _)| to_hostname(k) == key)
            .map(|(_, e)| e.clone())
            .unwrap_or_default()
    }

    /// `GetAuthConfig(key)`: from the helper if one is configured, else the file.
    pub fn get(&self, key: &str) -> Result<AuthEntry, String> {
        let mut e = self.file_get(key);
        if let Some(h) = self.helper_for(key)
            && let Some((user, secret)) = helper_get(&helper_program(&h), key)?
        {
            if user == "<token>" {
                e.identitytoken = secret;
            } else {
                e.username = user;
                e.password = secret;
            }
            e.serveraddress = key.to_string();
        }
        Ok(e)
    }

    /// Stores credentials (in the helper, or in the file). True when stored in plain text.
    pub fn store(&mut self, e: AuthEntry) -> Result<bool, String> {
        let key = e.serveraddress.clone();
        if let Some(h) = self.helper_for(&key) {
            let (user, secret) = if e.identitytoken.is_empty() {
                (e.username.clone(), e.password.clone())
            } else {
                ("<token>".to_string(), e.identitytoken.clone())
            };
            helper_store(&helper_program(&h), &key, &user, &secret)?;
            let mut kept = e;
            kept.username.clear();
            kept.password.clear();
            kept.identitytoken.clear();
            self.auths.insert(key, kept);
            self.save()?;
            return Ok(false);
        }
        let plain = !e.password.is_empty();
        if self.auths.get(&key) == Some(&e) {
            return Ok(plain);
        }
        self.auths.insert(key, e);
        self.save()?;
        Ok(plain)
    }

    /// Removes credentials for `key`; Ok(false) if there were none in the file.
    pub fn erase(&mut self, key: &str) -> Result<bool, String> {
        if let Some(h) = self.helper_for(key) {
            helper_erase(&helper_program(&h), key)?;
        }
        if self.auths.remove(key).is_some() {
            self.save()?;
            return Ok(true);
        }
        Ok(false)
    }
}

fn helper_program(suffix: &str) -> String {
    format!("docker-credential-{suffix}")
}

fn run_helper(program: &str, action: &str, input: &[u8]) -> Result<(bool, String), String> {
    let mut child = Command::new(program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("error getting credentials - err: exec: \"{program}\": {e}, out: ``")
        })?;
    if let Some(mut si) = child.stdin.take() {
        let _ = si.write_all(input);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    let mut text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if text.is_empty() {
        text = String::from_utf8_lossy(&out.stderr).trim().to_string();
    }
    Ok((out.status.success(), text))
}

/// `docker-credential-x get`: Some((username, secret)) or None when it has nothing.
pub fn helper_get(program: &str, server: &str) -> Result<Option<(String, String)>, String> {
    let (ok, out) = run_helper(program, "get", server.as_bytes())?;
    if !ok {
        if out.contains("credentials not found") {
            return Ok(None);
        }
        return Err(format!(
            "error getting credentials - err: exit status 1, out: `{out}`"
        ));
    }
    #[derive(Deserialize)]
    struct Creds {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let c: Creds = serde_json::from_str(&out)
        .map_err(|e| format!("error getting credentials - err: {e}, out: `{out}`"))?;
    if c.username.is_empty() && c.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some((c.username, c.secret)))
}

pub fn helper_store(program: &str, server: &str, user: &str, secret: &str) -> Result<(), String> {
    let input = serde_json::json!({"ServerURL": server, "Username": user, "Secret": secret});
    let (ok, out) = run_helper(program, "store", input.to_string().as_bytes())?;
    if !ok {
        return Err(format!(
            "error storing credentials - err: exit status 1, out: `{out}`"
        ));
    }
    Ok(())
}

pub fn helper_erase(program: &str, server: &str) -> Result<(), String> {
    let (ok, out) = run_helper(program, "erase", server.as_bytes())?;
    if !ok && !out.contains("credentials not found") {
        return Err(format!(
            "error erasing credentials - err: exit status 1, out: `{out}`"
        ));
    }
    Ok(())
}

/// The `X-Registry-Auth` header for an image on `domain`, from the stored credentials (`{}`
/// when there are none or they cannot be read, as docker sends).
pub fn registry_auth(domain: &str) -> String {
    let key = auth_key(domain);
    match ConfigFile::load_default().and_then(|c| c.get(&key)) {
        Ok(e) => e.encode(),
        Err(msg) => {
            eprintln!("WARNING: {msg}");
            AuthEntry::default().encode()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trip_keeps_other_keys() {
        let dir = std::env::temp_dir().join(format!("berth-auth-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.json"),
            r#"{"auths":{"https://127.0.0.1:5000":{"auth":"dTpw"}},"psFormat":"x"}"#,
        )
        .unwrap();
        let mut c = ConfigFile::load(&dir).unwrap();
        let e = c.get("127.0.0.1:5000").unwrap();
        assert_eq!((e.username.as_str(), e.password.as_str()), ("u", "p"));
        assert!(
            c.store(AuthEntry {
                username: "a".into(),
                password: "b".into(),
                serveraddress: "h:1".into(),
                ..Default::default()
            })
            .unwrap()
        );
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["psFormat"], "x");
        assert_eq!(v["auths"]["h:1"]["auth"], "YTpi");
        assert!(v["auths"]["h:1"].get("username").is_none());
        assert!(c.erase("h:1").unwrap());
        assert!(!c.erase("h:1").unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn helpers_speak_docker_protocol() {
        let dir = std::env::temp_dir().join(format!("berth-helper-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = dir.join("store");
        let prog = dir.join("docker-credential-test");
        std::fs::write(
            &prog,
            format!(
                "#!/bin/sh\ncase \"$1\" in\n store) cat > {s};;\n get) if [ -f {s} ]; then echo '{{\"ServerURL\":\"h\",\"Username\":\"u\",\"Secret\":\"s\"}}'; else echo 'credentials not found in native keychain'; exit 1; fi;;\n erase) rm -f {s};;\nesac\n",
                s = store.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        let p = prog.to_str().unwrap();
        assert_eq!(helper_get(p, "h").unwrap(), None);
        helper_store(p, "h", "u", "s").unwrap();
        let stored: Value =
            serde_json::from_str(&std::fs::read_to_string(&store).unwrap()).unwrap();
        assert_eq!(stored["ServerURL"], "h");
        assert_eq!(stored["Secret"], "s");
        assert_eq!(helper_get(p, "h").unwrap(), Some(("u".into(), "s".into())));
        helper_erase(p, "h").unwrap();
        assert_eq!(helper_get(p, "h").unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn keys_and_hosts() {
        assert_eq!(auth_key("docker.io"), INDEX_SERVER);
        assert_eq!(auth_key("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(to_hostname("https://h:5000/v2/"), "h:5000");
        assert_eq!(to_hostname("h:5000"), "h:5000");
        let e = AuthEntry {
            username: "u".into(),
            ..Default::default()
        };
        let dec = base64::engine::general_purpose::URL_SAFE
            .decode(e.encode())
            .unwrap();
        assert_eq!(String::from_utf8(dec).unwrap(), r#"{"username":"u"}"#);
    }
}
