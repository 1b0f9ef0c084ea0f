//! How long a voice message plays, from its own headers: what a player shows before it downloads
//! the whole file (`durationMs` in the file metadata).
//!
//! - Ogg (`ogg`): the last granule position of the Opus or Vorbis stream, over its sample rate
//!   (48 kHz for Opus, less its pre-skip);
//! - WebM / Matroska (`matroska-demuxer`): the Segment's Duration; browsers' `MediaRecorder`
//!   writes none, so then the last audio frame's timestamp plus one frame;
//! - MP3 (`mp3-duration`, which walks the frames);
//! - WAV (`hound`): samples per channel over the sample rate.
//!
//! Any other type, or a file these readers cannot make sense of, has no duration. Like the
//! sniffers, the readers run on untrusted bytes behind `catch_unwind`.

use std::io::Cursor;

/// The playing time of an audio file of (sniffed) type `mime`, in milliseconds.
pub fn duration_ms(mime: &str, bytes: &[u8]) -> Option<u64> {
    let probed = std::panic::catch_unwind(|| match mime {
        "audio/ogg" => ogg(bytes),
        "audio/webm" | "audio/x-matroska" => matroska(bytes),
        "audio/mpeg" => mp3(bytes),
        "audio/x-wav" | "audio/wav" | "audio/wave" => wav(bytes),
        _ => None,
    });
    match probed {
        Ok(ms) => ms,
        Err(_) => {
            tracing::warn!(mime, "an audio reader panicked on an upload; no duration");
            None
        }
    }
}

/// Seconds as milliseconds, rounded; `None` for what no recording lasts (negative, not finite,
/// over a day).
fn millis(seconds: f64) -> Option<u64> {
    (seconds.is_finite() && (0.0..=86_400.0).contains(&seconds))
        .then(|| (seconds * 1000.0).round() as u64)
}

/// An Ogg logical stream's codec timing: samples per second and samples to skip at the start.
struct Timing {
    rate: u64,
    pre_skip: u64,
    last_granule: Option<u64>,
}

fn ogg(bytes: &[u8]) -> Option<u64> {
    let mut reader = ogg::PacketReader::new(Cursor::new(bytes));
    let mut streams: std::collections::HashMap<u32, Timing> = std::collections::HashMap::new();
    while let Ok(Some(packet)) = reader.read_packet() {
        let serial = packet.stream_serial();
        if packet.first_in_stream() {
            let data = &packet.data;
            let le16 = |at: usize| {
                data.get(at..at + 2)
                    .map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])))
            };
            let le32 = |at: usize| {
                data.get(at..at + 4)
                    .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            };
            let timing = if data.starts_with(b"OpusHead") {
                // Opus granules always count 48 kHz samples; the first `pre_skip` are not played.
                le16(10).map(|pre_skip| Timing {
                    rate: 48_000,
                    pre_skip,
                    last_granule: None,
                })
            } else if data.starts_with(b"\x01vorbis") {
                le32(12).map(|rate| Timing {
                    rate,
                    pre_skip: 0,
                    last_granule: None,
                })
            } else if data.starts_with(b"Speex   ") {
                le32(36).map(|rate| Timing {
                    rate,
                    pre_skip: 0,
                    last_granule: None,
                })
            } else {
                None
            };
            if let Some(t) = timing.filter(|t| t.rate > 0) {
                streams.insert(serial, t);
            }
            continue;
        }
        // A page's granule position (all ones: no packet ends on it) belongs to its last packet.
        if let Some(t) = streams.get_mut(&serial) {
            let granule = packet.absgp_page();
            if packet.last_in_page() && granule != u64::MAX {
                t.last_granule = Some(granule);
            }
        }
    }
    streams
        .values()
        .filter_map(|t| {
            let samples = t.last_granule?.checked_sub(t.pre_skip)?;
            millis(samples as f64 / t.rate as f64)
        })
        .max()
}

fn matroska(bytes: &[u8]) -> Option<u64> {
    use matroska_demuxer::{Frame, MatroskaFile, TrackType};
    let mut file = MatroskaFile::open(Cursor::new(bytes)).ok()?;
    let scale_ns = file.info().timestamp_scale().get() as f64;
    if let Some(d) = file.info().duration() {
        return millis(d * scale_ns / 1e9);
    }
    let audio: Vec<u64> = file
        .tracks()
        .iter()
        .filter(|t| t.track_type() == TrackType::Audio)
        .map(|t| t.track_number().get())
        .collect();
    let mut frame = Frame::default();
    let (mut last, mut step) = (None::<u64>, 0u64);
    while file.next_frame(&mut frame).ok()? {
        if !audio.contains(&frame.track) {
            continue;
        }
        // The gap to the previous frame is the best guess of how long the last one plays.
        if let Some(prev) = last {
            step = frame.timestamp.saturating_sub(prev);
        }
        last = Some(frame.timestamp);
    }
    let end = last?.saturating_add(step);
    millis(end as f64 * scale_ns / 1e9)
}

fn mp3(bytes: &[u8]) -> Option<u64> {
    let d = mp3_duration::from_read(&mut Cursor::new(bytes)).ok()?;
    millis(d.as_secs_f64())
}

fn wav(bytes: &[u8]) -> Option<u64> {
    let reader = hound::WavReader::new(Cursor::new(bytes)).ok()?;
    let rate = reader.spec().sample_rate;
    (rate > 0).then(|| millis(f64::from(reader.duration()) / f64::from(rate)))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/media/");
        std::fs::read(format!("{path}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn voice_messages_of_every_allowed_audio_type_have_their_length() {
        // Each fixture is 0.5 s of tone (tests/fixtures/media/make.sh); codecs pad a little.
        for (file, mime) in [
            ("voice.webm", "audio/webm"),
            ("voice-seekable.webm", "audio/webm"),
            ("voice.ogg", "audio/ogg"),
            ("vorbis.ogg", "audio/ogg"),
            ("voice.mp3", "audio/mpeg"),
            ("voice.wav", "audio/x-wav"),
        ] {
            let bytes = fixture(file);
            assert_eq!(crate::blob::sniff(&bytes), mime, "{file}");
            let ms = duration_ms(mime, &bytes).unwrap_or_else(|| panic!("{file}: no duration"));
            assert!((480..=560).contains(&ms), "{file}: {ms} ms");
        }
    }

    #[test]
    fn other_types_and_broken_files_have_none() {
        assert_eq!(duration_ms("image/png", &fixture("voice.ogg")), None);
        assert_eq!(duration_ms("application/pdf", b"%PDF-1.7"), None);
        for (file, mime) in [
            ("voice.webm", "audio/webm"),
            ("voice.ogg", "audio/ogg"),
            ("voice.mp3", "audio/mpeg"),
            ("voice.wav", "audio/x-wav"),
        ] {
            let bytes = fixture(file);
            for cut in [0, 4, 16, bytes.len() / 3] {
                // Truncated or garbled: no panic, and no absurd length.
                let mut broken = bytes[..cut].to_vec();
                broken.extend(std::iter::repeat_n(0xA5u8, 64));
                if let Some(ms) = duration_ms(mime, &broken) {
                    assert!(ms <= 600, "{file} cut at {cut}: {ms} ms");
                }
            }
        }
    }
}
