//! `umbra lun ...`: the LUN lifecycle, masking, LUN numbers, I/O as an initiator, and raw images.

use std::io::{Read, Write};
use std::path::Path;

use serde_json::json;
use vds_core::script::{LunDetail, LunRow, UnmaskedHosts};
use vds_core::{Access, Array, ErrorKind, InitiatorId, LunHandle, LunOptions, MaskSpec};

use crate::chunks::in_chunks;
use crate::cli::LunCommand;
use crate::control::staging;
use crate::error::{Error, Result};
use crate::output::{self, fields, table, Report};
use crate::Ctx;

/// The access word people read (`rw`, `ro`) and JSON's (`read_write`, `read_only`).
pub fn access_words(a: Access) -> (&'static str, &'static str) {
    match a {
        Access::ReadWrite => ("rw", "read_write"),
        Access::ReadOnly => ("ro", "read_only"),
    }
}

/// What the command reads from its arguments before the pool is opened.
enum Plan {
    Create(String, u64, MaskSpec, LunOptions),
    List,
    Detail(String),
    Extend(String, Grow),
    Delete(String),
    Online(String, bool),
    Snapshot(String, String),
    Split(String),
    Unmask(String, Unmask),
    Number(String, InitiatorId, u32),
    Write {
        name: String,
        initiator: InitiatorId,
        offset: u64,
        input: std::path::PathBuf,
    },
    Read {
        name: String,
        initiator: InitiatorId,
        offset: u64,
        length: Option<u64>,
        out: Option<std::path::PathBuf>,
    },
    Import(String, std::path::PathBuf),
    Export(String, std::path::PathBuf),
}

/// `lun extend`'s size: a new size, or bytes to add.
enum Grow {
    To(u64),
    By(u64),
}

/// `lun unmask`'s change.
enum Unmask {
    Set(MaskSpec),
    Add(MaskSpec),
    Remove(MaskSpec),
}

fn plan(cmd: LunCommand, ctx: &Ctx) -> Result<Plan> {
    use crate::parse;
    Ok(match cmd {
        LunCommand::Create {
            name,
            size,
            unmask,
            volatile,
        } => {
            let mask = match unmask {
                Some(m) => parse::mask(&m)?,
                None => MaskSpec::None,
            };
            Plan::Create(name, parse::size(&size)?, mask, LunOptions { volatile })
        }
        LunCommand::List => Plan::List,
        LunCommand::Detail { name } => Plan::Detail(name),
        LunCommand::Extend { name, size } => {
            let grow = match size.strip_prefix('+') {
                Some(add) => Grow::By(parse::size(add)?),
                None => Grow::To(parse::size(&size)?),
            };
            Plan::Extend(name, grow)
        }
        LunCommand::Delete { name } => Plan::Delete(name),
        LunCommand::Online { name } => Plan::Online(name, true),
        LunCommand::Offline { name } => Plan::Online(name, false),
        LunCommand::Snapshot { source, name } => Plan::Snapshot(source, name),
        LunCommand::Split { name } => Plan::Split(name),
        LunCommand::Unmask {
            name,
            list,
            add,
            remove,
        } => {
            let how = match (list, add, remove) {
                (Some(l), None, None) => Unmask::Set(parse::mask(&l)?),
                (None, Some(a), None) => Unmask::Add(parse::mask(&a)?),
                (None, None, Some(r)) => Unmask::Remove(parse::mask(&r)?),
                _ => {
                    return Err(Error::usage(
                        "lun unmask takes one of: a LIST, --add LIST, --remove LIST",
                    ))
                }
            };
            Plan::Unmask(name, how)
        }
        LunCommand::Number { name, id, n } => Plan::Number(name, parse::initiator(&id)?, n),
        LunCommand::Write {
            name,
            initiator,
            offset,
            input,
        } => Plan::Write {
            name,
            initiator: parse::initiator(&initiator)?,
            offset: parse::bytes(&offset, "offset")?,
            input,
        },
        LunCommand::Read {
            name,
            initiator,
            offset,
            length,
            out,
        } => {
            if ctx.json && out.is_none() {
                return Err(Error::usage(
                    "lun read with --json needs --out FILE (stdout holds the JSON document)",
                ));
            }
            Plan::Read {
                name,
                initiator: parse::initiator(&initiator)?,
                offset: parse::bytes(&offset, "offset")?,
                length: length.map(|l| parse::bytes(&l, "length")).transpose()?,
                out,
            }
        }
        LunCommand::Import { name, file } => Plan::Import(name, file),
        LunCommand::Export { name, file } => Plan::Export(name, file),
    })
}

