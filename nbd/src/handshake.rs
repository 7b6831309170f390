//! The fixed-newstyle handshake: the greeting, option haggling, and the hand-over to
//! transmission.
//!
//! The handshake reads exactly the bytes of each option (no read-ahead), so nothing a client
//! sends after STARTTLS in plaintext can be taken for encrypted data, and everything negotiated
//! before STARTTLS is forgotten after it (CVE-2021-3716). Exports are resolved afresh for every
//! option (a mask change shows at the next LIST); the LUN is opened only at GO or EXPORT_NAME.

use std::io::{self, Read, Write};

use vds_core::{InitiatorId, LunHandle};

use crate::conn::Conn;
use crate::error::{Error, ErrorKind, Result};
use crate::export::{self, ExportInfo};
use crate::proto::codec::{be_u32, be_u64, option_reply, InfoRequest, MetaRequest};
use crate::proto::*;
use crate::server::{Core, Identity};
use crate::transmission::{self, Session};

/// What the options negotiated so far (all of it forgotten at STARTTLS).
struct Negotiated {
    /// Who the client is: known from the start with a fixed identity, after STARTTLS with TLS.
    initiator: Option<InitiatorId>,
    structured: bool,
    base_allocation: bool,
    /// The most exports a LIST answered: each may then be asked about (INFO, GO, meta
    /// contexts) with a budget of options of its own, as nbdkit allows, so `nbdinfo --list`
    /// of a host that sees many LUNs is not cut off.
    listed: u32,
}

/// What an option leads to.
enum Step {
    Next,
    /// ABORT, or a client to drop.
    Close,
    /// The export chosen: transmission follows.
    Transmit(LunHandle, ExportInfo),
}

