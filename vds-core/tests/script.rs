//! The DiskRAID-style script language: commands, exit codes, and errors that name the line.

use vds_core::script::{
    parse_line, parse_size, run_script, Command, ExitCode, LunRow, Output, ScriptErrorKind,
    Session, Unmask, UnmaskedHosts,
};
use vds_core::{Access, Array, ErrorKind, Health, InitiatorId, LunStatus, MaskSpec};

const H1: &str = "iqn.1991-05.com.microsoft:server1";

fn h1() -> InitiatorId {
    InitiatorId::parse(H1).unwrap()
}

fn run(a: &Array, script: &str) -> (ExitCode, String) {
    let mut out = String::new();
    let (code, _) = Session::new(a).run(script, &mut out);
    (code, out)
}

#[test]
fn a_provisioning_script_runs_end_to_end() {
    let a = Array::in_memory();
    let script = format!(
        "# provision a LUN for the directory server\n\
         create lun simple size=64 name=ad-db\n\
         unmask lun initiator={H1}\n\
         unmask lun add wwn=10:00:00:00:C9:00:00:02\n\
         create target name=t1 iscsiname=iqn.2024-01.org.example:array.t1 portals=10.0.0.1:3260\n\
         select lun ad-db\n\
         associate targets t1\n\
         snapshot lun name=ad-db-snap\n\
         detail lun\n\
         list luns\n\
         extend lun size=1GB\n\
         select lun ad-db-snap\n\
         offline lun\n\
         online lun\n\
         select lun ad-db\n\
         swap lun with=ad-db-snap\n\
         exit\n\
         delete lun\n"
    );
    let (code, out) = run(&a, &script);
    assert_eq!(code, ExitCode::Ok, "{out}");
    assert!(out.contains("Unmasked hosts:"), "{out}");
    assert!(out.contains("10000000c9000002"), "{out}");
    assert_eq!(a.lun("ad-db").unwrap().size, (64 << 20) + (1 << 30));
    assert_eq!(a.get_mask("ad-db").unwrap(), "", "swapped off");
    assert_eq!(
        a.get_mask("ad-db-snap").unwrap(),
        format!("10000000c9000002;{H1}")
    );
    assert_eq!(a.targets()[0].luns.len(), 1);
    assert!(
        a.lun("ad-db").is_ok(),
        "exit stopped the script before the delete"
    );
}

#[test]
fn errors_name_the_line_and_map_to_diskraid_exit_codes() {
    let a = Array::in_memory();
    // Syntax error: 5, with the line number.
    let (code, out) = run(&a, "list luns\n\nfrobnicate lun\n");
    assert_eq!(code, ExitCode::Syntax);
    assert!(
        out.contains("line 3: unknown command \"frobnicate\""),
        "{out}"
    );
    // Selection error: 5.
    let (code, out) = run(&a, "delete lun\n");
    assert_eq!(code, ExitCode::Syntax);
    assert!(out.contains("line 1: no LUN is selected"), "{out}");
    let (code, _) = run(&a, "select lun nothere\n");
    assert_eq!(code, ExitCode::Syntax);
    // Bad initiator: 5, and the mask is unchanged.
    a.create_lun("l", 1 << 20, &MaskSpec::host(h1(), Access::ReadWrite))
        .unwrap();
    let (code, out) = run(
        &a,
        "select lun l\nunmask lun initiator=iqn.2001-13.com.example\n",
    );
    assert_eq!(code, ExitCode::Syntax);
    assert!(out.contains("line 2:") && out.contains("month 13"), "{out}");
    assert_eq!(a.get_mask("l").unwrap(), H1);
    // A service failure: 4 (a LUN that exists).
    let (code, out) = run(&a, "create lun simple size=1 name=l\n");
    assert_eq!(code, ExitCode::ServiceFailure);
    assert!(out.contains("line 1:") && out.contains("exists"), "{out}");
    // noerr goes on after a failure.
    let (code, _) = run(
        &a,
        "create lun simple size=1 name=l noerr\ncreate lun simple size=1 name=m\n",
    );
    assert_eq!(code, ExitCode::Ok);
    assert!(a.lun("m").is_ok());
    // Deleting a LUN a snapshot LUN depends on: a service failure.
    let (code, out) = run(&a, "select lun l\nsnapshot lun name=l2\ndelete lun\n");
    assert_eq!(code, ExitCode::ServiceFailure);
    assert!(out.contains("line 3:"), "{out}");
    assert_eq!(ExitCode::ScriptFile as i32, 3);
    assert_eq!(ExitCode::BadArguments as i32, 2);
}

