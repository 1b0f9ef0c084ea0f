//! Authentication: a bearer JWT in, a [`chat_core::Actor`] out.
//!
//! Where the token is, in one place for every transport: the `Authorization: Bearer` header,
//! the `token` query parameter of a WebSocket upgrade or Engine.IO handshake
//! ([`request_token`]), or a Socket.IO CONNECT's `auth` payload ([`auth_payload_token`]).
//!
//! The algorithm is pinned by the key kind (HS256 for a secret, RS256 for a public key), so a token
//! naming another algorithm (`none`, HS256 signed with the RSA public key, HS512...) is refused
//! before its signature is looked at; `exp` is required. Claims follow the Node backend's tokens:
//! the user id is `sub` or `id`, the role `role` or `accountType` (any case), the name `name` or
//! `firstName` + `lastName`. Every failure is `UNAUTHORIZED` with a short message that says what
//! was wrong without echoing the token.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use chat_core::{Actor, Error, Role};
use hyper::header::{HeaderMap, AUTHORIZATION};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

use crate::config::JwtKey;
use crate::error::HostError;

/// The name of the generated secret's file in the data folder.
pub const SECRET_FILE: &str = "jwt-secret";

/// Checks tokens.
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("algorithms", &self.validation.algorithms)
            .finish()
    }
}

/// A key ready to check tokens, and (when the server made the secret) an admin token to print.
#[derive(Debug)]
pub struct Keys {
    /// The checker.
    pub authenticator: Authenticator,
    /// A ready admin token, when the secret was generated.
    pub admin_token: Option<String>,
}

impl Authenticator {
    /// HS256 with this secret.
    pub fn hs256(secret: &[u8], leeway_secs: u64) -> Self {
        Self::with(
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
            leeway_secs,
        )
    }

    /// RS256 with this PEM public key.
    pub fn rs256(pem: &str, leeway_secs: u64) -> Result<Self, HostError> {
        let key = DecodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| HostError::Jwt(format!("bad RSA public key: {e}")))?;
        Ok(Self::with(key, Algorithm::RS256, leeway_secs))
    }

    fn with(key: DecodingKey, alg: Algorithm, leeway_secs: u64) -> Self {
        let mut validation = Validation::new(alg);
        validation.leeway = leeway_secs;
        validation.validate_exp = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        Authenticator { key, validation }
    }

    /// Loads the key the settings name; with none, makes (or reloads) the data folder's secret.
    pub fn load(
        jwt: &JwtKey,
        data_dir: Option<&Path>,
        leeway_secs: u64,
    ) -> Result<Keys, HostError> {
        match jwt {
            JwtKey::Secret(s) => Ok(Keys {
                authenticator: Self::hs256(s.as_bytes(), leeway_secs),
                admin_token: None,
            }),
            JwtKey::RsaPublicPem(pem) => Ok(Keys {
                authenticator: Self::rs256(pem, leeway_secs)?,
                admin_token: None,
            }),
            JwtKey::Generate => {
                let secret = match data_dir {
                    Some(dir) => load_or_create_secret(dir)?,
                    None => random_secret()?,
                };
                let token = issue_hs256(
                    secret.as_bytes(),
                    &serde_json::json!({"sub": "admin", "name": "Admin", "role": "admin"}),
                    24 * 3600,
                )?;
                Ok(Keys {
                    authenticator: Self::hs256(secret.as_bytes(), leeway_secs),
                    admin_token: Some(token),
                })
            }
        }
    }

    /// The caller of a token.
    pub fn authenticate(&self, token: &str) -> Result<Actor, Error> {
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => Error::Unauthorized("token expired".into()),
            ErrorKind::InvalidAlgorithm => {
                Error::Unauthorized("token algorithm not accepted".into())
            }
            ErrorKind::MissingRequiredClaim(c) => {
                Error::Unauthorized(format!("token has no {c} claim"))
            }
            _ => Error::Unauthorized("invalid token".into()),
        })?;
        actor_from_claims(&data.claims)
    }

    /// The caller of a request: its token ([`request_token`]) checked.
    pub fn from_request(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        allow_query: bool,
    ) -> Result<Actor, Error> {
        match request_token(headers, query, allow_query) {
            Some(token) => self.authenticate(&token),
            None => Err(Error::Unauthorized("missing bearer token".into())),
        }
    }
}

