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
    assert_eq!(events(dir.path()), umbra_test_support::FULL_BACKUP_EVENTS);
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
        ("set context persistent\nadd volume nope\ncreate\n", ExitCode::CommandFailed, 2),
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

/// `load metadata` defines `VSS_SHADOW_SET` and `VSS_SHADOW_n` for the document's set, as
/// DiskShadow does; a numbered alias the document does not define is refused at its line; an
/// `import` with no host named says how to name one.
#[test]
fn load_metadata_defines_the_set_and_shadow_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let pc = pool(dir.path(), "loadm");
    let bcd = dir.path().join("set.json");
    let make = format!(
        "set context persistent\nset option transportable\nset metadata {}\nadd volume loadm\ncreate\n",
        bcd.display()
    );
    let run = Session::new(&pc, Aliases::isolated()).execute(&make);
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
    let Ok(Output::Created { set_id, shadows }) = &run.lines[4].outcome else {
        panic!("{run}");
    };
    let (set_id, id) = (*set_id, shadows[0].id);

    let load = format!("load metadata {}\n", bcd.display());
    let mut s = Session::new(&pc, Aliases::isolated());
    let run = s.execute(&format!(
        "{load}list shadows id %VSS_SHADOW_1%\nlist shadows set %vss_shadow_set%\n"
    ));
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
    assert_eq!(s.aliases().get("VSS_SHADOW_SET"), Some(set_id.to_string()));
    assert_eq!(s.aliases().get("VSS_SHADOW_1"), Some(id.to_string()));
    assert_eq!(s.aliases().get("VSS_SHADOW_2"), None);
    let Ok(Output::MetadataLoaded {
        set_id: got,
        shadows,
        ..
    }) = &run.lines[0].outcome
    else {
        panic!("{run}");
    };
    assert_eq!((*got, shadows.as_slice()), (Some(set_id), [id].as_slice()));
    let text = run.render_text();
    assert!(
        text.contains(&format!("Alias VSS_SHADOW_1 for shadow ID {{{id}}}")),
        "{text}"
    );
    for l in [1, 2] {
        let Ok(Output::Shadows { rows }) = &run.lines[l].outcome else {
            panic!("{run}");
        };
        assert_eq!(rows.iter().map(|r| r.shadow_id).collect::<Vec<_>>(), [id]);
    }

    // The dry run cannot know how many shadows the document holds; the run refuses the alias
    // it does not define, at its line.
    let run = Session::new(&pc, Aliases::isolated())
        .execute(&format!("{load}list shadows id %VSS_SHADOW_2%\n"));
    assert_eq!(
        (run.exit_code, run.stopped_at),
        (ExitCode::Syntax, Some(2)),
        "{run}"
    );

    // `import` with no importing host: the message says how to name one.
    let run = Session::new(&pc, Aliases::isolated()).execute(&format!("{load}import\n"));
    assert_eq!(
        (run.exit_code, run.stopped_at),
        (ExitCode::CommandFailed, Some(2)),
        "{run}"
    );
    let m = &run.stopping_error().unwrap().message;
    assert!(m.contains("--host"), "{m}");
}

/// `resync ID` reports the bytes it copied (the LUN's write statistics over the resync: the
/// changed blocks), not the LUN's size.
#[test]
fn resync_reports_the_bytes_it_copied() {
    use vds_core::InitiatorId;
    const HOST: &str = "iqn.2024-01.com.example:app";
    let dir = tempfile::tempdir().unwrap();
    let pc = pool(dir.path(), "rsy");
    let host = InitiatorId::parse(HOST).unwrap();
    pc.array()
        .set_mask("rsy", &MaskSpec::parse(HOST).unwrap())
        .unwrap();
    let run = Session::new(&pc, Aliases::isolated())
        .execute("set context persistent nowriters\nadd volume rsy\ncreate\n");
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
    let id = pc.shadows().unwrap()[0].shadow_id;
    let bs = u64::from(pc.array().lun_stats("rsy").unwrap().block_size);
    let number = pc.array().access("rsy", &host).unwrap().unwrap().number;
    let h = pc.array().open_lun(&host, number).unwrap();
    for n in [1u64, 7, 30] {
        h.write_at(&vec![0xAB; bs as usize], n * bs).unwrap();
    }
    h.flush().unwrap();
    drop(h);
    let run = Session::new(&pc, Aliases::isolated()).execute(&format!("resync {id}\n"));
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
    let Ok(Output::Resynced { bytes, lun, .. }) = &run.lines[0].outcome else {
        panic!("{run}");
    };
    assert_eq!((lun.as_str(), *bytes), ("rsy", Some(3 * bs)), "{run}");
    assert!(
        run.render_text()
            .contains(&format!("({} bytes copied)", 3 * bs)),
        "{run}"
    );
    // Nothing differs any more: a second resync copies nothing.
    let run = Session::new(&pc, Aliases::isolated()).execute(&format!("resync {id}\n"));
    let Ok(Output::Resynced { bytes, .. }) = &run.lines[0].outcome else {
        panic!("{run}");
    };
    assert_eq!(*bytes, Some(0));
}