#[test]
fn unmask_forms_follow_diskraid() {
    let p = |l: &str| parse_line(l).unwrap().unwrap().0;
    assert_eq!(
        p("unmask lun all"),
        Command::Unmask(Unmask::Set("*".into()))
    );
    assert_eq!(
        p("UNMASK LUN NONE"),
        Command::Unmask(Unmask::Set(String::new()))
    );
    assert_eq!(
        p("unmask lun wwn=10000000c9000002;20000000c9000003"),
        Command::Unmask(Unmask::Set("10000000c9000002;20000000c9000003".into()))
    );
    assert_eq!(
        p(&format!("unmask lun add initiator={H1}")),
        Command::Unmask(Unmask::Add(H1.into()))
    );
    assert_eq!(
        p("unmask lun remove list=@cluster"),
        Command::Unmask(Unmask::Remove("@cluster".into()))
    );
    assert_eq!(
        p("unmask lun list=\"@a=ro;10000000c9000002\""),
        Command::Unmask(Unmask::Set("@a=ro;10000000c9000002".into()))
    );
    for bad in [
        "unmask lun",
        "unmask lun add all",
        "unmask lun wwn=",
        "unmask disk all",
        "unmask lun all none",
        "create lun simple",
        "create lun mirror size=1",
        "select lun",
        "extend lun size=12XB",
        "number lun initiator=x number=-1",
        "create lun simple size=1 bogus=2",
        "list",
        "associate targets",
        "\"unterminated",
    ] {
        assert!(parse_line(bad).is_err(), "{bad:?} parsed");
    }
    assert_eq!(parse_line("   # just a comment").unwrap(), None);
    assert_eq!(parse_line("rem a remark").unwrap(), None);
    assert_eq!(parse_size("1").unwrap(), 1 << 20);
    assert_eq!(parse_size("4KB").unwrap(), 4096);
    assert_eq!(parse_size("2gb").unwrap(), 2 << 30);
    assert!(parse_size("99999999999PB").is_err());
}

/// Sizes as DiskRAID reads them, on the parse-size crate: binary whichever spelling, MB when no
/// unit, case-insensitive, a space allowed before the unit; anything else refused naming the text.
#[test]
fn sizes_read_as_diskraid_reads_them() {
    let ok = [
        ("0", 0),
        ("1", 1 << 20),
        ("64", 64 << 20),
        ("512B", 512),
        ("512 b", 512),
        ("4KB", 4096),
        ("4KiB", 4096),
        ("4 kib", 4096),
        ("3MB", 3 << 20),
        ("3MiB", 3 << 20),
        ("2gb", 2 << 30),
        ("2GiB", 2 << 30),
        ("1TB", 1 << 40),
        ("1TiB", 1 << 40),
        ("2PB", 2 << 50),
        ("1.5GB", 3 << 29),
        ("0.5", 1 << 19),
        (" 8 MB ", 8 << 20),
    ];
    for (text, bytes) in ok {
        assert_eq!(parse_size(text), Ok(bytes), "{text:?}");
    }
    for bad in [
        "",
        "MB",
        "4K",
        "4 furlongs",
        "-1",
        "1e3",
        "0x10",
        "1.2.3",
        "4 K B",
        "99999999999PB",
        "18446744073709551616B",
    ] {
        let e = parse_size(bad).expect_err(bad);
        assert!(e.contains(&format!("{bad:?}")), "{bad:?}: {e}");
    }
}

