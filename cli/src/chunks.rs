//! Copies of a known length in pieces of at most [`CHUNK`] bytes, through one buffer: a LUN's
//! reads and writes (`lun read`, `lun write`) and the staging of a caller's file
//! (`control::staging`).

/// The most bytes one piece holds (1 MiB).
pub const CHUNK: usize = 1 << 20;

/// Runs `piece` over bytes `0..len` in order, in pieces of at most [`CHUNK`] bytes: each call
/// gets a buffer of the piece's length (to fill, or to fill and pass on) and the piece's offset
/// from the start. Stops at the first error, which it returns.
pub fn in_chunks<E>(
    len: u64,
    mut piece: impl FnMut(&mut [u8], u64) -> Result<(), E>,
) -> Result<(), E> {
    let mut buf = vec![0u8; usize::try_from(len).map_or(CHUNK, |l| l.min(CHUNK))];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(CHUNK as u64) as usize;
        piece(&mut buf[..n], done)?;
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pieces cover `0..len` in order, each at most a chunk, each at its offset.
    #[test]
    fn pieces_cover_the_length_in_order() {
        for len in [0, 1, CHUNK as u64 - 1, CHUNK as u64, 2 * CHUNK as u64 + 5] {
            let mut seen = Vec::new();
            in_chunks(len, |buf, at| {
                seen.push((at, buf.len()));
                Ok::<_, ()>(())
            })
            .unwrap();
            let mut next = 0u64;
            for &(at, n) in &seen {
                assert_eq!(at, next);
                assert!(n > 0 && n <= CHUNK);
                next += n as u64;
            }
            assert_eq!(next, len);
        }
        let mut calls = 0;
        let r = in_chunks(3 * CHUNK as u64, |_, at| {
            calls += 1;
            if at > 0 {
                Err(at)
            } else {
                Ok(())
            }
        });
        assert_eq!((r, calls), (Err(CHUNK as u64), 2));
    }
}