/// A script with several lines that do not parse runs nothing, and its run reports every one of
/// them (as `validate` does), stopped at the first.
#[test]
fn every_line_that_does_not_parse_is_reported_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let pc = pool(dir.path(), "bad");
    let script =
        "set context persistent\nset context volatil\nadd volume bad\nset backuptyp full\ncreate\nfrobnicate\n";
    let run = Session::new(&pc, Aliases::isolated()).execute(script);
    assert_eq!(run.exit_code, ExitCode::Syntax, "{run}");
    assert_eq!(run.stopped_at, Some(2));
    let lines: Vec<usize> = run.errors().map(|e| e.line).collect();
    assert_eq!(lines, [2, 4, 6], "{run}");
    assert!(run.errors().all(|e| e.code == ExitCode::Syntax));
    let text = run.render_text();
    for l in ["line 2", "line 4", "line 6"] {
        assert!(text.contains(l), "{l}: {text}");
    }
    assert!(pc.shadows().unwrap().is_empty());
    assert!(events(dir.path()).is_empty(), "no writer called");
}

/// `writer exclude`: the writer answers identify and gets nothing else; `writer verify` of an
/// excluded writer is refused; after `reset` it takes part again.
#[test]
fn writer_exclude_leaves_a_writer_out_of_the_set() {
    let dir = tempfile::tempdir().unwrap();
    let pc = pool(dir.path(), "excl");
    let script = "set context persistent\nwriter exclude log\nadd volume excl\nbegin backup\ncreate\nend backup\n";
    let run = Session::new(&pc, Aliases::isolated()).execute(script);
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
    assert_eq!(events(dir.path()), ["identify"]);
    assert_eq!(pc.shadows().unwrap().len(), 1);
    let run =
        Session::new(&pc, Aliases::isolated()).execute("writer exclude log\nwriter verify log\n");
    assert_eq!(
        (run.exit_code, run.stopped_at),
        (ExitCode::CommandFailed, Some(2)),
        "{run}"
    );
    std::fs::remove_file(dir.path().join("events.log")).unwrap();
    let run = Session::new(&pc, Aliases::isolated()).execute(
        "set context persistent\nwriter exclude log\nreset\nset context persistent\nadd volume excl\nbegin backup\ncreate\nend backup\n",
    );
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
    assert_eq!(events(dir.path()).len(), 8, "taking part again after reset");
}

