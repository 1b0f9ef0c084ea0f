//! The npm socket.io-client's browser bundles at `/socket.io/socket.io.js`.
//!
//! The Node.js socket.io server serves its client by default, and many front ends load it with
//! `<script src="/socket.io/socket.io.js">`; a drop-in replacement has to answer the same. The
//! files are the registry's own (`chat-host/assets/socket.io-client/`, pinned in `VERSION` and
//! refreshed by `scripts/vendor-socket.io-client.sh`, MIT licence alongside), compiled into the
//! binary so a server needs nothing beside it.
//!
//! Served like the original: `socket.io.js`, `socket.io.min.js` and `socket.io.esm.min.js` with
//! their `.map` files; `ETag: "<client version>"` with `304` for a matching `If-None-Match`
//! (strong or weak); `Cache-Control: public, max-age=0`; compressed with br, gzip or deflate
//! when the client accepts it (each compressed once, then kept). The msgpack bundle is not
//! served: it speaks a parser chat-host does not. `--serve-client false` turns all of this off.

use std::sync::OnceLock;

use bytes::Bytes;
use hyper::header::{
    HeaderValue, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, VARY,
};
use hyper::{HeaderMap, Method, Response, StatusCode};

use crate::response::Body;

macro_rules! asset {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/assets/socket.io-client/",
                $name
            ))
            .as_slice(),
        )
    };
}

/// The files, by the name that follows `/socket.io/`.
const FILES: [(&str, &[u8]); 6] = [
    asset!("socket.io.js"),
    asset!("socket.io.js.map"),
    asset!("socket.io.min.js"),
    asset!("socket.io.min.js.map"),
    asset!("socket.io.esm.min.js"),
    asset!("socket.io.esm.min.js.map"),
];

/// The socket.io-client version the files come from.
pub fn version() -> &'static str {
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/socket.io-client/VERSION"
    ))
    .trim()
}

/// Which file a request path names, if it names one (`/socket.io/socket.io.js` → its index).
pub fn lookup(path: &str) -> Option<usize> {
    let name = path.strip_prefix(super::PATH)?;
    FILES.iter().position(|(n, _)| *n == name)
}

/// Content codings the bundles are offered in, in the server's order of preference.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Coding {
    Br,
    Gzip,
    Deflate,
}

impl Coding {
    const ALL: [Coding; 3] = [Coding::Br, Coding::Gzip, Coding::Deflate];

    fn name(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        }
    }

    fn encode(self, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        use std::io::Write;
        match self {
            Coding::Br => {
                let mut out = Vec::new();
                let params = brotli::enc::BrotliEncoderParams {
                    quality: 9,
                    ..Default::default()
                };
                brotli::BrotliCompress(&mut &bytes[..], &mut out, &params)?;
                Ok(out)
            }
            Coding::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                enc.write_all(bytes)?;
                enc.finish()
            }
            Coding::Deflate => {
                let mut enc =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
                enc.write_all(bytes)?;
                enc.finish()
            }
        }
    }
}

/// The coding to answer `Accept-Encoding` with: the highest `q` among those offered, the
/// server's order between equals; `None` for identity.
fn negotiate(accept: &str) -> Option<Coding> {
    let mut best: Option<(Coding, f32)> = None;
    let mut wildcard = None;
    let mut listed = Vec::new();
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if name == "*" {
            wildcard = Some(q);
            continue;
        }
        if let Some(c) = Coding::ALL.iter().find(|c| c.name() == name) {
            listed.push(*c);
            consider(&mut best, *c, q);
        }
    }
    if let Some(q) = wildcard {
        for c in Coding::ALL.iter().filter(|c| !listed.contains(c)) {
            consider(&mut best, *c, q);
        }
    }
    best.map(|(c, _)| c)
}

fn consider(best: &mut Option<(Coding, f32)>, coding: Coding, q: f32) {
    if q <= 0.0 {
        return;
    }
    let rank = |c: Coding| Coding::ALL.iter().position(|x| *x == c);
    let better = match best {
        None => true,
        Some((b, bq)) => q > *bq || (q == *bq && rank(coding) < rank(*b)),
    };
    if better {
        *best = Some((coding, q));
    }
}