#[test]
fn groups_and_numbers_from_a_script() {
    let a = Array::in_memory();
    let script = format!(
        "group set name=cluster members={H1};10000000c9000002\n\
         create lun simple size=1 name=q unmask=@cluster=ro\n\
         number lun initiator={H1} number=12\n\
         list groups\n"
    );
    let (code, out) = run(&a, &script);
    assert_eq!(code, ExitCode::Ok, "{out}");
    let g = a.access("q", &h1()).unwrap().unwrap();
    assert_eq!(g.number, 12);
    assert_eq!(g.access, vds_core::Access::ReadOnly);
    assert!(out.contains("@cluster"), "{out}");
    let (code, _) = run(&a, "group delete name=cluster\n");
    assert_eq!(code, ExitCode::ServiceFailure, "in use by a mask");
}

/// Why: a line holding only `noerr` left no command word and the parser indexed an empty list
/// (found by the script_parse fuzz target).
#[test]
fn noerr_alone_is_a_syntax_error_not_a_panic() {
    assert!(parse_line("noerr").is_err());
    assert!(parse_line("  NOERR  ").is_err());
    let a = Array::in_memory();
    let (code, out) = run(&a, "list luns\n noerr\n");
    assert_eq!(code, ExitCode::Syntax);
    assert!(out.contains("line 2:"), "{out}");
}

/// A script using every command, run on an array with one host.
fn golden_script() -> String {
    format!(
        "group set name=cluster members={H1};10000000c9000002\n\
         create lun simple size=64 name=db unmask=@cluster=ro\n\
         number lun initiator={H1} number=12\n\
         detail lun\n\
         create lun simple size=4KB\n\
         unmask lun all\n\
         detail lun\n\
         unmask lun none\n\
         detail lun\n\
         create target name=t1 iscsiname=iqn.2024-01.org.example:array.t1 portals=10.0.0.1:3260,10.0.0.2:3260\n\
         detail target\n\
         select target t1\n\
         select lun db\n\
         associate targets add t1\n\
         snapshot lun name=db-snap\n\
         list luns\n\
         list targets\n\
         list hosts\n\
         list groups\n\
         list subsystem\n\
         extend lun size=1MB\n\
         offline lun\n\
         online lun\n\
         select lun db-snap\n\
         detail lun\n\
         split lun\n\
         extend lun size=1MB\n\
         resync lun from=db\n\
         select lun db\n\
         swap lun with=db-snap\n\
         unmask lun add initiator=iqn.2001-13.com.example noerr\n\
         select lun nothere noerr\n\
         select lun lun0\n\
         delete lun\n\
         delete lun noerr\n\
         select target t1\n\
         delete target noerr\n\
         create target name=t2 iscsiname=iqn.2024-01.org.example:array.t2\n\
         delete target\n\
         create lun simple size=1 name=g\n\
         unmask lun list=@cluster\n\
         select lun g\n\
         delete lun\n\
         group delete name=cluster\n\
         list luns\n\
         exit\n\
         list luns\n"
    )
}

fn golden_array() -> Array {
    let a = Array::in_memory();
    a.set_host("server1", &[h1()]).unwrap();
    a
}

/// The text `Session::run` printed for `golden_script` before runs returned structured results
/// (captured from that implementation).
const GOLDEN_TEXT: &str = r#"Group @cluster has 2 member(s).
Created LUN db; it is now the selected LUN.
Initiator iqn.1991-05.com.microsoft:server1 sees LUN db at number 12.
LUN db
  Id: 1
  Size: 67108864 bytes
  Type: Simple
  Status: Online
  Health: Healthy
  LUN number: 0
  Unmasked hosts:
    iqn.1991-05.com.microsoft:server1 (ReadOnly, LUN 12)
    10000000c9000002 (ReadOnly, LUN 0)
Created LUN lun0; it is now the selected LUN.
LUN lun0 is unmasked to: *
LUN lun0
  Id: 2
  Size: 4096 bytes
  Type: Simple
  Status: Online
  Health: Healthy
  LUN number: 1
  Unmasked hosts: all (ReadWrite, LUN 1)
LUN lun0 is unmasked to: 
LUN lun0
  Id: 2
  Size: 4096 bytes
  Type: Simple
  Status: Online
  Health: Healthy
  LUN number: 1
  Unmasked hosts: none