/// Runs one connection: the handshake, then transmission of the export chosen. `admit` is
/// called as the client chooses its export, before the answer: false means the server has its
/// most connections in transmission already (the export is refused). `Ok` when the client
/// ended it (ABORT, DISC, end of input) or the server shut down.
pub(crate) fn serve(
    core: &Core,
    conn: Conn,
    identity: &Identity,
    admit: &dyn Fn() -> bool,
) -> Result<()> {
    let mut conn = conn;
    let mut greeting = Vec::with_capacity(18);
    greeting.extend_from_slice(&NBDMAGIC.to_be_bytes());
    greeting.extend_from_slice(&IHAVEOPT.to_be_bytes());
    greeting.extend_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    send(&mut conn, &greeting)?;
    let mut flags = [0u8; 4];
    if !read_full(&mut conn.reader, &mut flags)? {
        return Ok(());
    }
    let flags = be_u32(&flags);
    if flags & !(CLIENT_FIXED_NEWSTYLE | CLIENT_NO_ZEROES) != 0 {
        return Err(Error::protocol(format!(
            "the client sent unknown handshake flags {flags:#x}"
        )));
    }
    if flags & CLIENT_FIXED_NEWSTYLE == 0 {
        return Err(Error::protocol(
            "the client does not speak fixed newstyle (required)",
        ));
    }
    let no_zeroes = flags & CLIENT_NO_ZEROES != 0;
    let tls = matches!(identity, Identity::Tls(_));
    let mut neg = Negotiated {
        initiator: match identity {
            Identity::Fixed(i) => Some(i.clone()),
            Identity::Tls(_) => None,
        },
        structured: false,
        base_allocation: false,
        listed: 0,
    };
    let mut options = 0u32;
    let mut other_options = 0u32;
    loop {
        if core.stopping() {
            return Ok(());
        }
        let mut head = [0u8; 16];
        if !read_full(&mut conn.reader, &mut head)? {
            return Ok(());
        }
        if be_u64(&head[0..8]) != IHAVEOPT {
            return Err(Error::protocol(format!(
                "option {} does not start with IHAVEOPT",
                options + 1
            )));
        }
        let (opt, len) = (be_u32(&head[8..12]), be_u32(&head[12..16]));
        options += 1;
        // The extra budget a LIST gives is for asking about exports (INFO, GO, meta contexts);
        // every other option, LIST included, stays within the base budget, so a LIST cannot
        // buy more LISTs.
        let about_an_export = matches!(
            opt,
            OPT_INFO | OPT_GO | OPT_LIST_META_CONTEXT | OPT_SET_META_CONTEXT
        );
        if !about_an_export {
            other_options += 1;
        }
        let max = core.config.max_options;
        let budget = max.saturating_add(max.saturating_mul(neg.listed));
        if options > budget || other_options > max {
            return Err(Error::protocol(format!(
                "the client sent more than {} options ({max}, and {max} per export listed for \
                 options about an export)",
                if other_options > max { max } else { budget }
            )));
        }
        if len > core.config.max_option_len {
            return Err(Error::protocol(format!(
                "option {opt} carries {len} bytes (at most {})",
                core.config.max_option_len
            )));
        }
        let mut data = Vec::new();
        let got = (&mut conn.reader)
            .take(u64::from(len))
            .read_to_end(&mut data)
            .map_err(|e| Error::io("reading option data", e))?;
        if got < len as usize {
            return Ok(()); // the client went away inside an option
        }

        // FORCEDTLS: before STARTTLS, only STARTTLS and ABORT are served.
        if tls && neg.initiator.is_none() && !matches!(opt, OPT_STARTTLS | OPT_ABORT) {
            if opt == OPT_EXPORT_NAME {
                return Err(Error::new(ErrorKind::Tls, "EXPORT_NAME before STARTTLS"));
            }
            reply_err(
                &mut conn,
                opt,
                REP_ERR_TLS_REQD,
                "TLS is required: send STARTTLS",
            )?;
            continue;
        }
        if opt == OPT_STARTTLS {
            let acceptor = match identity {
                Identity::Tls(a) => a,
                Identity::Fixed(_) => {
                    reply_err(&mut conn, opt, REP_ERR_UNSUP, "TLS is not offered here")?;
                    continue;
                }
            };
            if !data.is_empty() {
                reply_err(&mut conn, opt, REP_ERR_INVALID, "STARTTLS carries no data")?;
                continue;
            }
            if neg.initiator.is_some() {
                reply_err(&mut conn, opt, REP_ERR_INVALID, "TLS is already on")?;
                continue;
            }
            send(&mut conn, &option_reply(opt, REP_ACK, &[]))?;
            let (secure, initiator) = acceptor
                .accept(conn)
                .map_err(|e| Error::new(ErrorKind::Tls, format!("TLS handshake: {e}")))?;
            conn = secure;
            neg = Negotiated {
                initiator: Some(initiator),
                structured: false,
                base_allocation: false,
                listed: 0,
            };
            continue;
        }
        let Some(initiator) = neg.initiator.clone() else {
            // Only ABORT gets here without an identity.
            let _ = send(&mut conn, &option_reply(opt, REP_ACK, &[]));
            return Ok(());
        };
        match option(core, &mut conn, &mut neg, &initiator, opt, &data, admit)? {
            Step::Next => {}
            Step::Close => return Ok(()),
            Step::Transmit(handle, info) => {
                if opt == OPT_EXPORT_NAME {
                    let mut b = Vec::with_capacity(134);
                    let size = handle.size().unwrap_or(info.size);
                    b.extend_from_slice(&size.to_be_bytes());
                    b.extend_from_slice(&tflags(&info, neg.structured).to_be_bytes());
                    if !no_zeroes {
                        b.extend_from_slice(&[0u8; 124]);
                    }
                    send(&mut conn, &b)?;
                }
                return transmission::run(
                    core,
                    conn,
                    Session {
                        handle,
                        structured: neg.structured,
                        base_allocation: neg.base_allocation,
                    },
                );
            }
        }
    }
}

