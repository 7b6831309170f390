//! `umbra host ...` and `umbra group ...`: hosts, initiator groups, and what an initiator sees.

use serde_json::json;
use vds_core::script::{GroupRow, HostRow};
use vds_core::InitiatorId;

use crate::cli::{GroupCommand, HostCommand};
use crate::error::Result;
use crate::lun::access_words;
use crate::output::{table, Report};
use crate::{parse, Ctx};

fn ids_text(ids: &[InitiatorId]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

/// Runs `umbra host ...`.
pub fn run_host(cmd: HostCommand, ctx: &Ctx) -> Result<Report> {
    match cmd {
        HostCommand::View { id } => {
            let id = parse::initiator(&id)?;
            let array = ctx.open()?;
            let view = array.host_view(&id);
            let rows: Vec<[String; 3]> = view
                .iter()
                .map(|(lun, g)| {
                    [
                        g.number.to_string(),
                        lun.clone(),
                        access_words(g.access).0.to_string(),
                    ]
                })
                .collect();
            let text = if rows.is_empty() {
                format!("Initiator {id} sees no LUN.\n")
            } else {
                format!(
                    "Initiator {id} sees:\n{}",
                    table(["LUN NUMBER", "LUN", "ACCESS"], &rows)
                )
            };
            let luns: Vec<_> = view
                .iter()
                .map(|(lun, g)| {
                    json!({"lun": lun, "number": g.number, "access": access_words(g.access).1})
                })
                .collect();
            Ok(Report::new(
                text,
                json!({ "initiator": id.to_string(), "luns": luns }),
            ))
        }
        HostCommand::Set { name, ids } => {
            let ids = parse::initiators(&ids)?;
            ctx.open()?.set_host(&name, &ids)?;
            Ok(Report::new(
                format!("Host {name}: {}.\n", ids_text(&ids).join(", ")),
                json!({ "host": HostRow { name, initiators: ids_text(&ids) } }),
            ))
        }
        HostCommand::Delete { name } => {
            ctx.open()?.delete_host(&name)?;
            Ok(Report::new(
                format!("Deleted host {name}.\n"),
                json!({ "deleted": name }),
            ))
        }
        HostCommand::List => {
            let rows: Vec<HostRow> = ctx
                .open()?
                .hosts()
                .into_iter()
                .map(|(name, ids)| HostRow {
                    name,
                    initiators: ids_text(&ids),
                })
                .collect();
            let text = named_sets("hosts", ["HOST", "INITIATORS"], &rows, |r| {
                (&r.name, &r.initiators)
            });
            Ok(Report::new(text, json!({ "hosts": rows })))
        }
    }
}

/// Runs `umbra group ...`.
pub fn run_group(cmd: GroupCommand, ctx: &Ctx) -> Result<Report> {
    match cmd {
        GroupCommand::Set { name, ids } => {
            let ids = parse::initiators(&ids)?;
            ctx.open()?.set_group(&name, &ids)?;
            Ok(Report::new(
                format!("Group @{name}: {}.\n", ids_text(&ids).join(", ")),
                json!({ "group": GroupRow { name, members: ids_text(&ids) } }),
            ))
        }
        GroupCommand::Delete { name } => {
            ctx.open()?.delete_group(&name)?;
            Ok(Report::new(
                format!("Deleted group @{name}.\n"),
                json!({ "deleted": name }),
            ))
        }
        GroupCommand::List => {
            let rows: Vec<GroupRow> = ctx
                .open()?
                .groups()
                .into_iter()
                .map(|(name, ids)| GroupRow {
                    name,
                    members: ids_text(&ids),
                })
                .collect();
            let text = named_sets("groups", ["GROUP", "MEMBERS"], &rows, |r| {
                (&r.name, &r.members)
            });
            Ok(Report::new(text, json!({ "groups": rows })))
        }
    }
}

/// A table of named sets of initiators, one row per initiator.
fn named_sets<R>(
    what: &str,
    header: [&str; 2],
    rows: &[R],
    parts: impl Fn(&R) -> (&String, &Vec<String>),
) -> String {
    if rows.is_empty() {
        return format!("No {what}.\n");
    }
    let mut cells = Vec::new();
    for r in rows {
        let (name, ids) = parts(r);
        for (i, id) in ids.iter().enumerate() {
            let shown = if i == 0 { name.clone() } else { String::new() };
            cells.push([shown, id.clone()]);
        }
    }
    table(header, &cells)
}