/// Runs `umbra lun ...`.
pub fn run(cmd: LunCommand, ctx: &Ctx) -> Result<Report> {
    let plan = plan(cmd, ctx)?;
    let array = ctx.open()?;
    let shown = ctx.progress_shown();
    match plan {
        Plan::Create(name, size, mask, options) => {
            array.create_lun_with(&name, size, &mask, options)?;
            let kind = if options.volatile { "volatile " } else { "" };
            detail(&array, &name, &format!("Created {kind}LUN {name}."))
        }
        Plan::List => Ok(list(&array)),
        Plan::Detail(name) => detail(&array, &name, ""),
        Plan::Extend(name, grow) => {
            let size = match grow {
                Grow::To(s) => s,
                Grow::By(add) => {
                    let now = array.lun(&name)?.size;
                    now.checked_add(add).ok_or_else(|| {
                        Error::of_kind(
                            ErrorKind::InvalidArgument,
                            format!("LUN {name:?} of {now} bytes cannot grow by {add} more"),
                        )
                    })?
                }
            };
            array.extend_lun(&name, size)?;
            detail(
                &array,
                &name,
                &format!("Extended LUN {name} to {}.", output::size(size)),
            )
        }
        Plan::Delete(name) => {
            array.delete_lun(&name)?;
            Ok(Report::new(
                format!("Deleted LUN {name}.\n"),
                json!({ "deleted": name }),
            ))
        }
        Plan::Online(name, online) => {
            array.set_online(&name, online)?;
            let now = if online { "online" } else { "offline" };
            detail(&array, &name, &format!("LUN {name} is {now}."))
        }
        Plan::Snapshot(source, name) => {
            array.snapshot_lun(&source, &name)?;
            detail(
                &array,
                &name,
                &format!("Created snapshot LUN {name} of {source}, masked to no one."),
            )
        }
        Plan::Split(name) => {
            output::wait(array.split_lun(&name), &format!("split {name}"), shown)?;
            detail(&array, &name, &format!("Split LUN {name} from its source."))
        }
        Plan::Unmask(name, how) => {
            match &how {
                Unmask::Set(m) => array.set_mask(&name, m)?,
                Unmask::Add(m) => array.add_to_mask(&name, m)?,
                Unmask::Remove(m) => array.remove_from_mask(&name, m)?,
            }
            let mask = array.get_mask(&name)?;
            detail(
                &array,
                &name,
                &format!("LUN {name} is unmasked to {}.", output::mask(&mask)),
            )
        }
        Plan::Number(name, id, n) => {
            array.set_host_number(&name, &id, n)?;
            detail(
                &array,
                &name,
                &format!("Initiator {id} sees LUN {name} at LUN number {n}."),
            )
        }
        Plan::Write {
            name,
            initiator,
            offset,
            input,
        } => write(ctx, &array, &name, &initiator, offset, &input, shown),
        Plan::Read {
            name,
            initiator,
            offset,
            length,
            out,
        } => read(
            ctx,
            &array,
            &name,
            &initiator,
            offset,
            length,
            out.as_deref(),
            shown,
        ),
        Plan::Import(name, file) => {
            let staged = staging::stage_in(ctx, &file)?;
            let from = staged.as_ref().map_or(file.as_path(), |s| s.path());
            output::wait(
                array.import_lun(&name, from),
                &format!("import {name}"),
                shown,
            )?;
            detail(
                &array,
                &name,
                &format!(
                    "Imported {} as LUN {name}, masked to no one.",
                    file.display()
                ),
            )
        }
        Plan::Export(name, file) => {
            let size = array.lun(&name)?.size;
            let staged = staging::Export::begin(ctx, &file, true)?;
            let to = staged
                .as_ref()
                .map_or(file.clone(), |s| s.path().to_path_buf());
            output::wait(
                array.export_lun(&name, &to),
                &format!("export {name}"),
                shown,
            )?;
            if let Some(s) = staged {
                s.finish()?;
            }
            Ok(Report::new(
                format!(
                    "Exported LUN {name} ({}) to {}.\n",
                    output::size(size),
                    file.display()
                ),
                json!({ "lun": name, "file": file, "size": size }),
            ))
        }
    }
}