/// Answers one option (everything but STARTTLS).
fn option(
    core: &Core,
    conn: &mut Conn,
    neg: &mut Negotiated,
    initiator: &InitiatorId,
    opt: u32,
    data: &[u8],
    admit: &dyn Fn() -> bool,
) -> Result<Step> {
    let array = &core.array;
    let full = || {
        format!(
            "the server has its most connections in transmission ({}): try again later",
            core.config.max_connections
        )
    };
    match opt {
        OPT_ABORT => {
            // The client may close without reading the ACK.
            let _ = send(conn, &option_reply(opt, REP_ACK, &[]));
            Ok(Step::Close)
        }
        OPT_EXPORT_NAME => {
            // No error reply exists for EXPORT_NAME: an unknown export closes the connection.
            let name = std::str::from_utf8(data).map_err(|_| {
                Error::protocol("EXPORT_NAME: the export name is not UTF-8".to_string())
            })?;
            let Some(info) = export::resolve(array, initiator, name) else {
                return Err(Error::protocol(format!(
                    "EXPORT_NAME: initiator {initiator} sees no export {:?}",
                    shown(name)
                )));
            };
            let handle = array.open_lun(initiator, info.number).map_err(|e| {
                Error::protocol(format!("EXPORT_NAME {name:?}: opening the LUN: {e}"))
            })?;
            if !admit() {
                return Err(Error::new(
                    ErrorKind::Limit,
                    format!("EXPORT_NAME {name:?}: {}", full()),
                ));
            }
            Ok(Step::Transmit(handle, info))
        }
        OPT_LIST => {
            if !data.is_empty() {
                reply_err(conn, opt, REP_ERR_INVALID, "LIST carries no data")?;
                return Ok(Step::Next);
            }
            let mut out = Vec::new();
            let exports = export::list(array, initiator);
            neg.listed = neg
                .listed
                .max(u32::try_from(exports.len()).unwrap_or(u32::MAX));
            for e in exports {
                let name = e.name();
                let mut d = Vec::with_capacity(4 + name.len() + e.lun.len());
                d.extend_from_slice(&(name.len() as u32).to_be_bytes());
                d.extend_from_slice(name.as_bytes());
                d.extend_from_slice(e.lun.as_bytes());
                out.extend_from_slice(&option_reply(opt, REP_SERVER, &d));
            }
            out.extend_from_slice(&option_reply(opt, REP_ACK, &[]));
            send(conn, &out)?;
            Ok(Step::Next)
        }
        OPT_INFO | OPT_GO => {
            let req = match InfoRequest::decode(data) {
                Ok(r) => r,
                Err(why) => {
                    reply_err(conn, opt, why.reply(), &why.to_string())?;
                    return Ok(Step::Next);
                }
            };
            let Some(mut info) = export::resolve(array, initiator, &req.name) else {
                let msg = format!(
                    "initiator {initiator} sees no export {:?}",
                    shown(&req.name)
                );
                reply_err(conn, opt, REP_ERR_UNKNOWN, &msg)?;
                return Ok(Step::Next);
            };
            // INFO answers as GO would (clients probe with it): the LUN is opened for both, so
            // one that cannot be (offline, being restored) is refused by both alike.
            let handle = match array.open_lun(initiator, info.number) {
                Ok(_) if opt == OPT_GO && !admit() => {
                    reply_err(conn, opt, REP_ERR_POLICY, &full())?;
                    return Ok(Step::Next);
                }
                Ok(h) => {
                    info.size = h.size().unwrap_or(info.size);
                    (opt == OPT_GO).then_some(h)
                }
                Err(e) => {
                    reply_err(conn, opt, REP_ERR_UNKNOWN, &e.to_string())?;
                    return Ok(Step::Next);
                }
            };
            let mut out = Vec::new();
            let mut export = Vec::with_capacity(12);
            export.extend_from_slice(&INFO_EXPORT.to_be_bytes());
            export.extend_from_slice(&info.size.to_be_bytes());
            export.extend_from_slice(&tflags(&info, neg.structured).to_be_bytes());
            out.extend_from_slice(&option_reply(opt, REP_INFO, &export));
            if req.infos.contains(&INFO_NAME) {
                let mut d = INFO_NAME.to_be_bytes().to_vec();
                d.extend_from_slice(info.name().as_bytes());
                out.extend_from_slice(&option_reply(opt, REP_INFO, &d));
            }
            if req.infos.contains(&INFO_DESCRIPTION) {
                let mut d = INFO_DESCRIPTION.to_be_bytes().to_vec();
                d.extend_from_slice(info.lun.as_bytes());
                out.extend_from_slice(&option_reply(opt, REP_INFO, &d));
            }
            // Block sizes always: minimum 1 constrains nothing, the maximum is the request cap.
            let mut d = INFO_BLOCK_SIZE.to_be_bytes().to_vec();
            d.extend_from_slice(&BLOCK_MIN.to_be_bytes());
            d.extend_from_slice(&BLOCK_PREFERRED.to_be_bytes());
            d.extend_from_slice(&core.config.max_request.max(BLOCK_PREFERRED).to_be_bytes());
            out.extend_from_slice(&option_reply(opt, REP_INFO, &d));
            out.extend_from_slice(&option_reply(opt, REP_ACK, &[]));
            send(conn, &out)?;
            Ok(match handle {
                Some(h) => Step::Transmit(h, info),
                None => Step::Next,
            })
        }
        OPT_STRUCTURED_REPLY => {
            if !data.is_empty() {
                reply_err(
                    conn,
                    opt,
                    REP_ERR_INVALID,
                    "STRUCTURED_REPLY carries no data",
                )?;
            } else if neg.structured {
                reply_err(
                    conn,
                    opt,
                    REP_ERR_INVALID,
                    "structured replies are on already",
                )?;
            } else {
                neg.structured = true;
                send(conn, &option_reply(opt, REP_ACK, &[]))?;
            }
            Ok(Step::Next)
        }
        OPT_LIST_META_CONTEXT | OPT_SET_META_CONTEXT => {
            let set = opt == OPT_SET_META_CONTEXT;
            let req = match MetaRequest::decode(data) {
                Ok(r) => r,
                Err(why) => {
                    reply_err(conn, opt, why.reply(), &why.to_string())?;
                    return Ok(Step::Next);
                }
            };
            if set && !neg.structured {
                let why = "SET_META_CONTEXT needs structured replies first";
                reply_err(conn, opt, REP_ERR_INVALID, why)?;
                return Ok(Step::Next);
            }
            if export::resolve(array, initiator, &req.name).is_none() {
                let msg = format!(
                    "initiator {initiator} sees no export {:?}",
                    shown(&req.name)
                );
                reply_err(conn, opt, REP_ERR_UNKNOWN, &msg)?;
                return Ok(Step::Next);
            }
            // SET selects exactly the contexts named; LIST also expands the namespace "base:"
            // and an empty query list.
            let matched = if set {
                req.queries.iter().any(|q| q == BASE_ALLOCATION)
            } else {
                req.queries.is_empty()
                    || req
                        .queries
                        .iter()
                        .any(|q| q == BASE_ALLOCATION || q == "base:")
            };
            if set {
                neg.base_allocation = matched;
            }
            let mut out = Vec::new();
            if matched {
                let mut d = BASE_ALLOCATION_ID.to_be_bytes().to_vec();
                d.extend_from_slice(BASE_ALLOCATION.as_bytes());
                out.extend_from_slice(&option_reply(opt, REP_META_CONTEXT, &d));
            }
            out.extend_from_slice(&option_reply(opt, REP_ACK, &[]));
            send(conn, &out)?;
            Ok(Step::Next)
        }
        OPT_EXTENDED_HEADERS => {
            reply_err(
                conn,
                opt,
                REP_ERR_UNSUP,
                "extended headers are not supported",
            )?;
            Ok(Step::Next)
        }
        _ => {
            reply_err(conn, opt, REP_ERR_UNSUP, &format!("unknown option {opt}"))?;
            Ok(Step::Next)
        }
    }
}