/// Each file in each coding, made on first request.
fn encoded(index: usize, coding: Coding) -> Option<Bytes> {
    static CACHE: [[OnceLock<Option<Bytes>>; 3]; 6] = [const { [const { OnceLock::new() }; 3] }; 6];
    let slot = Coding::ALL.iter().position(|c| *c == coding)?;
    CACHE
        .get(index)?
        .get(slot)?
        .get_or_init(|| match coding.encode(FILES[index].1) {
            Ok(v) => Some(Bytes::from(v)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot compress the client bundle; sending it as is");
                None
            }
        })
        .clone()
}

/// Answers a `GET`/`HEAD` for the file at `index` (from [`lookup`]).
pub async fn serve(method: &Method, headers: &HeaderMap, index: usize) -> Response<Body> {
    let Some((name, bytes)) = FILES.get(index) else {
        return status(StatusCode::NOT_FOUND);
    };
    if method != Method::GET && method != Method::HEAD {
        return status(StatusCode::NOT_FOUND);
    }
    let etag = format!("\"{}\"", version());
    let matches = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == etag || t.strip_prefix("W/") == Some(etag.as_str()) || t == "*");
    let mut resp = if matches {
        status(StatusCode::NOT_MODIFIED)
    } else {
        let accept = headers
            .get(ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let coding = negotiate(accept);
        // Compressing the first time takes a few milliseconds of CPU: not on the reactor.
        let body = match coding {
            Some(c) => tokio::task::spawn_blocking(move || encoded(index, c))
                .await
                .ok()
                .flatten()
                .map(|b| (c, b)),
            None => None,
        };
        let mut resp = match body {
            Some((c, b)) => {
                let mut r = Response::new(crate::response::full(b));
                r.headers_mut()
                    .insert(CONTENT_ENCODING, HeaderValue::from_static(c.name()));
                r
            }
            None => Response::new(crate::response::full(Bytes::from_static(bytes))),
        };
        let ctype = if name.ends_with(".map") {
            "application/json; charset=utf-8"
        } else {
            "application/javascript; charset=utf-8"
        };
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
        resp
    };
    let h = resp.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=0"));
    h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    resp
}

fn status(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(crate::response::full(Bytes::new()));
    *r.status_mut() = code;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_files() {
        assert_eq!(lookup("/socket.io/socket.io.js"), Some(0));
        assert_eq!(lookup("/socket.io/socket.io.esm.min.js.map"), Some(5));
        assert_eq!(lookup("/socket.io/socket.io.msgpack.min.js"), None);
        assert_eq!(lookup("/socket.io/"), None);
        assert_eq!(lookup("/socket.io/../socket.io.js"), None);
        assert!(!version().is_empty());
    }

    #[test]
    fn codings_are_negotiated_by_q_then_preference() {
        assert_eq!(negotiate(""), None);
        assert_eq!(negotiate("identity"), None);
        assert_eq!(negotiate("gzip, deflate, br, zstd"), Some(Coding::Br));
        assert_eq!(negotiate("gzip, deflate"), Some(Coding::Gzip));
        assert_eq!(negotiate("br;q=0.5, gzip;q=0.8"), Some(Coding::Gzip));
        assert_eq!(negotiate("br;q=0, deflate"), Some(Coding::Deflate));
        assert_eq!(negotiate("*"), Some(Coding::Br));
        assert_eq!(negotiate("br;q=0, *;q=0.1"), Some(Coding::Gzip));
    }

    #[test]
    fn compressed_bundles_decode_to_the_file() {
        use std::io::Read;
        let gz = encoded(0, Coding::Gzip).expect("gzip");
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .expect("gunzip");
        assert_eq!(out, FILES[0].1);
        let br = encoded(2, Coding::Br).expect("br");
        let mut out = Vec::new();
        brotli::BrotliDecompress(&mut &br[..], &mut out).expect("unbrotli");
        assert_eq!(out, FILES[2].1);
        assert!(br.len() < FILES[2].1.len() / 2);
    }
}