Created target t1.
Target t1
  iSCSI name: iqn.2024-01.org.example:array.t1
  Portals: 10.0.0.1:3260, 10.0.0.2:3260
Target t1 is now the selected target.
LUN db is now the selected LUN.
LUN db is associated with t1.
Snapshot LUN db-snap of db created, masked to no one.
  LUN  Name                 Size          Status   Mask
  0    db                       67108864  Online   @cluster=ro
  2    db-snap                  67108864  Online   (none)
  1    lun0                         4096  Online   (none)
  t1                   iqn.2024-01.org.example:array.t1 (1 LUNs)
  server1: iqn.1991-05.com.microsoft:server1
  @cluster: iqn.1991-05.com.microsoft:server1;10000000c9000002
  Subsystem: in-memory pool, 3 LUN(s), block size 4096, flags 0x80001, 1 controller(s)
LUN db is now 68157440 bytes.
LUN db is offline.
LUN db is online.
LUN db-snap is now the selected LUN.
LUN db-snap
  Id: 3
  Size: 67108864 bytes
  Type: Simple
  Status: Online
  Health: Healthy
  LUN number: 2
  Snapshot of: db
  Unmasked hosts: none
LUN db-snap is split from its source.
LUN db-snap is now 68157440 bytes.
LUN db-snap is resynchronised from db.
LUN db is now the selected LUN.
LUN db-snap took the place of db; db is masked to no one.
line 31: invalid initiator: "iqn.2001-13.com.example": month 13 is not 01 to 12
line 32: not found: no LUN named "nothere"
LUN lun0 is now the selected LUN.
Deleted LUN lun0.
line 35: no LUN is selected (select lun <name>)
Target t1 is now the selected target.
line 37: bad state: target "t1" still has 1 LUN(s) associated
Created target t2.
Deleted target t2.
Created LUN g; it is now the selected LUN.
LUN g is unmasked to: @cluster
LUN g is now the selected LUN.
Deleted LUN g.
line 44: bad state: group "cluster" is named in the mask of 1 LUN(s)
"#;

/// Why: the text is now rendered from the structured result; this script touches every command
/// (and errors with and without `noerr`), and its text must stay byte for byte what the
/// interpreter printed when it wrote text directly.
#[test]
fn text_rendered_from_the_structured_run_is_unchanged() {
    let a = golden_array();
    let mut out = String::new();
    let (code, err) = Session::new(&a).run(&golden_script(), &mut out);
    assert_eq!(out, GOLDEN_TEXT);
    assert_eq!(code, ExitCode::ServiceFailure);
    let err = err.expect("the error that stopped the script");
    assert_eq!(err.line, 44);
    assert_eq!(err.kind, ScriptErrorKind::Failed(ErrorKind::BadState));

    let b = golden_array();
    let run = run_script(&b, &golden_script());
    assert_eq!(run.render_text(), GOLDEN_TEXT);
    assert_eq!(run.to_string(), GOLDEN_TEXT);
}