/// `expose ID HOST` unmasks a hardware shadow read-only to the host (recorded in its
/// exposure), `unexpose ID` masks it off again; `mask SET` does that for an imported set;
/// software shadows are refused by name.
#[test]
fn expose_unexpose_and_mask_change_who_sees_a_hardware_shadow() {
    use vds_core::InitiatorId;
    use vss_core::Exposure;
    const HOST: &str = "iqn.2024-01.com.example:backup";
    let dir = tempfile::tempdir().unwrap();
    let pc = pool(dir.path(), "expo");
    let bcd = dir.path().join("set.json");
    let run = Session::new(&pc, Aliases::isolated()).execute(&format!(
        "set context persistent nowriters\nset option transportable\nset metadata {}\nadd volume expo\ncreate\n",
        bcd.display()
    ));
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
    let shadow = pc.shadows().unwrap().remove(0);
    let (id, lun) = (shadow.shadow_id, shadow.shadow.name.clone());
    let host = InitiatorId::parse(HOST).unwrap();
    let sees = |who: &InitiatorId| pc.array().read_at(&lun, who, &mut [0u8; 512], 0).is_ok();
    assert!(!sees(&host));

    let run = Session::new(&pc, Aliases::isolated()).execute(&format!("expose {id} {HOST}\n"));
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
    assert!(sees(&host));
    assert!(
        pc.array().write_at(&lun, &host, &[0u8; 512], 0).is_err(),
        "read-only"
    );
    assert_eq!(
        pc.shadow(id).unwrap().exposure,
        Exposure::Hosts {
            initiators: vec![host.to_string()]
        }
    );
    let run =
        Session::new(&pc, Aliases::isolated()).execute(&format!("unexpose {id}\nunexpose {id}\n"));
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
    assert!(!sees(&host));
    assert_eq!(pc.shadow(id).unwrap().exposure, Exposure::Hidden);

    // Import the set for the host, then mask it off again.
    let set = shadow.set_id;
    let run = Session::new(&pc, Aliases::isolated())
        .with_host(HOST.to_owned())
        .execute(&format!("load metadata {}\nimport\n", bcd.display()));
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
    assert!(sees(&host));
    let run = Session::new(&pc, Aliases::isolated()).execute(&format!("mask {set}\n"));
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
    assert!(!sees(&host));
    assert_eq!(pc.shadow(id).unwrap().exposure, Exposure::Hidden);

    // A software shadow cannot be exposed.
    let software = PoolCoordinator::open_with(
        pc.array().clone(),
        vss_core::PoolOptions {
            provider: vss_core::PoolProvider::Software,
            ..Default::default()
        },
    )
    .unwrap();
    let run = Session::new(&software, Aliases::isolated())
        .with_preferred_provider(vss_core::ProviderType::Software)
        .execute("set context persistent nowriters\nadd volume expo\ncreate\n");
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
    let sw = pc
        .shadows()
        .unwrap()
        .into_iter()
        .find(|s| s.provider_type == vss_core::ProviderType::Software)
        .expect("a software shadow");
    let run = Session::new(&pc, Aliases::isolated())
        .execute(&format!("expose {} {HOST}\n", sw.shadow_id));
    assert_eq!(run.exit_code, ExitCode::CommandFailed, "{run}");
    assert!(run.to_string().contains("does not offer expose"), "{run}");
}

/// `list writers metadata` identifies the writers and shows each one's metadata document;
/// `detailed` adds the LUNs of each component.
#[test]
fn list_writers_metadata_shows_the_documents() {
    let dir = tempfile::tempdir().unwrap();
    let pc = pool(dir.path(), "meta");
    let run = Session::new(&pc, Aliases::isolated())
        .execute("list writers metadata\nlist writers detailed\nlist writers\n");
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
    let Ok(Output::Writers { rows }) = &run.lines[0].outcome else {
        panic!("{run}");
    };
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].name, "log");
    let m = rows[0].metadata.as_ref().expect("a metadata document");
    assert_eq!(m.writer, "log");
    assert_eq!(rows[0].components, ["log"]);
    let text = run.to_string();
    assert!(text.contains("Metadata document: {"), "{text}");
    let Ok(Output::Writers { rows }) = &run.lines[1].outcome else {
        panic!("{run}");
    };
    assert_eq!(rows[0].components, ["log (on every LUN of the set)"]);
    let Ok(Output::Writers { rows }) = &run.lines[2].outcome else {
        panic!("{run}");
    };
    assert!(rows[0].metadata.is_none());
    assert_eq!(events(dir.path()), ["identify", "identify"]);
}

/// `add volume LUN provider software` has the software provider make that LUN's shadow, though
/// the pool coordinator prefers the hardware provider; the volume beside it with no provider
/// named gets the preferred (hardware) one. A provider named that cannot take the LUN (a
/// software shadow of an unbroken hardware shadow LUN) fails at `create`, naming the provider
/// type, and makes no set.
#[test]
fn add_volume_provider_picks_the_provider_that_makes_the_shadow() {
    let dir = tempfile::tempdir().unwrap();
    let pc = pool(dir.path(), "pick-sw");
    pc.array()
        .create_lun("pick-hw", 4 * MIB, &MaskSpec::parse("").unwrap())
        .unwrap();
    let run = Session::new(&pc, Aliases::isolated()).execute(
        "set context persistent nowriters\nadd volume pick-sw provider software\n\
         add volume pick-hw\ncreate\n",
    );
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
    let shadows = pc.shadows().unwrap();
    let of = |lun: &str| {
        shadows
            .iter()
            .find(|s| s.original.name == lun)
            .unwrap_or_else(|| panic!("no shadow of {lun}: {shadows:?}"))
            .provider_type
    };
    assert_eq!(of("pick-sw"), vss_core::ProviderType::Software);
    assert_eq!(of("pick-hw"), vss_core::ProviderType::Hardware);

    let hw_lun = shadows
        .iter()
        .find(|s| s.original.name == "pick-hw")
        .unwrap()
        .shadow
        .name
        .clone();
    let before = pc.shadows().unwrap().len();
    let run = Session::new(&pc, Aliases::isolated()).execute(&format!(
        "set context persistent nowriters\nadd volume {hw_lun} provider software\ncreate\n"
    ));
    assert_eq!(run.exit_code, ExitCode::CommandFailed, "{run}");
    assert_eq!(run.stopped_at, Some(3), "{run}");
    assert!(run.to_string().contains("no software provider"), "{run}");
    assert_eq!(pc.shadows().unwrap().len(), before);
}