/// The transmission flags of an export.
pub(crate) fn tflags(info: &ExportInfo, structured: bool) -> u16 {
    let mut f = TF_HAS_FLAGS | TF_SEND_FLUSH | TF_SEND_FUA | TF_CAN_MULTI_CONN | TF_SEND_CACHE;
    if info.read_only {
        f |= TF_READ_ONLY;
    } else {
        f |= TF_SEND_TRIM | TF_SEND_WRITE_ZEROES | TF_SEND_FAST_ZERO;
    }
    if structured {
        f |= TF_SEND_DF;
    }
    f
}

/// An export name as an error message quotes it: at most 64 characters, so a client's long name
/// cannot make a reply many times its option's size.
fn shown(name: &str) -> std::borrow::Cow<'_, str> {
    match name.char_indices().nth(64) {
        Some((cut, _)) => format!("{}...", &name[..cut]).into(),
        None => name.into(),
    }
}

fn reply_err(conn: &mut Conn, opt: u32, err: u32, msg: &str) -> Result<()> {
    send(conn, &option_reply(opt, err, msg.as_bytes()))
}

fn send(conn: &mut Conn, bytes: &[u8]) -> Result<()> {
    conn.writer
        .write_all(bytes)
        .and_then(|()| conn.writer.flush())
        .map_err(|e| Error::io("writing to the client", e))
}

/// Fills `buf`; `false` if the input ended first (the client went away), an error for any other
/// failure.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(Error::io("reading from the client", e)),
    }
}