#[test]
fn a_successful_run_returns_typed_rows_and_records() {
    let a = Array::in_memory();
    a.create_lun("alpha", 8 << 20, &MaskSpec::host(h1(), Access::ReadWrite))
        .unwrap();
    a.create_lun("beta", 3 << 30, &MaskSpec::None).unwrap();
    let script = "# look around\n\
                  list luns\n\
                  \n\
                  select lun alpha\n\
                  detail lun\n\
                  offline lun\n";
    let run = run_script(&a, script);
    assert_eq!(run.exit_code, ExitCode::Ok);
    assert_eq!(run.stopped_at, None);
    assert!(run.ignored_errors.is_empty());
    assert_eq!(run.first_error(), None);
    // Blank and comment lines have no result; the others keep their script line numbers.
    let numbers: Vec<usize> = run.lines.iter().map(|l| l.line).collect();
    assert_eq!(numbers, [2, 4, 5, 6]);
    assert_eq!(run.lines[0].command, "list luns");
    assert!(run.lines.iter().all(|l| !l.noerr));

    let expected = vec![
        LunRow {
            number: 0,
            name: "alpha".into(),
            size: 8 << 20,
            status: LunStatus::Online,
            health: Health::Healthy,
            mask: H1.into(),
            source: None,
        },
        LunRow {
            number: 1,
            name: "beta".into(),
            size: 3 << 30,
            status: LunStatus::Online,
            health: Health::Healthy,
            mask: String::new(),
            source: None,
        },
    ];
    assert_eq!(run.lines[0].outcome, Ok(Output::Luns { rows: expected }));
    assert_eq!(
        run.lines[1].outcome,
        Ok(Output::LunSelected {
            name: "alpha".into()
        })
    );
    let Ok(Output::LunDetail(d)) = &run.lines[2].outcome else {
        panic!("{:?}", run.lines[2]);
    };
    assert_eq!(
        (d.name.as_str(), d.size, d.source.as_deref()),
        ("alpha", 8 << 20, None)
    );
    let UnmaskedHosts::Hosts { hosts } = &d.unmasked else {
        panic!("{:?}", d.unmasked);
    };
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].initiator, H1);
    assert_eq!(hosts[0].access, Access::ReadWrite);
    assert_eq!(
        run.lines[3].outcome,
        Ok(Output::LunStatusSet {
            name: "alpha".into(),
            online: false
        })
    );
    assert_eq!(a.lun("alpha").unwrap().status, LunStatus::Offline);
}

#[test]
fn an_error_under_noerr_is_recorded_and_the_script_goes_on() {
    let a = Array::in_memory();
    a.create_lun("taken", 1 << 20, &MaskSpec::None).unwrap();
    let script = "create lun simple size=1 name=free\n\
                  create lun simple size=1 name=taken noerr\n\
                  select lun nothere noerr\n\
                  create lun simple size=2 name=after\n";
    let run = run_script(&a, script);
    assert_eq!(run.exit_code, ExitCode::Ok);
    assert_eq!(run.stopped_at, None);
    assert_eq!(run.ignored_errors, [2, 3]);
    assert_eq!(run.lines.len(), 4);
    let errors: Vec<_> = run.errors().collect();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].line, 2);
    assert_eq!(errors[0].code, ExitCode::ServiceFailure);
    assert_eq!(
        errors[0].kind,
        ScriptErrorKind::Failed(ErrorKind::AlreadyExists)
    );
    assert_eq!(errors[1].line, 3);
    assert_eq!(errors[1].code, ExitCode::Syntax);
    assert_eq!(errors[1].kind, ScriptErrorKind::Failed(ErrorKind::NotFound));
    assert!(run.lines[1].noerr && run.lines[2].noerr);
    assert_eq!(run.stopping_error(), None);
    assert_eq!(run.first_error().map(|e| e.line), Some(2));
    assert_eq!(a.lun("after").unwrap().size, 2 << 20, "the script went on");
}

#[test]
fn an_error_without_noerr_stops_the_script_at_its_line() {
    let a = Array::in_memory();
    a.create_lun("taken", 1 << 20, &MaskSpec::None).unwrap();
    let script = "create lun simple size=1 name=free\n\
                  # a comment keeps the numbering honest\n\
                  create lun simple size=1 name=taken\n\
                  create lun simple size=2 name=never\n";
    let run = run_script(&a, script);
    assert_eq!(run.exit_code, ExitCode::ServiceFailure);
    assert_eq!(run.stopped_at, Some(3));
    assert!(run.ignored_errors.is_empty());
    assert_eq!(run.lines.len(), 2, "line 4 never ran");
    let e = run.stopping_error().expect("a stopping error");
    assert_eq!(e.line, 3);
    assert_eq!(e.kind, ScriptErrorKind::Failed(ErrorKind::AlreadyExists));
    assert!(!run.lines[1].noerr);
    assert!(a.lun("never").is_err());

    // A command that needs a selection, without one: exit code 5.
    let run = run_script(&a, "list luns\ndelete lun\nlist luns\n");
    assert_eq!(run.exit_code, ExitCode::Syntax);
    assert_eq!(run.stopped_at, Some(2));
    assert_eq!(
        run.stopping_error().map(|e| e.kind),
        Some(ScriptErrorKind::NoSelection)
    );

    // `exit` ends the script too, without an error.
    let run = run_script(&a, "list luns\nexit\nlist luns\n");
    assert_eq!(run.exit_code, ExitCode::Ok);
    assert_eq!(run.stopped_at, Some(2));
    assert_eq!(run.lines.len(), 2);
    assert_eq!(run.lines[1].outcome, Ok(Output::Exit));
    assert_eq!(run.stopping_error(), None);
}

