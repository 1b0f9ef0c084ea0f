//! What a file is, from its bytes alone.
//!
//! Magic numbers (the `infer` crate) name most formats, but not what a media *container* holds:
//! the four bytes of a WebM file are the same whether it carries a voice message or a film, and
//! Ogg starts with `OggS` whether it holds Opus or Theora. An allow-list that says "WebM audio"
//! has to look inside, so containers are opened with maintained demuxers and their tracks read:
//!
//! - Matroska / WebM (`matroska-demuxer`): `audio/webm` when every track is audio, `video/webm`
//!   otherwise (`audio/x-matroska` / `video/x-matroska` for the `matroska` doc type);
//! - Ogg (`ogg`): each logical stream's first packet names its codec; Opus, Vorbis, FLAC and
//!   Speex make `audio/ogg`, Theora, Daala, Dirac or VP8 make `video/ogg`;
//! - ISO BMFF / MP4 (`mp4parse`, Firefox's parser): `audio/mp4` when every track is audio,
//!   `video/mp4` otherwise.
//!
//! A container that does not parse, or holds no track, is `application/octet-stream`: refused by
//! every allow-list that does not name that. Parsers run on untrusted bytes, so they run behind
//! `catch_unwind` as well as their own error handling.

use std::io::Cursor;

/// The content type of `bytes`, from their content; `text/plain` for UTF-8 text without
/// control characters (other than whitespace); `application/octet-stream` when unknown.
pub fn sniff(bytes: &[u8]) -> String {
    if let Some(kind) = infer::get(bytes) {
        let mime = kind.mime_type();
        let container = match mime {
            "video/webm" | "video/x-matroska" | "audio/x-matroska" => Some(Container::Matroska),
            "audio/ogg" | "audio/opus" | "video/ogg" | "application/ogg" | "audio/x-flac" => {
                // infer names FLAC by its own magic too; only Ogg-wrapped FLAC starts with OggS.
                bytes.starts_with(b"OggS").then_some(Container::Ogg)
            }
            "video/mp4" | "audio/mp4" | "audio/m4a" | "video/quicktime" | "audio/x-m4a" => {
                Some(Container::Mp4)
            }
            _ => None,
        };
        return match container {
            Some(c) => inspect(c, bytes),
            None => mime.to_string(),
        };
    }
    if looks_like_html(bytes) {
        return "text/html".to_string();
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(|c| c.is_control() && !c.is_whitespace()) => {
            "text/plain".to_string()
        }
        _ => OCTET_STREAM.to_string(),
    }
}

const OCTET_STREAM: &str = "application/octet-stream";

#[derive(Clone, Copy)]
enum Container {
    Matroska,
    Ogg,
    Mp4,
}

/// What a container's tracks are.
#[derive(Default)]
struct Tracks {
    audio: usize,
    video: usize,
    other: usize,
}

impl Tracks {
    /// `audio/{sub}` when it holds audio only, `video/{sub}` when it holds any video, unknown when
    /// it holds neither.
    fn mime(&self, sub: &str) -> String {
        if self.video > 0 {
            format!("video/{sub}")
        } else if self.audio > 0 && self.other == 0 {
            format!("audio/{sub}")
        } else {
            OCTET_STREAM.to_string()
        }
    }
}

fn inspect(container: Container, bytes: &[u8]) -> String {
    let probed = std::panic::catch_unwind(|| match container {
        Container::Matroska => matroska(bytes),
        Container::Ogg => ogg(bytes),
        Container::Mp4 => mp4(bytes),
    });
    match probed {
        Ok(Some(mime)) => mime,
        Ok(None) => OCTET_STREAM.to_string(),
        Err(_) => {
            tracing::warn!("a media parser panicked on an upload; treated as unknown");
            OCTET_STREAM.to_string()
        }
    }
}

fn matroska(bytes: &[u8]) -> Option<String> {
    use matroska_demuxer::{MatroskaFile, TrackType};
    let file = MatroskaFile::open(Cursor::new(bytes)).ok()?;
    let mut tracks = Tracks::default();
    for track in file.tracks() {
        match track.track_type() {
            TrackType::Audio => tracks.audio += 1,
            TrackType::Video => tracks.video += 1,
            _ => tracks.other += 1,
        }
    }
    let sub = match file.ebml_header().doc_type().trim_end_matches('\0') {
        "webm" => "webm",
        _ => "x-matroska",
    };
    Some(tracks.mime(sub))
}

/// Streams an Ogg file may multiplex; more is not a voice message.
const MAX_OGG_STREAMS: usize = 16;

