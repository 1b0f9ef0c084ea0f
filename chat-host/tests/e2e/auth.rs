//! JWT rules: missing, expired, forged, `alg: none`, algorithm switching; claim mapping; RS256.

use chat_host::JwtKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::support::*;

const PRIVATE: &str = include_str!("keys/private.pem");
const PUBLIC: &str = include_str!("keys/public.pem");
const OTHER_PRIVATE: &str = include_str!("keys/other_private.pem");

async fn status_of(w: &World, authorization: Option<String>) -> (u16, String) {
    let r = request_with(w.addr, "GET", "/api/v1/chat/course/c1", authorization, None).await;
    let code = if r.status == 200 {
        String::new()
    } else {
        r.code()
    };
    (r.status, code)
}

#[tokio::test]
async fn hs256_tokens_are_checked() {
    let w = World::start().await;
    let unauthorized = (401, "UNAUTHORIZED".to_string());
    assert_eq!(status_of(&w, Some(format!("Bearer {}", w.u1))).await.0, 200);
    assert_eq!(status_of(&w, None).await, unauthorized, "missing");
    assert_eq!(
        status_of(&w, Some("Bearer".into())).await,
        unauthorized,
        "empty"
    );
    assert_eq!(
        status_of(&w, Some(format!("Basic {}", w.u1))).await,
        unauthorized,
        "wrong scheme"
    );
    assert_eq!(
        status_of(&w, Some("Bearer not.a.jwt".into())).await,
        unauthorized,
        "garbage"
    );

    let expired = token_with(json!({"sub": "u1", "role": "student", "exp": now() - 3600}));
    assert_eq!(
        status_of(&w, Some(format!("Bearer {expired}"))).await,
        unauthorized,
        "expired"
    );
    let r = request(
        w.addr,
        "GET",
        "/api/v1/chat/course/c1",
        Some(&expired),
        None,
    )
    .await;
    assert_eq!(r.json()["message"], "token expired");

    let claims = json!({"sub": "u1", "role": "student", "exp": now() + 3600});
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    assert_eq!(
        status_of(&w, Some(format!("Bearer {forged}"))).await,
        unauthorized,
        "wrong signature"
    );

    // The payload of a valid token with the signature of another: tampering.
    let good = token("u1", "Ada", "student");
    let admin_payload = b64(json!({"sub": "u1", "role": "admin", "exp": now() + 3600})
        .to_string()
        .as_bytes());
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], admin_payload, parts[2]);
    assert_eq!(
        status_of(&w, Some(format!("Bearer {tampered}"))).await,
        unauthorized,
        "tampered"
    );

    // alg none, with and without a signature.
    let none_header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(claims.to_string().as_bytes());
    for t in [
        format!("{none_header}.{payload}."),
        format!("{none_header}.{payload}.{}", parts[2]),
    ] {
        assert_eq!(
            status_of(&w, Some(format!("Bearer {t}"))).await,
            unauthorized,
            "alg none"
        );
    }
    // Another HMAC algorithm with the right secret is still refused: the algorithm is pinned.
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        status_of(&w, Some(format!("Bearer {hs512}"))).await,
        unauthorized,
        "HS512"
    );
    // An RS256 token is refused by an HS256 server.
    let rs = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        status_of(&w, Some(format!("Bearer {rs}"))).await,
        unauthorized,
        "RS256 on HS256"
    );
    // exp is required.
    let no_exp = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "u1"}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        status_of(&w, Some(format!("Bearer {no_exp}"))).await,
        unauthorized,
        "no exp"
    );
    // A token without a user id.
    let anon = token_with(json!({"role": "student"}));
    assert_eq!(
        status_of(&w, Some(format!("Bearer {anon}"))).await,
        unauthorized,
        "no sub"
    );

    // The WebSocket refuses the same tokens at the upgrade.
    for bad in [expired.as_str(), forged.as_str(), hs512.as_str(), "x"] {
        assert_eq!(Ws::connect(w.addr, bad, true).await.err(), Some(401));
    }
    let stream = tokio::net::TcpStream::connect(w.addr).await.unwrap();
    assert_eq!(
        handshake(w.addr, stream, "/ws", None).await.err(),
        Some(401),
        "no token"
    );
    let stream = tokio::net::TcpStream::connect(w.addr).await.unwrap();
    let header = format!("Bearer {}", w.u1);
    assert!(
        handshake(w.addr, stream, "/ws", Some(&header))
            .await
            .is_ok(),
        "header token"
    );
}

#[tokio::test]
async fn node_backend_claims_are_understood() {
    let w = World::start().await;
    // id instead of sub, accountType in any case, firstName + lastName.
    let t = token_with(
        json!({"id": "i1", "accountType": "INSTRUCTOR", "firstName": "Ines", "lastName": "Ito"}),
    );
    let m = w.send(&t, "hello class").await;
    assert_eq!(
        m["sender"],
        json!({"id": "i1", "name": "Ines Ito", "avatar": null, "role": "instructor"})
    );
    let admin = token_with(json!({"sub": "boss", "accountType": "Admin", "name": "Boss"}));
    assert_eq!(
        w.put(&admin, "/api/v1/chat/courses/c9", json!({}))
            .await
            .status,
        200
    );
    let bad_role = token_with(json!({"sub": "u1", "role": "superuser"}));
    assert_eq!(
        w.get(&bad_role, "/api/v1/chat/course/c1").await.code(),
        "UNAUTHORIZED"
    );
}

#[tokio::test]
async fn rs256_is_pinned_against_algorithm_confusion() {
    let mut c = config();
    c.jwt = JwtKey::RsaPublicPem(PUBLIC.to_string());
    let server = chat_host::Server::start(c).await.unwrap();
    let addr = server.local_addr();
    let claims = json!({"sub": "admin", "role": "admin", "exp": now() + 3600});
    let sign = |alg: Algorithm, key: &EncodingKey| {
        jsonwebtoken::encode(&Header::new(alg), &claims, key).unwrap()
    };
    let good = sign(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(PRIVATE.as_bytes()).unwrap(),
    );
    let r = request(
        addr,
        "PUT",
        "/api/v1/chat/courses/rs",
        Some(&good),
        Some(json_body(&json!({}))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The classic switch: HS256 "signed" with the public key as the HMAC secret.
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(PUBLIC.as_bytes()),
    );
    let r = request(
        addr,
        "PUT",
        "/api/v1/chat/courses/rs",
        Some(&confused),
        Some(json_body(&json!({}))),
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (401, "UNAUTHORIZED"));
    // Another key pair.
    let other = sign(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(OTHER_PRIVATE.as_bytes()).unwrap(),
    );
    let r = request(
        addr,
        "PUT",
        "/api/v1/chat/courses/rs",
        Some(&other),
        Some(json_body(&json!({}))),
    )
    .await;
    assert_eq!(r.status, 401);
    // Another RSA algorithm with the right key.
    let rs512 = sign(
        Algorithm::RS512,
        &EncodingKey::from_rsa_pem(PRIVATE.as_bytes()).unwrap(),
    );
    let r = request(
        addr,
        "PUT",
        "/api/v1/chat/courses/rs",
        Some(&rs512),
        Some(json_body(&json!({}))),
    )
    .await;
    assert_eq!(r.status, 401);
    server.shutdown().await.unwrap();
}