#[test]
fn a_syntax_error_stops_the_script_even_under_noerr() {
    let a = Array::in_memory();
    let run = run_script(
        &a,
        "list luns\n\nfrobnicate lun noerr\ncreate lun simple size=1\n",
    );
    assert_eq!(run.exit_code, ExitCode::Syntax);
    assert_eq!(run.stopped_at, Some(3));
    assert_eq!(run.lines.len(), 2);
    let l = &run.lines[1];
    assert_eq!((l.line, l.command.as_str()), (3, "frobnicate lun noerr"));
    let e = l.outcome.as_ref().unwrap_err();
    assert_eq!(e.line, 3);
    assert_eq!(e.code, ExitCode::Syntax);
    assert_eq!(e.kind, ScriptErrorKind::Syntax);
    assert_eq!(e.message, "unknown command \"frobnicate\"");
    assert!(a.luns().is_empty(), "line 4 never ran");
}

#[test]
fn the_json_form_carries_typed_values() {
    let a = Array::in_memory();
    a.create_lun("db", 64 << 20, &MaskSpec::host(h1(), Access::ReadWrite))
        .unwrap();
    a.create_lun("logs", 5 << 30, &MaskSpec::None).unwrap();
    a.set_online("logs", false).unwrap();
    let run = run_script(
        &a,
        "list luns\nselect lun db\ncreate lun simple size=1 name=db noerr\nextend lun size=1GB\n",
    );
    let text = serde_json::to_string(&run).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();

    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["stopped_at"], serde_json::Value::Null);
    assert_eq!(v["ignored_errors"], serde_json::json!([3]));
    let lines = v["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 4);

    let list = &lines[0];
    assert_eq!(list["line"], 1);
    assert_eq!(list["command"], "list luns");
    assert_eq!(list["noerr"], false);
    assert_eq!(list["status"], "ok");
    assert_eq!(list["output"]["type"], "luns");
    let rows = list["output"]["rows"].as_array().unwrap();
    let expected = serde_json::json!([
        {"number": 0, "name": "db", "size": 64u64 << 20, "status": "online",
         "health": "healthy", "mask": H1, "source": null},
        {"number": 1, "name": "logs", "size": 5u64 << 30, "status": "offline",
         "health": "healthy", "mask": "", "source": null},
    ]);
    assert_eq!(rows, expected.as_array().unwrap());
    assert!(rows[1]["size"].is_u64(), "sizes are integer bytes");

    let failed = &lines[2];
    assert_eq!(failed["status"], "error");
    assert_eq!(failed["noerr"], true);
    assert!(failed.get("output").is_none());
    assert_eq!(failed["error"]["line"], 3);
    assert_eq!(failed["error"]["exit_code"], 4);
    assert_eq!(failed["error"]["kind"], "already_exists");
    assert!(failed["error"]["message"]
        .as_str()
        .unwrap()
        .contains("exists"));

    assert_eq!(
        lines[3]["output"],
        serde_json::json!({"type": "lun_extended", "name": "db", "size": (64u64 << 20) + (1 << 30)})
    );

    // A stopped run: the exit code is the number DiskRAID returns.
    let v = serde_json::to_value(run_script(&a, "delete lun\n")).unwrap();
    assert_eq!(v["exit_code"], 5);
    assert_eq!(v["stopped_at"], 1);
    assert_eq!(v["lines"][0]["error"]["kind"], "no_selection");
}