/// `add volume` of a LUN no provider knows fails at that line as not found (the dialect's
/// code 4, the error's kind `NotFound`), not later at `create` as unsupported.
#[test]
fn add_volume_of_an_unknown_lun_fails_at_its_line_as_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let pc = pool(dir.path(), "known");
    let run = Session::new(&pc, Aliases::isolated())
        .execute("set context persistent\nadd volume known\nadd volume nosuch\ncreate\n");
    assert_eq!(run.exit_code, ExitCode::CommandFailed, "{run}");
    assert_eq!(run.stopped_at, Some(3), "{run}");
    let err = run.lines[2].outcome.as_ref().unwrap_err();
    assert_eq!(
        err.kind,
        vss_core::script::ScriptErrorKind::Failed(vss_core::ErrorKind::NotFound),
        "{run}"
    );
    assert!(err.message.contains("nosuch"), "{run}");
    assert!(pc.shadows().unwrap().is_empty());
    assert!(events(dir.path()).is_empty(), "no writer ran");
}

/// An in-memory [`ScriptIo`]: the commands `exec` lines ran (each with the status it gives)
/// and the files, by path.
#[derive(Default)]
struct MemoryIo {
    ran: std::sync::Mutex<Vec<String>>,
    files: std::sync::Mutex<std::collections::BTreeMap<String, Vec<u8>>>,
}

impl vss_core::script::ScriptIo for MemoryIo {
    fn exec(&self, command: &str) -> std::io::Result<std::process::ExitStatus> {
        use std::os::unix::process::ExitStatusExt;
        self.ran.lock().unwrap().push(command.to_owned());
        // A wait status: exit code 3 for "fail", else 0.
        Ok(std::process::ExitStatus::from_raw(if command == "fail" {
            3 << 8
        } else {
            0
        }))
    }
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        self.files
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "not in memory"))
    }
    fn write_durably(&self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_owned(), bytes.to_vec());
        Ok(())
    }
}

/// A session given a `ScriptIo` runs its `exec` lines and reads and writes its metadata files
/// there, and nowhere in this process: nothing is run here and no file appears in the working
/// directory; a failing program stops the script with the exec code.
#[test]
fn exec_lines_and_metadata_files_go_through_the_sessions_io() {
    let dir = tempfile::tempdir().unwrap();
    let pc = pool(dir.path(), "io-db");
    let io = std::sync::Arc::new(MemoryIo::default());
    let script = "set context persistent\nset option transportable\nset metadata rel/set.json\n\
                  add volume io-db\nbegin backup\ncreate\nend backup\nexec %VSS_SHADOW_SET%\n\
                  load metadata rel/set.json\nexec fail\nexec never\n";
    let mut s = Session::new(&pc, Aliases::isolated()).with_io(io.clone());
    let run = s.execute(script);
    assert_eq!(run.exit_code, ExitCode::ExecFailed, "{run}");
    assert_eq!(run.stopped_at, Some(10), "{run}");
    let set = s.aliases().get("VSS_SHADOW_SET").unwrap();
    assert_eq!(*io.ran.lock().unwrap(), [set.clone(), "fail".to_owned()]);
    let files = io.files.lock().unwrap();
    let doc = vss_core::BackupComponents::from_json(&files["rel/set.json"]).unwrap();
    assert_eq!(doc.snapshot_set.unwrap().set_id.to_string(), set);
    let Ok(Output::MetadataLoaded { set_id, .. }) = &run.lines[8].outcome else {
        panic!("{run}");
    };
    assert_eq!(set_id.map(|s| s.to_string()), Some(set));
    assert!(!Path::new("rel").exists(), "nothing written here");
    let Err(e) = &run.lines[9].outcome else {
        panic!("{run}");
    };
    assert!(e.message.contains("exec fail: exit status: 3"), "{e:?}");
}
