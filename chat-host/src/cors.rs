//! Cross-origin requests from browsers, for the REST routes and `/socket.io/` alike.
//!
//! Why every origin by default: the API authenticates with an explicit bearer token (header,
//! Socket.IO `auth` payload or query), never with an ambient cookie, so a page on another origin
//! can only do what the token it holds allows, with or without CORS. Front ends of the old
//! Express backend call it from their own origin (often with `withCredentials`), so the answer
//! echoes the page's origin and allows credentials. An operator who wants only their own pages
//! lists them in `CHAT_CORS_ORIGINS`; other origins then get no CORS headers, and the browser
//! refuses the page the response.

use bytes::Bytes;
use hyper::header::{
    HeaderMap, HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ORIGIN, VARY,
};
use hyper::{Response, StatusCode};

use crate::response::Body;

/// The page origin of a request, if the browser sent one and `allowed` lists it (an empty list
/// allows every origin).
pub(crate) fn origin(headers: &HeaderMap, allowed: &[String]) -> Option<HeaderValue> {
    let origin = headers.get(ORIGIN)?;
    let listed = allowed.is_empty()
        || origin
            .to_str()
            .is_ok_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o)));
    listed.then(|| origin.clone())
}

/// Adds the CORS headers for an allowed `origin` to a response.
pub(crate) fn allow(resp: &mut Response<Body>, origin: Option<HeaderValue>) {
    let h = resp.headers_mut();
    h.append(VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = origin else { return };
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Retry-After, Content-Disposition"),
    );
}

/// The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`): `204`, and for an
/// allowed origin the methods and headers it may use.
pub(crate) fn preflight(
    headers: &HeaderMap,
    allowed: &[String],
    methods: &'static str,
) -> Response<Body> {
    let mut resp = Response::new(crate::response::full(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let origin = origin(headers, allowed);
    if origin.is_some() {
        let h = resp.headers_mut();
        h.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(methods),
        );
        let requested = headers
            .get(ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("authorization, content-type"));
        h.insert(ACCESS_CONTROL_ALLOW_HEADERS, requested);
        h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    }
    allow(&mut resp, origin);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_origin(o: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, HeaderValue::from_str(o).unwrap());
        h
    }

    #[test]
    fn every_origin_by_default_listed_ones_otherwise() {
        let page = with_origin("https://lms.example.edu");
        assert!(origin(&page, &[]).is_some());
        assert!(origin(&HeaderMap::new(), &[]).is_none());
        let only = vec!["https://LMS.example.edu".to_string()];
        assert!(origin(&page, &only).is_some());
        assert!(origin(&with_origin("https://evil.example"), &only).is_none());
    }

    #[test]
    fn preflights_name_methods_only_for_allowed_origins() {
        let only = vec!["https://lms.example.edu".to_string()];
        let ok = preflight(&with_origin("https://lms.example.edu"), &only, "GET, PUT");
        assert_eq!(ok.status(), StatusCode::NO_CONTENT);
        assert_eq!(ok.headers()[ACCESS_CONTROL_ALLOW_METHODS], "GET, PUT");
        assert_eq!(
            ok.headers()[ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://lms.example.edu"
        );
        let refused = preflight(&with_origin("https://evil.example"), &only, "GET, PUT");
        assert_eq!(refused.status(), StatusCode::NO_CONTENT);
        assert!(refused.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert!(refused
            .headers()
            .get(ACCESS_CONTROL_ALLOW_METHODS)
            .is_none());
    }
}