/// Why: a failed `select` kept the previous selection, so `select lun keepme` / `select lun typo
/// noerr` / `delete lun` deleted `keepme`. A failed select now leaves nothing selected: the
/// delete fails (no LUN selected) and nothing is deleted.
#[test]
fn a_failed_select_leaves_nothing_selected_so_nothing_else_is_deleted() {
    let a = Array::in_memory();
    a.create_lun("keepme", 1 << 20, &MaskSpec::None).unwrap();
    let run = run_script(&a, "select lun keepme\nselect lun typo noerr\ndelete lun\n");
    assert_eq!(run.exit_code, ExitCode::Syntax);
    assert_eq!(run.ignored_errors, [2]);
    assert_eq!(run.stopped_at, Some(3));
    assert_eq!(
        run.stopping_error().map(|e| e.kind),
        Some(ScriptErrorKind::NoSelection)
    );
    assert!(a.lun("keepme").is_ok(), "keepme was deleted");

    // The same for a target.
    a.create_target("t1", "iqn.2024-01.org.example:array.t1", &[])
        .unwrap();
    let run = run_script(
        &a,
        "select target t1\nselect target nope noerr\ndelete target\n",
    );
    assert_eq!(run.exit_code, ExitCode::Syntax);
    assert_eq!(
        run.stopping_error().map(|e| e.kind),
        Some(ScriptErrorKind::NoSelection)
    );
    assert_eq!(a.targets().len(), 1, "t1 was deleted");

    // A session keeps its selection from one run to the next, and a failed select, one that
    // does not parse included, clears it for the next run too.
    let mut session = Session::new(&a);
    for failed in ["select lun typo", "select lun keepme extra", "select lun"] {
        assert_eq!(
            session.execute("select lun keepme\n").exit_code,
            ExitCode::Ok
        );
        let run = session.execute(&format!("{failed}\n"));
        assert_eq!(run.exit_code, ExitCode::Syntax, "{failed}");
        let run = session.execute("delete lun\n");
        assert_eq!(
            run.stopping_error().map(|e| e.kind),
            Some(ScriptErrorKind::NoSelection),
            "after {failed:?}"
        );
        assert!(a.lun("keepme").is_ok(), "deleted after {failed:?}");
    }
    // A failed LUN select leaves the selected target alone, and the other way round.
    let run = session.execute("select target t1\nselect lun typo noerr\ndetail target\n");
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
    let run = session.execute("select lun keepme\nselect target nope noerr\ndetail lun\n");
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
}

