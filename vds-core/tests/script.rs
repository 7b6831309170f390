//! The DiskRAID-style script language: commands, exit codes, and errors that name the line.

use vds_core::script::{parse_line, parse_size, Command, ExitCode, Session, Unmask};
use vds_core::{Array, InitiatorId};

const H1: &str = "iqn.1991-05.com.microsoft:server1";

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
    a.create_lun("l", 1 << 20, H1).unwrap();
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
    let g = a
        .access("q", &InitiatorId::parse(H1).unwrap())
        .unwrap()
        .unwrap();
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
