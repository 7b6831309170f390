//! The control socket's framing: each frame is a one-byte tag (`J` a JSON document, `D` raw
//! bytes), a big-endian u32 length, and that many bytes. Requests and answers are JSON frames;
//! file contents travel as data frames of at most [`CHUNK`] bytes, so no file is ever held whole.

use std::io::{self, Read, Write};

use serde_json::Value;

/// The most bytes one data frame carries (and one file read asks for).
pub const CHUNK: usize = 1 << 20;

/// The longest frame read: a JSON document or a data chunk (a few KiB over [`CHUNK`]).
const MAX_FRAME: u32 = (CHUNK as u32) + (64 << 10);

/// One frame.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A JSON document.
    Json(Value),
    /// Raw bytes (a file's chunk).
    Data(Vec<u8>),
}

/// Sends `doc` as a JSON frame.
pub fn send_json(w: &mut impl Write, doc: &Value) -> io::Result<()> {
    let bytes = serde_json::to_vec(doc).expect("a JSON value serialises");
    send(w, b'J', &bytes)
}

/// Sends `bytes` as a data frame.
pub fn send_data(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    send(w, b'D', bytes)
}

fn send(w: &mut impl Write, tag: u8, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|l| *l <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "control frame too long"))?;
    let mut head = [0u8; 5];
    head[0] = tag;
    head[1..].copy_from_slice(&len.to_be_bytes());
    w.write_all(&head)?;
    w.write_all(bytes)?;
    w.flush()
}

/// Reads one frame; the peer hanging up is [`io::ErrorKind::UnexpectedEof`], a bad tag, length
/// or JSON document [`io::ErrorKind::InvalidData`].
pub fn recv(r: &mut impl Read) -> io::Result<Frame> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("control frame of {len} bytes (at most {MAX_FRAME})"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)?;
    match head[0] {
        b'J' => serde_json::from_slice(&body)
            .map(Frame::Json)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("control frame: {e}"))),
        b'D' => Ok(Frame::Data(body)),
        t => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("control frame with tag {t:#04x}"),
        )),
    }
}

/// Reads one frame that must be a JSON document.
pub fn recv_json(r: &mut impl Read) -> io::Result<Value> {
    match recv(r)? {
        Frame::Json(v) => Ok(v),
        Frame::Data(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "control frame: data where a JSON document was expected",
        )),
    }
}

/// Reads one frame that must be data.
pub fn recv_data(r: &mut impl Read) -> io::Result<Vec<u8>> {
    match recv(r)? {
        Frame::Data(d) => Ok(d),
        Frame::Json(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "control frame: a JSON document where data was expected",
        )),
    }
}

/// An I/O error as the wire carries it: `{"kind": "not_found" | "already_exists" | "other",
/// "message": ...}`.
pub fn io_error_json(e: &io::Error) -> Value {
    let kind = match e.kind() {
        io::ErrorKind::NotFound => "not_found",
        io::ErrorKind::AlreadyExists => "already_exists",
        io::ErrorKind::PermissionDenied => "permission_denied",
        _ => "other",
    };
    serde_json::json!({ "kind": kind, "message": e.to_string() })
}

/// The I/O error [`io_error_json`] wrote (its text the same as the original's).
pub fn io_error_of(v: &Value) -> io::Error {
    let kind = match v["kind"].as_str() {
        Some("not_found") => io::ErrorKind::NotFound,
        Some("already_exists") => io::ErrorKind::AlreadyExists,
        Some("permission_denied") => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(
        kind,
        v["message"].as_str().unwrap_or("I/O error").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_ones_are_refused() {
        let mut buf = Vec::new();
        send_json(&mut buf, &serde_json::json!({"op": "read", "h": 3})).unwrap();
        send_data(&mut buf, b"abc").unwrap();
        send_data(&mut buf, b"").unwrap();
        let mut r = &buf[..];
        assert_eq!(
            recv(&mut r).unwrap(),
            Frame::Json(serde_json::json!({"op": "read", "h": 3}))
        );
        assert_eq!(recv(&mut r).unwrap(), Frame::Data(b"abc".to_vec()));
        assert_eq!(recv(&mut r).unwrap(), Frame::Data(Vec::new()));
        assert_eq!(
            recv(&mut r).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        let bad_tag = [b'X', 0, 0, 0, 0];
        assert_eq!(
            recv(&mut &bad_tag[..]).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let too_long = [b'D', 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            recv(&mut &too_long[..]).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let e = io::Error::new(io::ErrorKind::NotFound, "gone");
        let back = io_error_of(&io_error_json(&e));
        assert_eq!((back.kind(), back.to_string()), (e.kind(), e.to_string()));
    }
}