/// The token a request carries: `Authorization: Bearer …`, else (for WebSocket upgrades and
/// Engine.IO handshakes, where a browser cannot set headers, when `allow_query` is set) the first
/// `token` query parameter, if it is not empty.
pub(crate) fn request_token(
    headers: &HeaderMap,
    query: Option<&str>,
    allow_query: bool,
) -> Option<String> {
    bearer(headers).or_else(|| {
        if allow_query {
            query_token(query)
        } else {
            None
        }
    })
}

/// The token of a Socket.IO CONNECT's `auth` payload: `{"token": "…"}`, with or without a
/// `Bearer ` prefix; `None` when absent or empty.
pub(crate) fn auth_payload_token(auth: Option<&Value>) -> Option<String> {
    auth.and_then(|a| a.get("token"))
        .and_then(Value::as_str)
        .map(|t| t.trim().trim_start_matches("Bearer ").trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_string())
}

fn query_token(query: Option<&str>) -> Option<String> {
    crate::http::query_pairs(query?)
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The actor a token's claims describe.
pub fn actor_from_claims(claims: &Map<String, Value>) -> Result<Actor, Error> {
    let text = |key: &str| -> Option<String> {
        match claims.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    };
    let id = text("sub")
        .or_else(|| text("id"))
        .ok_or_else(|| Error::Unauthorized("token has no sub or id claim".into()))?;
    let role = match text("role").or_else(|| text("accountType")) {
        Some(r) => r
            .parse::<Role>()
            .map_err(|_| Error::Unauthorized("token has an unknown role".into()))?,
        None => Role::default(),
    };
    let name = text("name")
        .or_else(|| {
            let full = [text("firstName"), text("lastName")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            (!full.is_empty()).then_some(full)
        })
        .unwrap_or_else(|| id.clone());
    let avatar = text("avatar").or_else(|| text("image"));
    Ok(Actor {
        id,
        name,
        avatar,
        role,
    })
}

/// Signs claims with HS256, adding `iat` and an `exp` `ttl_secs` from now.
pub fn issue_hs256(secret: &[u8], claims: &Value, ttl_secs: u64) -> Result<String, HostError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut claims = claims.as_object().cloned().unwrap_or_default();
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + ttl_secs).into());
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| HostError::Jwt(e.to_string()))
}

fn random_secret() -> Result<String, HostError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| HostError::Jwt(format!("no randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn load_or_create_secret(dir: &Path) -> Result<String, HostError> {
    let path = dir.join(SECRET_FILE);
    let io = |source| HostError::DataDir {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    std::fs::create_dir_all(dir).map_err(|source| HostError::DataDir {
        path: dir.into(),
        source,
    })?;
    let secret = random_secret()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(io)?;
    std::io::Write::write_all(&mut file, secret.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_follow_the_node_backend() {
        let c = serde_json::json!({"id": 7, "accountType": "Instructor", "firstName": "Ada", "lastName": "L"});
        let a = actor_from_claims(c.as_object().unwrap()).unwrap();
        assert_eq!(
            (a.id.as_str(), a.role, a.name.as_str()),
            ("7", Role::Instructor, "Ada L")
        );
        let c = serde_json::json!({"sub": "u1", "id": "x", "role": "ADMIN", "name": "Root"});
        let a = actor_from_claims(c.as_object().unwrap()).unwrap();
        assert_eq!(
            (a.id.as_str(), a.role, a.name.as_str()),
            ("u1", Role::Admin, "Root")
        );
        let c = serde_json::json!({"role": "student"});
        assert!(actor_from_claims(c.as_object().unwrap()).is_err());
        let c = serde_json::json!({"sub": "u", "role": "teacher"});
        assert!(actor_from_claims(c.as_object().unwrap()).is_err());
    }

    #[test]
    fn tokens_are_found_in_the_header_the_query_or_the_auth_payload() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            request_token(&headers, Some("token=q"), true).as_deref(),
            Some("q")
        );
        assert_eq!(request_token(&headers, Some("token=q"), false), None);
        assert_eq!(request_token(&headers, Some("token="), true), None);
        headers.insert(AUTHORIZATION, "bearer  h ".parse().unwrap());
        assert_eq!(
            request_token(&headers, Some("token=q"), true).as_deref(),
            Some("h")
        );
        let auth = serde_json::json!({"token": " Bearer t "});
        assert_eq!(auth_payload_token(Some(&auth)).as_deref(), Some("t"));
        assert_eq!(
            auth_payload_token(Some(&serde_json::json!({"token": " "}))),
            None
        );
        assert_eq!(auth_payload_token(None), None);
    }

    #[test]
    fn secret_file_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_secret(dir.path()).unwrap();
        let b = load_or_create_secret(dir.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
    }
}