/// `lun list`: every LUN, one row each.
fn list(array: &Array) -> Report {
    let rows: Vec<LunRow> = array.luns().into_iter().map(LunRow::from).collect();
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.number.to_string(),
                r.name.clone(),
                output::size(r.size),
                word(r, "status"),
                r.source.clone().unwrap_or_else(|| "-".to_string()),
                output::mask(&r.mask),
            ]
        })
        .collect();
    let text = if rows.is_empty() {
        "No LUNs.\n".to_string()
    } else {
        table(["LUN", "NAME", "SIZE", "STATUS", "SOURCE", "MASK"], &cells)
    };
    Report::new(text, json!({ "luns": rows }))
}

/// Field `field` of `row` as its JSON spells it (`"online"`, `"not_ready"`, `"healthy"`): the
/// tables use the same words as the JSON.
fn word(row: &impl serde::Serialize, field: &str) -> String {
    let v = serde_json::to_value(row).expect("a row serialises");
    v[field].as_str().unwrap_or("?").to_string()
}

/// LUN `name`'s detail after a command, its text led by `headline` (if any).
fn detail(array: &Array, name: &str, headline: &str) -> Result<Report> {
    let d = LunDetail::of(array, name)?;
    let mut text = String::new();
    if !headline.is_empty() {
        text.push_str(headline);
        text.push('\n');
    }
    text.push_str(&fields(&[
        ("LUN", d.name.clone()),
        (
            "Size",
            format!("{} ({} bytes)", output::size(d.size), d.size),
        ),
        ("Status", word(&d, "status")),
        ("Health", word(&d, "health")),
        ("LUN number", d.number.to_string()),
        (
            "Snapshot of",
            d.source.clone().unwrap_or_else(|| "-".to_string()),
        ),
        ("Mask", output::mask(&d.mask)),
        (
            "Volatile",
            if d.volatile { "yes" } else { "no" }.to_string(),
        ),
    ]));
    let grants = match &d.unmasked {
        UnmaskedHosts::All {
            access,
            number,
            own_numbers,
        } => {
            text.push_str(&format!(
                "Every host sees it ({}) at LUN number {number}",
                access_words(*access).0
            ));
            text.push_str(if own_numbers.is_empty() {
                ".\n"
            } else {
                "; these at their own numbers:\n"
            });
            own_numbers
        }
        UnmaskedHosts::Hosts { hosts } => {
            if hosts.is_empty() {
                text.push_str("No host sees it.\n");
            }
            hosts
        }
    };
    if !grants.is_empty() {
        let rows: Vec<[String; 3]> = grants
            .iter()
            .map(|g| {
                [
                    g.initiator.clone(),
                    access_words(g.access).0.to_string(),
                    g.number.to_string(),
                ]
            })
            .collect();
        text.push_str(&table(["INITIATOR", "ACCESS", "LUN NUMBER"], &rows));
    }
    Ok(Report::new(text, json!({ "lun": d })))
}

/// Opens LUN `name` as `initiator` sees it, by its host LUN number (as a target daemon would):
/// refused with access denied where the mask hides it.
fn open_as(array: &Array, name: &str, initiator: &InitiatorId) -> Result<LunHandle> {
    let grant = array.access(name, initiator)?.ok_or_else(|| {
        Error::of_kind(
            ErrorKind::AccessDenied,
            format!("LUN {name:?} is masked from initiator {initiator}"),
        )
    })?;
    Ok(array.open_lun(initiator, grant.number)?)
}

