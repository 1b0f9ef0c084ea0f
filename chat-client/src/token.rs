//! Who a token is for. The client does not verify tokens (the server does); it reads the user id
//! from the claims (`sub`, or `id` as a string or a number, as the server does) to know which
//! messages are this user's and whose cache a folder holds.

use base64::Engine as _;
use serde_json::Value;

use crate::error::{ClientError, Result};

/// The user id a JWT names.
pub(crate) fn user_id(token: &str) -> Result<String> {
    let bad = |why: &str| ClientError::InvalidArgument(format!("token: {why}"));
    let payload = token.split('.').nth(1).ok_or_else(|| bad("not a JWT"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| bad("the claims are not base64url"))?;
    let claims: Value =
        serde_json::from_slice(&bytes).map_err(|_| bad("the claims are not JSON"))?;
    let id = match claims.get("sub").or_else(|| claims.get("id")) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(bad("no user id (sub or id)")),
    };
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            b.encode(r#"{"alg":"HS256"}"#),
            b.encode(claims)
        )
    }

    #[test]
    fn reads_sub_or_id() {
        assert_eq!(user_id(&jwt(r#"{"sub":"ada"}"#)).unwrap(), "ada");
        assert_eq!(user_id(&jwt(r#"{"id":42}"#)).unwrap(), "42");
        assert_eq!(user_id(&jwt(r#"{"id":"u7","sub":"u8"}"#)).unwrap(), "u8");
    }

    #[test]
    fn refuses_what_names_nobody() {
        for bad in [
            jwt(r#"{"name":"x"}"#),
            jwt(r#"{"sub":""}"#),
            "abc".to_string(),
            "a.!!.c".to_string(),
        ] {
            assert!(
                matches!(user_id(&bad), Err(ClientError::InvalidArgument(_))),
                "{bad}"
            );
        }
    }
}
