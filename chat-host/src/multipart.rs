//! `multipart/form-data` sends: the fields of a message plus one `file`.
//!
//! The body has already been read under its size cap; multer splits it. The file's bytes go to the
//! engine as they are: it sniffs the type from the content, checks size and allow-list, and makes
//! the stored name. The client's file name is kept only as display text, and its claimed
//! `Content-Type` is ignored.

use bytes::Bytes;
use chat_core::{Attachment, Error, SendMessage};

use crate::dispatch::SendFields;

/// Parses a multipart send. `max_file` is the engine's file limit (a larger file part stops the
/// parse with `PAYLOAD_TOO_LARGE` before it is all buffered).
pub async fn parse_send(
    content_type: &str,
    body: Bytes,
    max_file: u64,
) -> Result<SendMessage, Error> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| Error::Validation("multipart body without a boundary".into()))?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .for_field("file", max_file)
            .per_field(max_file.max(64 * 1024)),
    );
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut form = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut fields = SendFields::default();
    let mut attachment = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(e, max_file)),
        };
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            if attachment.is_some() {
                return Err(Error::Validation("only one file per message".into()));
            }
            let file_name = field.file_name().unwrap_or("file").to_string();
            let bytes = field
                .bytes()
                .await
                .map_err(|e| multipart_error(e, max_file))?;
            attachment = Some(Attachment {
                name: file_name,
                bytes,
            });
            continue;
        }
        let text = field
            .text()
            .await
            .map_err(|e| multipart_error(e, max_file))?;
        match name.as_str() {
            "courseId" => fields.course_id = text,
            "message" => fields.message = Some(text),
            "messageType" => fields.message_type = Some(text),
            "replyTo" => fields.reply_to = Some(text),
            "threadId" => fields.thread_id = Some(text),
            "clientId" => fields.client_id = Some(text),
            _ => {} // unknown fields are ignored, like the Node backend did
        }
    }
    if fields.course_id.is_empty() {
        return Err(Error::Validation("courseId is required".into()));
    }
    let mut request = fields.into_request()?;
    request.attachment = attachment;
    Ok(request)
}

fn multipart_error(e: multer::Error, max_file: u64) -> Error {
    match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            Error::PayloadTooLarge { limit: max_file }
        }
        other => Error::Validation(format!("malformed multipart body: {other}")),
    }
}