/// `lun write`: `input`'s bytes into LUN `name` at `offset` as `initiator`, then flushed. The
/// whole range is checked first, and the first write is refused where the access is read-only:
/// a refusal writes nothing.
fn write(
    ctx: &Ctx,
    array: &Array,
    name: &str,
    initiator: &InitiatorId,
    offset: u64,
    input: &Path,
    shown: bool,
) -> Result<Report> {
    let (mut file, len) = ctx
        .caller
        .open_read(input)
        .map_err(|e| Error::file("cannot open", input, e))?;
    let lun = open_as(array, name, initiator)?;
    let size = lun.size()?;
    check_range(name, size, offset, len)?;
    let pb = output::bar(len, &format!("write {name}"), true, shown);
    in_chunks(len, |buf, at| {
        file.read_exact(buf)
            .map_err(|e| Error::file("cannot read", input, e))?;
        lun.write_at(buf, offset + at)?;
        pb.set_position(at + buf.len() as u64);
        Ok::<_, Error>(())
    })?;
    lun.flush()?;
    pb.finish_and_clear();
    Ok(Report::new(
        format!(
            "Wrote {len} bytes to LUN {name} at offset {offset} as {initiator} (LUN number {}).\n",
            lun.number()
        ),
        json!({
            "lun": name, "initiator": initiator.to_string(), "number": lun.number(),
            "offset": offset, "length": len,
        }),
    ))
}

/// `lun read`: `length` bytes (to the end by default) of LUN `name` from `offset` as
/// `initiator`, to `out` or stdout.
#[allow(clippy::too_many_arguments)]
fn read(
    ctx: &Ctx,
    array: &Array,
    name: &str,
    initiator: &InitiatorId,
    offset: u64,
    length: Option<u64>,
    out: Option<&Path>,
    shown: bool,
) -> Result<Report> {
    let lun = open_as(array, name, initiator)?;
    let size = lun.size()?;
    let len = match length {
        Some(l) => l,
        None => size.checked_sub(offset).ok_or_else(|| {
            Error::of_kind(
                ErrorKind::OutOfRange,
                format!("offset {offset} is past the end of LUN {name:?} ({size} bytes)"),
            )
        })?,
    };
    check_range(name, size, offset, len)?;
    let mut sink = match out {
        Some(p) => ctx
            .caller
            .create(p, false)
            .map_err(|e| Error::file("cannot create", p, e))?,
        None => ctx.caller.stdout(),
    };
    let what = out.map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
    let pb = output::bar(len, &format!("read {name}"), true, shown);
    let copied = in_chunks(len, |buf, at| {
        lun.read_at(buf, offset + at)?;
        sink.write_all(buf)
            .map_err(|e| Error::of_kind(ErrorKind::Io, format!("cannot write to {what}: {e}")))?;
        pb.set_position(at + buf.len() as u64);
        Ok::<_, Error>(())
    });
    if let Err(e) = copied {
        sink.discard();
        return Err(e);
    }
    sink.commit()
        .map_err(|e| Error::of_kind(ErrorKind::Io, format!("cannot write to {what}: {e}")))?;
    pb.finish_and_clear();
    let json = json!({
        "lun": name, "initiator": initiator.to_string(), "number": lun.number(),
        "offset": offset, "length": len, "file": out,
    });
    Ok(match out {
        Some(p) => Report::new(
            format!(
                "Read {len} bytes of LUN {name} at offset {offset} as {initiator} into {}.\n",
                p.display()
            ),
            json,
        ),
        // The bytes were the output.
        None => Report::new("", json),
    })
}

/// Refuses `len` bytes at `offset` past the end of a LUN of `size` bytes, before any I/O.
fn check_range(name: &str, size: u64, offset: u64, len: u64) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::of_kind(
            ErrorKind::OutOfRange,
            format!("{len} bytes at offset {offset} exceed LUN {name:?} ({size} bytes)"),
        )),
    }
}