/// Why: `Session::run` returned the first error `noerr` let pass beside an Ok exit code. It
/// returns the error that stopped the script, so an error comes exactly with a non-Ok code (and
/// is that code's error). Seeded random scripts over lines that succeed, fail, fail under
/// `noerr`, do not parse, and `exit`.
#[test]
fn run_returns_an_error_exactly_with_a_failing_exit_code() {
    let a = Array::in_memory();
    let (code, err) = {
        let mut out = String::new();
        Session::new(&a).run(
            "create lun simple size=1 name=x\nselect lun nothere noerr\ncreate lun simple size=1 name=x noerr\n",
            &mut out,
        )
    };
    assert_eq!((code, err), (ExitCode::Ok, None), "noerr failures only");

    let pool = [
        "list luns",
        "create lun simple size=1 name=r",
        "create lun simple size=1 name=r noerr",
        "select lun r",
        "select lun missing noerr",
        "select lun missing",
        "delete lun",
        "delete lun noerr",
        "unmask lun initiator=iqn.2001-13.com.example noerr",
        "frobnicate lun noerr",
        "# comment",
        "exit",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..300 {
        let lines: Vec<&str> = (0..1 + next(8)).map(|_| pool[next(pool.len())]).collect();
        let script = lines.join("\n") + "\n";
        let a = Array::in_memory();
        let mut out = String::new();
        let (code, err) = Session::new(&a).run(&script, &mut out);
        seen.insert(code as i32);
        match &err {
            None => assert_eq!(code, ExitCode::Ok, "{script}"),
            Some(e) => {
                assert_ne!(code, ExitCode::Ok, "{script}");
                assert_eq!(e.code, code, "{script}");
                // It is the line that stopped the script: the last line that ran.
                let ran = run_script(&Array::in_memory(), &script);
                assert_eq!(Some(e.line), ran.stopped_at, "{script}");
            }
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [0, 4, 5], "codes met");
}

/// Why: an invalid argument the array refused was exit code 5 (syntax), as if the line were
/// malformed. The array's refusals are service failures (4); 5 stays for what the interpreter
/// finds itself (a line that does not parse, a value it refuses before asking the array, no
/// selection) and for an object that does not exist.
#[test]
fn an_invalid_argument_from_the_array_is_a_service_failure() {
    let a = Array::in_memory();
    a.create_lun("plain", 1 << 20, &MaskSpec::None).unwrap();
    a.create_lun("big", 2 << 20, &MaskSpec::None).unwrap();
    let cases = [
        // The array's refusals of arguments: 4.
        (
            "select lun plain\nsplit lun\n",
            ExitCode::ServiceFailure,
            ErrorKind::InvalidArgument,
        ),
        (
            "select lun plain\nresync lun from=big\n",
            ExitCode::ServiceFailure,
            ErrorKind::InvalidArgument,
        ),
        (
            "create lun simple size=1B name=odd\n",
            ExitCode::ServiceFailure,
            ErrorKind::InvalidArgument,
        ),
        // An object that does not exist: a selection error, 5.
        (
            "select lun nothere\n",
            ExitCode::Syntax,
            ErrorKind::NotFound,
        ),
        (
            "select lun plain\nswap lun with=nothere\n",
            ExitCode::Syntax,
            ErrorKind::NotFound,
        ),
        // Values the interpreter refuses before asking the array: 5.
        (
            "select lun plain\nunmask lun initiator=iqn.2001-13.com.example\n",
            ExitCode::Syntax,
            ErrorKind::InvalidInitiator,
        ),
        (
            "group set name=g members=iqn.bogus\n",
            ExitCode::Syntax,
            ErrorKind::InvalidInitiator,
        ),
        (
            "create lun simple size=1 name=bad/name\n",
            ExitCode::Syntax,
            ErrorKind::InvalidArgument,
        ),
    ];
    for (script, code, kind) in cases {
        let run = run_script(&a, script);
        let e = run.stopping_error().expect(script);
        assert_eq!((run.exit_code, e.code), (code, code), "{script}: {e}");
        assert_eq!(e.kind, ScriptErrorKind::Failed(kind), "{script}: {e}");
    }
    assert!(a.lun("odd").is_err() && a.lun("plain").is_ok());
}

/// What `noerr` does, as the module docs say: it lets a failed command (the array's refusal, a
/// value the interpreter refuses, a missing selection) pass, but not a line that does not parse,
/// which stops the script with exit code 5 whatever its ending.
#[test]
fn noerr_lets_a_failed_command_pass_but_not_a_line_that_does_not_parse() {
    let a = Array::in_memory();
    let run = run_script(
        &a,
        "unmask lun all noerr\n\
         create lun simple size=1 name=n unmask=iqn.2001-13.com.example noerr\n\
         create lun simple size=1B name=odd noerr\n\
         create lun simple size=1 name=kept\n",
    );
    assert_eq!(run.exit_code, ExitCode::Ok, "{run}");
    assert_eq!(run.ignored_errors, [1, 2, 3]);
    let codes: Vec<ExitCode> = run.errors().map(|e| e.code).collect();
    assert_eq!(
        codes,
        [ExitCode::Syntax, ExitCode::Syntax, ExitCode::ServiceFailure]
    );
    assert!(a.lun("kept").is_ok());

    for bad in [
        "create lun simple size=ten name=x noerr",
        "create lun mirror size=1 noerr",
        "select lun a b noerr",
        "noerr",
    ] {
        let run = run_script(&a, &format!("{bad}\ncreate lun simple size=1 name=after\n"));
        assert_eq!(run.exit_code, ExitCode::Syntax, "{bad}");
        assert_eq!(run.stopped_at, Some(1), "{bad}");
        assert_eq!(
            run.stopping_error().map(|e| e.kind),
            Some(ScriptErrorKind::Syntax),
            "{bad}"
        );
        assert!(a.lun("after").is_err(), "the script went on after {bad:?}");
    }
}