fn ogg(bytes: &[u8]) -> Option<String> {
    let mut reader = ogg::PacketReader::new(Cursor::new(bytes));
    let mut tracks = Tracks::default();
    // Every stream's first page (its identification header) comes before any other page; the
    // page after them must read too.
    loop {
        let packet = match reader.read_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(_) => return None,
        };
        if !packet.first_in_stream() {
            break;
        }
        let data = &packet.data;
        let audio = [&b"OpusHead"[..], b"\x01vorbis", b"\x7fFLAC", b"Speex   "];
        let video = [&b"\x80theora"[..], b"\x80daala", b"BBCD\0", b"OVP80"];
        if audio.iter().any(|m| data.starts_with(m)) {
            tracks.audio += 1;
        } else if video.iter().any(|m| data.starts_with(m)) {
            tracks.video += 1;
        } else if data.starts_with(b"fishead\0") || data.starts_with(b"Skeleton") {
            // The Skeleton index stream describes the others; it is not media.
        } else {
            tracks.other += 1;
        }
        if tracks.audio + tracks.video + tracks.other > MAX_OGG_STREAMS {
            return None;
        }
    }
    Some(tracks.mime("ogg"))
}

fn mp4(bytes: &[u8]) -> Option<String> {
    use mp4parse::TrackType;
    let context = mp4parse::read_mp4(&mut Cursor::new(bytes)).ok()?;
    let mut tracks = Tracks::default();
    for track in context.tracks.iter() {
        match track.track_type {
            TrackType::Audio => tracks.audio += 1,
            TrackType::Video | TrackType::Picture | TrackType::AuxiliaryVideo => tracks.video += 1,
            // Chapter titles and timed metadata ride along with audio-only files too.
            TrackType::Metadata => {}
            _ => tracks.other += 1,
        }
    }
    Some(tracks.mime("mp4"))
}

fn looks_like_html(bytes: &[u8]) -> bool {
    let head: Vec<u8> = bytes
        .iter()
        .take(512)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    let head = String::from_utf8_lossy(&head);
    let trimmed = head.trim_start_matches('\u{feff}').trim_start();
    [
        "<!doctype html",
        "<html",
        "<script",
        "<head",
        "<body",
        "<iframe",
        "<svg",
        "<?xml",
    ]
    .iter()
    .any(|tag| trimmed.starts_with(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/media/");
        std::fs::read(format!("{path}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn sniffs_from_content_not_name() {
        let png =
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
        assert_eq!(sniff(png), "image/png");
        assert_eq!(sniff(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(sniff(b"hello\nworld\t!"), "text/plain");
        assert_eq!(
            sniff(b"<!DOCTYPE html><html><script>alert(1)</script>"),
            "text/html"
        );
        assert_eq!(sniff(b"  <html><body>x"), "text/html");
        assert_eq!(sniff(b"\x00\x01\x02binary"), OCTET_STREAM);
    }

    #[test]
    fn containers_are_named_by_their_tracks() {
        // Files made by ffmpeg: see tests/fixtures/media/make.sh.
        for (file, mime) in [
            ("voice.webm", "audio/webm"),
            ("voice-seekable.webm", "audio/webm"),
            ("av.webm", "video/webm"),
            ("video.webm", "video/webm"),
            ("voice.ogg", "audio/ogg"),
            ("vorbis.ogg", "audio/ogg"),
            ("theora.ogv", "video/ogg"),
            ("voice.m4a", "audio/mp4"),
            ("video.mp4", "video/mp4"),
            ("voice.mp3", "audio/mpeg"),
            ("voice.wav", "audio/x-wav"),
        ] {
            assert_eq!(sniff(&fixture(file)), mime, "{file}");
        }
    }

    #[test]
    fn broken_containers_are_unknown() {
        for file in ["voice.webm", "av.webm", "voice.ogg", "voice.m4a"] {
            let bytes = fixture(file);
            // The magic number survives, the structure does not.
            for cut in [40, 64] {
                let mut broken = bytes[..cut].to_vec();
                broken.extend(std::iter::repeat_n(0xff, 64));
                assert_eq!(sniff(&broken), OCTET_STREAM, "{file} cut at {cut}");
            }
        }
    }

    #[test]
    fn any_prefix_of_a_container_is_answered() {
        // Truncated uploads never panic, and a voice message cut short never passes for video.
        for file in [
            "voice.webm",
            "voice.ogg",
            "voice.m4a",
            "av.webm",
            "theora.ogv",
            "video.mp4",
        ] {
            let bytes = fixture(file);
            for len in 0..bytes.len() {
                let mime = sniff(&bytes[..len]);
                if file.starts_with("voice") {
                    assert!(
                        !mime.starts_with("video/"),
                        "{file}[..{len}] sniffed as {mime}"
                    );
                }
            }
        }
    }
}
