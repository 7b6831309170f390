//! The DiskShadow executor (`script::Session`) on a real pool: a whole backup script with an exec
//! writer logging its events (the exact order), the aliases `create` defines, a volatile set
//! released when the script ends, and the first failure stopping the script at its line with the
//! dialect's exit code (a failed command, a line that does not parse, an `exec` program).

use std::path::Path;

use vds_core::{Array, MaskSpec};
use vss_core::pool::{PoolCoordinator, RegisteredWriter};
use vss_core::script::{Aliases, ExitCode, Output, Session};

const MIB: u64 = 1 << 20;

/// A pool with LUN `lun` (each test its own name: the volumes of sets being made are claimed
/// process-wide, by provider and LUN name), and an exec writer `log` appending each event to `events.log`.
fn pool(dir: &Path, lun: &str) -> PoolCoordinator {
    let a = Array::open(dir.join("pool")).unwrap();
    a.create_lun(lun, 4 * MIB, &MaskSpec::parse("").unwrap())
        .unwrap();
    let pc = PoolCoordinator::open(a).unwrap();
    let log = dir.join("events.log");
    let script = dir.join("log.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1\" >> '{}'\n", log.display()),
    )
    .unwrap();
    pc.add_exec_writer(&RegisteredWriter::exec(
        "log",
        format!("sh '{}'", script.display()),
    ))
    .unwrap();
    pc
}

fn events(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("events.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_backup_script_runs_the_sequence_and_defines_the_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let pc = pool(dir.path(), "db");
    let bcd = dir.path().join("set.json");
    let script = format!(
        "set context persistent\nset option transportable\nset metadata {}\n\
         add volume db alias data\nbegin backup\ncreate\nend backup\nlist shadows id %data%\n",
        bcd.display()
    );
    let mut s = Session::new(&pc, Aliases::isolated());
    let run = s.execute(&script);
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
    assert_eq!(
        events(dir.path()),
        [
            "identify",
            "prepare-backup",
            "prepare-snapshot",
            "freeze",
            "thaw",
            "post-snapshot",
            "backup-complete",
            "backup-shutdown"
        ]
    );
    let Ok(Output::Created { set_id, shadows }) = &run.lines[5].outcome else {
        panic!("{run}");
    };
    assert_eq!(s.aliases().get("VSS_SHADOW_SET"), Some(set_id.to_string()));
    assert_eq!(
        s.aliases().get("VSS_SHADOW_1"),
        Some(shadows[0].id.to_string())
    );
    assert_eq!(s.aliases().get("data"), Some(shadows[0].id.to_string()));
    assert_eq!(shadows[0].volume_alias.as_deref(), Some("data"));
    let Ok(Output::Shadows { rows }) = &run.lines[7].outcome else {
        panic!("{run}");
    };
    assert_eq!(rows[0].shadow_id, shadows[0].id);
    // The saved document names the set, and the shadow stays after the session.
    let doc = vss_core::BackupComponents::from_json(&std::fs::read(&bcd).unwrap()).unwrap();
    assert_eq!(doc.snapshot_set.unwrap().set_id, *set_id);
    drop(s);
    assert_eq!(pc.shadows().unwrap().len(), 1);
}

#[test]
fn a_volatile_set_is_released_when_the_script_ends() {
    let dir = tempfile::tempdir().unwrap();
    let pc = pool(dir.path(), "vol");
    let run = Session::new(&pc, Aliases::isolated())
        .execute("set context volatile\nadd volume vol\ncreate\nlist shadows all\n");
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
    let Ok(Output::Shadows { rows }) = &run.lines[3].outcome else {
        panic!("{run}");
    };
    assert_eq!(rows.len(), 1, "the set lives while the script runs");
    assert!(pc.shadows().unwrap().is_empty());
}

#[test]
fn the_first_failure_stops_the_script_at_its_line_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let pc = pool(dir.path(), "stop");
    let cases = [
        (
            "set context persistent\ndelete shadows id 01234567-89ab-4cde-8f01-23456789abcd\nadd volume stop\ncreate\n",
            ExitCode::CommandFailed,
            2,
        ),
        ("add volume stop\nset context volatil\ncreate\n", ExitCode::Syntax, 2),
        ("set context persistent\nexec false\nadd volume stop\ncreate\n", ExitCode::ExecFailed, 2),
        ("set context persistent\nadd volume nope\ncreate\n", ExitCode::CommandFailed, 3),
    ];
    for (script, code, line) in cases {
        let run = Session::new(&pc, Aliases::isolated()).execute(script);
        assert_eq!(
            (run.exit_code, run.stopped_at),
            (code, Some(line)),
            "{script:?}: {run}"
        );
        assert_eq!(run.stopping_error().unwrap().line, line);
        assert!(pc.shadows().unwrap().is_empty(), "{script:?}");
        assert!(
            events(dir.path()).is_empty(),
            "{script:?}: no writer called"
        );
    }
}
