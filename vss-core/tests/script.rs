//! The DiskShadow-style script language: valid lines and the commands they are, malformed lines
//! and the errors they give, alias expansion, the dry run, the run result's JSON, and a property
//! test of the canonical text.

use proptest::prelude::*;
use uuid::Uuid;
use vds_core::InitiatorId;
use vss_core::script::{
    parse_line, validate, Aliases, Command, ContextWord, DeleteTarget, ExitCode, LineResult,
    Output, ScriptError, ScriptErrorKind, ScriptRun, ShadowSelector, WriterAction, WriterListing,
    OPTION_WORDS,
};
use vss_core::{Attributes, BackupType, Context, ErrorKind, ProviderType};

const ID: &str = "6f1c3a2e-0b7d-4c55-9e61-2a8f4d9b7c10";

/// A literal line with the id [`ID`] after `$before` (and `$after` after it).
macro_rules! with_id {
    ($before:literal) => {
        concat!($before, "6f1c3a2e-0b7d-4c55-9e61-2a8f4d9b7c10")
    };
    ($before:literal, $after:literal) => {
        concat!($before, "6f1c3a2e-0b7d-4c55-9e61-2a8f4d9b7c10", $after)
    };
}

fn id() -> Uuid {
    Uuid::parse_str(ID).unwrap()
}

fn parse(text: &str) -> Command {
    parse_line(1, text, &Aliases::isolated())
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .unwrap_or_else(|| panic!("{text:?} is not a command"))
}

/// Every command word, in several spellings, and the command it is, with its canonical text.
#[test]
fn valid_lines_parse_to_their_commands() {
    let host = InitiatorId::parse("iqn.2024-01.com.example:backup").unwrap();
    let table: Vec<(&str, Command, String)> = vec![
        (
            "set context clientaccessible",
            Command::SetContext(ContextWord::ClientAccessible),
            "set context clientaccessible".into(),
        ),
        (
            "SET CONTEXT PERSISTENT",
            Command::SetContext(ContextWord::Persistent { nowriters: false }),
            "set context persistent".into(),
        ),
        (
            "  set   context persistent   NoWriters  ",
            Command::SetContext(ContextWord::Persistent { nowriters: true }),
            "set context persistent nowriters".into(),
        ),
        (
            "set context volatile",
            Command::SetContext(ContextWord::Volatile { nowriters: false }),
            "set context volatile".into(),
        ),
        (
            "set context volatile nowriters",
            Command::SetContext(ContextWord::Volatile { nowriters: true }),
            "set context volatile nowriters".into(),
        ),
        (
            "set option transportable plex",
            Command::SetOption(Attributes::PLEX | Attributes::TRANSPORTABLE),
            "set option plex transportable".into(),
        ),
        (
            "set option differential transportable rollbackrecover txfrecover",
            Command::SetOption(
                Attributes::DIFFERENTIAL
                    | Attributes::TRANSPORTABLE
                    | Attributes::ROLLBACK_RECOVERY
                    | Attributes::TXF_RECOVERY,
            ),
            "set option differential transportable rollbackrecover txfrecover".into(),
        ),
        (
            "set option noautorecover",
            Command::SetOption(Attributes::NO_AUTORECOVERY),
            "set option noautorecover".into(),
        ),
        (
            "set backuptype copy",
            Command::SetBackupType(BackupType::Copy),
            "set backuptype copy".into(),
        ),
        (
            "set backuptype FULL",
            Command::SetBackupType(BackupType::Full),
            "set backuptype full".into(),
        ),
        (
            "set backuptype incremental",
            Command::SetBackupType(BackupType::Incremental),
            "set backuptype incremental".into(),
        ),
        (
            "set backuptype differential",
            Command::SetBackupType(BackupType::Differential),
            "set backuptype differential".into(),
        ),
        (
            "set backuptype log",
            Command::SetBackupType(BackupType::Log),
            "set backuptype log".into(),
        ),
        (
            "set metadata /var/backup/db.bcd.json",
            Command::SetMetadata("/var/backup/db.bcd.json".into()),
            "set metadata /var/backup/db.bcd.json".into(),
        ),
        (
            "set metadata \"/var/my backups/db#1.json\"",
            Command::SetMetadata("/var/my backups/db#1.json".into()),
            "set metadata \"/var/my backups/db#1.json\"".into(),
        ),
        (
            "set verbose on",
            Command::SetVerbose(true),
            "set verbose on".into(),
        ),
        (
            "set verbose OFF",
            Command::SetVerbose(false),
            "set verbose off".into(),
        ),
        (
            "load metadata db.json",
            Command::LoadMetadata("db.json".into()),
            "load metadata db.json".into(),
        ),
        (
            "writer verify db",
            Command::Writer {
                action: WriterAction::Verify,
                name: "db".into(),
            },
            "writer verify db".into(),
        ),
        (
            "writer exclude System   Writer",
            Command::Writer {
                action: WriterAction::Exclude,
                name: "System Writer".into(),
            },
            "writer exclude \"System Writer\"".into(),
        ),
        (
            "writer exclude \"System  Writer\"",
            Command::Writer {
                action: WriterAction::Exclude,
                name: "System  Writer".into(),
            },
            "writer exclude \"System  Writer\"".into(),
        ),
        (
            "add volume db",
            Command::AddVolume {
                lun: "db".into(),
                provider: None,
                alias: None,
            },
            "add volume db".into(),
        ),
        (
            "add volume db-data.1 alias Data1 provider HARDWARE",
            Command::AddVolume {
                lun: "db-data.1".into(),
                provider: Some(ProviderType::Hardware),
                alias: Some("Data1".into()),
            },
            "add volume db-data.1 provider hardware alias Data1".into(),
        ),
        (
            "add volume logs provider software",
            Command::AddVolume {
                lun: "logs".into(),
                provider: Some(ProviderType::Software),
                alias: None,
            },
            "add volume logs provider software".into(),
        ),
        (
            "add alias target iqn.2024-01.com.example:backup",
            Command::AddAlias {
                name: "target".into(),
                value: "iqn.2024-01.com.example:backup".into(),
            },
            "add alias target iqn.2024-01.com.example:backup".into(),
        ),
        ("begin backup", Command::BeginBackup, "begin backup".into()),
        ("End Backup", Command::EndBackup, "end backup".into()),
        (
            "begin restore",
            Command::BeginRestore,
            "begin restore".into(),
        ),
        ("end restore", Command::EndRestore, "end restore".into()),
        (
            "simulate restore",
            Command::SimulateRestore,
            "simulate restore".into(),
        ),
        ("CREATE", Command::Create, "create".into()),
        (
            "list shadows all",
            Command::ListShadows(ShadowSelector::All),
            "list shadows all".into(),
        ),
        (
            "list shadows set {6F1C3A2E-0B7D-4C55-9E61-2A8F4D9B7C10}",
            Command::ListShadows(ShadowSelector::Set(id())),
            format!("list shadows set {ID}"),
        ),
        (
            "list shadows id 6f1c3a2e0b7d4c559e612a8f4d9b7c10",
            Command::ListShadows(ShadowSelector::Id(id())),
            format!("list shadows id {ID}"),
        ),
        (
            "list writers",
            Command::ListWriters(WriterListing::Summary),
            "list writers".into(),
        ),
        (
            "list writers metadata",
            Command::ListWriters(WriterListing::Metadata),
            "list writers metadata".into(),
        ),
        (
            "list writers detailed",
            Command::ListWriters(WriterListing::Detailed),
            "list writers detailed".into(),
        ),
        (
            "list writers status",
            Command::ListWriters(WriterListing::Status),
            "list writers status".into(),
        ),
        (
            "list providers",
            Command::ListProviders,
            "list providers".into(),
        ),
        (
            "delete shadows all",
            Command::DeleteShadows(DeleteTarget::All),
            "delete shadows all".into(),
        ),
        (
            "delete shadows volume db",
            Command::DeleteShadows(DeleteTarget::Volume("db".into())),
            "delete shadows volume db".into(),
        ),
        (
            "delete shadows oldest db",
            Command::DeleteShadows(DeleteTarget::Oldest("db".into())),
            "delete shadows oldest db".into(),
        ),
        (
            with_id!("delete shadows set "),
            Command::DeleteShadows(DeleteTarget::Set(id())),
            format!("delete shadows set {ID}"),
        ),
        (
            with_id!("delete shadows id "),
            Command::DeleteShadows(DeleteTarget::Id(id())),
            format!("delete shadows id {ID}"),
        ),
        (
            "delete shadows exposed 21:00:00:24:FF:4C:2A:01",
            Command::DeleteShadows(DeleteTarget::Exposed(
                InitiatorId::parse("21000024ff4c2a01").unwrap(),
            )),
            "delete shadows exposed 21000024ff4c2a01".into(),
        ),
        (
            with_id!("expose ", " IQN.2024-01.com.Example:Backup"),
            Command::Expose {
                id: id(),
                host: host.clone(),
            },
            format!("expose {ID} iqn.2024-01.com.example:backup"),
        ),
        (
            with_id!("unexpose "),
            Command::Unexpose(id()),
            format!("unexpose {ID}"),
        ),
        ("import", Command::Import, "import".into()),
        (with_id!("mask "), Command::Mask(id()), format!("mask {ID}")),
        (
            with_id!("break "),
            Command::Break {
                writable: false,
                set: id(),
            },
            format!("break {ID}"),
        ),
        (
            with_id!("break Writable "),
            Command::Break {
                writable: true,
                set: id(),
            },
            format!("break writable {ID}"),
        ),
        (
            with_id!("revert "),
            Command::Revert(id()),
            format!("revert {ID}"),
        ),
        (
            with_id!("resync "),
            Command::Resync {
                id: id(),
                target: None,
            },
            format!("resync {ID}"),
        ),
        (
            with_id!("resync ", " spare"),
            Command::Resync {
                id: id(),
                target: Some("spare".into()),
            },
            format!("resync {ID} spare"),
        ),
        (
            "exec /usr/local/bin/copy-out.sh",
            Command::Exec("/usr/local/bin/copy-out.sh".into()),
            "exec /usr/local/bin/copy-out.sh".into(),
        ),
        (
            "exec 100%%.sh",
            Command::Exec("100%.sh".into()),
            "exec 100%%.sh".into(),
        ),
        ("reset", Command::Reset, "reset".into()),
        ("exit", Command::Exit, "exit".into()),
        ("create # and a comment", Command::Create, "create".into()),
    ];
    for (line, want, canonical) in table {
        let got = parse(line);
        assert_eq!(got, want, "{line:?}");
        assert_eq!(got.to_string(), canonical, "{line:?}");
        assert_eq!(parse(&canonical), want, "{canonical:?}");
    }
}

#[test]
fn blank_and_comment_lines_are_no_command() {
    for line in [
        "",
        "   ",
        "\t",
        "# a comment",
        "   #set context volatile",
        "rem set context volatile",
        "REM",
        "Rem \"unclosed",
    ] {
        assert_eq!(
            parse_line(7, line, &Aliases::isolated()),
            Ok(None),
            "{line:?}"
        );
    }
    // `rem` in quotes is a word, not a comment.
    assert!(parse_line(1, "\"rem\" x", &Aliases::isolated()).is_err());
}

/// The context words are VSS's contexts, and the option words VSS's attribute bits.
#[test]
fn context_and_option_words_have_vss_values() {
    let table = [
        ("clientaccessible", Context::CLIENT_ACCESSIBLE, 0x1D),
        ("persistent", Context::APP_ROLLBACK, 0x09),
        ("persistent nowriters", Context::NAS_ROLLBACK, 0x19),
        ("volatile", Context::BACKUP, 0x00),
        ("volatile nowriters", Context::FILE_SHARE_BACKUP, 0x10),
    ];
    for (words, ctx, bits) in table {
        let Command::SetContext(w) = parse(&format!("set context {words}")) else {
            panic!("{words}");
        };
        assert_eq!(w.context(), ctx, "{words}");
        assert_eq!(w.context().bits(), bits, "{words}");
        assert_eq!(
            w.context().has_writers(),
            !words.contains("nowriters") && words != "clientaccessible"
        );
    }
    let bits: Vec<(String, u32)> = OPTION_WORDS
        .iter()
        .map(|(w, _)| {
            let Command::SetOption(a) = parse(&format!("set option {w}")) else {
                panic!("{w}");
            };
            (w.to_string(), a.bits())
        })
        .collect();
    assert_eq!(
        bits,
        [
            ("differential".to_string(), 0x20000),
            ("plex".to_string(), 0x40000),
            ("transportable".to_string(), 0x20),
            ("rollbackrecover".to_string(), 0x800000),
            ("txfrecover".to_string(), 0x2000000),
            ("noautorecover".to_string(), 0x2),
        ]
    );
}

/// A malformed line, the word at fault, its column, a part of what was expected and a part of
/// the message.
type BadLine = (
    &'static str,
    Option<&'static str>,
    Option<usize>,
    &'static str,
    &'static str,
);

/// A malformed line: its number, the word at fault (`None`: at the end of the line), a part of
/// what was expected, a part of the message.
#[test]
fn malformed_lines_name_the_line_the_word_and_what_was_expected() {
    let table: Vec<BadLine> = vec![
        (
            "sett context volatile",
            Some("sett"),
            Some(1),
            "a command (set, load",
            "unknown word \"sett\"",
        ),
        (
            "set",
            None,
            None,
            "context, option, backuptype, metadata or verbose",
            "a word is missing",
        ),
        (
            "set context",
            None,
            None,
            "clientaccessible, persistent or volatile",
            "a word is missing",
        ),
        (
            "set context volatil",
            Some("volatil"),
            Some(13),
            "clientaccessible, persistent or volatile",
            "unknown word",
        ),
        (
            "set context clientaccessible nowriters",
            Some("nowriters"),
            Some(30),
            "the end of the line",
            "unexpected word",
        ),
        (
            "set context persistent nowriters nowriters",
            Some("nowriters"),
            Some(34),
            "the end of the line",
            "unexpected word",
        ),
        (
            "set option",
            None,
            None,
            "an option (differential, plex",
            "a word is missing",
        ),
        (
            "set option plex differential",
            Some("differential"),
            Some(17),
            "an option",
            "differential and plex exclude each other",
        ),
        (
            "set option rollbackrecover noautorecover",
            Some("noautorecover"),
            Some(28),
            "an option",
            "noautorecover excludes rollbackrecover and txfrecover",
        ),
        (
            "set option transportable transportable",
            Some("transportable"),
            Some(26),
            "an option",
            "the option is given twice",
        ),
        (
            "set option fast",
            Some("fast"),
            Some(12),
            "an option",
            "unknown word \"fast\"",
        ),
        (
            "set backuptype daily",
            Some("daily"),
            Some(16),
            "a backup type (copy, full, incremental, differential, log)",
            "unknown word",
        ),
        (
            "set verbose yes",
            Some("yes"),
            Some(13),
            "on or off",
            "unknown word",
        ),
        (
            "set metadata",
            None,
            None,
            "a file name",
            "a word is missing",
        ),
        (
            "set metadata \"\"",
            Some("\"\""),
            Some(14),
            "a file name",
            "the word is empty",
        ),
        (
            "set metadata \"my file",
            Some("\"my file"),
            Some(14),
            "a closing double quote",
            "not closed",
        ),
        (
            "load meta x",
            Some("meta"),
            Some(6),
            "metadata",
            "unknown word",
        ),
        (
            "writer verify",
            None,
            None,
            "a writer or component name",
            "the name is missing",
        ),
        (
            "writer include db",
            Some("include"),
            Some(8),
            "verify or exclude",
            "unknown word",
        ),
        ("add volume", None, None, "a LUN name", "a word is missing"),
        (
            "add volume db/1",
            Some("db/1"),
            Some(12),
            "a LUN name",
            "db/1",
        ),
        (
            "add volume db provider nas",
            Some("nas"),
            Some(24),
            "software or hardware",
            "unknown word",
        ),
        (
            "add volume db alias 1st",
            Some("1st"),
            Some(21),
            "an alias name",
            "is not an alias name",
        ),
        (
            "add volume db alias a alias b",
            Some("alias"),
            Some(23),
            "provider software|hardware, alias NAME",
            "alias is given twice",
        ),
        (
            "add volume db provider software provider hardware",
            Some("provider"),
            Some(33),
            "provider software|hardware",
            "provider is given twice",
        ),
        (
            "add volume db extra",
            Some("extra"),
            Some(15),
            "provider software|hardware, alias NAME or the end of the line",
            "unknown word",
        ),
        (
            "add alias x",
            None,
            None,
            "the alias's value",
            "a word is missing",
        ),
        (
            "add alias x-y 1",
            Some("x-y"),
            Some(11),
            "an alias name",
            "is not an alias name",
        ),
        (
            "add shadow x",
            Some("shadow"),
            Some(5),
            "volume or alias",
            "unknown word",
        ),
        (
            "begin",
            None,
            None,
            "backup or restore",
            "a word is missing",
        ),
        (
            "end recovery",
            Some("recovery"),
            Some(5),
            "backup or restore",
            "unknown word",
        ),
        (
            "simulate backup",
            Some("backup"),
            Some(10),
            "restore",
            "unknown word",
        ),
        (
            "create now",
            Some("now"),
            Some(8),
            "the end of the line",
            "unexpected word \"now\"",
        ),
        (
            "list",
            None,
            None,
            "shadows, writers or providers",
            "a word is missing",
        ),
        (
            "list shadows",
            None,
            None,
            "all, set ID or id ID",
            "a word is missing",
        ),
        (
            "list shadows id 1234",
            Some("1234"),
            Some(17),
            "a shadow id (a UUID, braces allowed)",
            "\"1234\" is not a UUID",
        ),
        (
            "list shadows set",
            None,
            None,
            "a set id (a UUID",
            "a word is missing",
        ),
        (
            "list writers everything",
            Some("everything"),
            Some(14),
            "metadata, detailed, status or the end of the line",
            "unknown word",
        ),
        (
            "list providers all",
            Some("all"),
            Some(16),
            "the end of the line",
            "unexpected word",
        ),
        (
            "delete shadow all",
            Some("shadow"),
            Some(8),
            "shadows",
            "unknown word",
        ),
        (
            "delete shadows",
            None,
            None,
            "all, volume LUN, oldest LUN, set ID, id ID or exposed HOST",
            "a word is missing",
        ),
        (
            "delete shadows oldest",
            None,
            None,
            "a LUN name",
            "a word is missing",
        ),
        (
            "delete shadows exposed z:",
            Some("z:"),
            Some(24),
            "an initiator id",
            "z:",
        ),
        (
            "delete shadows all now",
            Some("now"),
            Some(20),
            "the end of the line",
            "unexpected word",
        ),
        ("expose", None, None, "a shadow id", "a word is missing"),
        (
            with_id!("expose "),
            None,
            None,
            "an initiator id",
            "a word is missing",
        ),
        (
            with_id!("expose ", " 0000000000000000"),
            Some("0000000000000000"),
            Some(45),
            "an initiator id",
            "all-zero",
        ),
        (
            "unexpose x:",
            Some("x:"),
            Some(10),
            "a shadow id",
            "is not a UUID",
        ),
        (
            "import all",
            Some("all"),
            Some(8),
            "the end of the line",
            "unexpected word",
        ),
        ("mask", None, None, "a set id", "a word is missing"),
        (
            "break writable",
            None,
            None,
            "a set id",
            "a word is missing",
        ),
        (
            "break readonly x",
            Some("readonly"),
            Some(7),
            "a set id",
            "is not a UUID",
        ),
        (
            "revert {}",
            Some("{}"),
            Some(8),
            "a shadow id",
            "is not a UUID",
        ),
        (
            with_id!("resync ", " a b"),
            Some("b"),
            Some(47),
            "the end of the line",
            "unexpected word",
        ),
        ("exec", None, None, "a file to run", "a word is missing"),
        (
            "exec a.sh arg",
            Some("arg"),
            Some(11),
            "the end of the line",
            "unexpected word",
        ),
        (
            "reset all",
            Some("all"),
            Some(7),
            "the end of the line",
            "unexpected word",
        ),
        (
            "exit 0",
            Some("0"),
            Some(6),
            "the end of the line",
            "unexpected word",
        ),
        (
            "exec 100%.sh",
            Some("100%.sh"),
            Some(6),
            "%NAME% or %% for a percent sign",
            "a lone %",
        ),
        (
            "exec %1x%",
            Some("%1x%"),
            Some(6),
            "%NAME% or %% for a percent sign",
            "\"1x\" is not an alias name",
        ),
        (
            "exec %NOPE%",
            Some("%NOPE%"),
            Some(6),
            "a defined alias or environment variable",
            "no alias or environment variable named NOPE",
        ),
        (
            "exec a\u{1}b",
            Some("a\u{1}b"),
            Some(6),
            "a word without control characters",
            "control character",
        ),
    ];
    for (line, token, column, expected, message) in table {
        let e = parse_line(12, line, &Aliases::isolated()).expect_err(line);
        assert_eq!(e.line, 12, "{line:?}");
        assert_eq!(e.token.as_deref(), token, "{line:?}: {e}");
        assert_eq!(e.column, column, "{line:?}: {e}");
        assert!(
            e.expected.contains(expected),
            "{line:?}: expected {:?}",
            e.expected
        );
        assert!(
            e.message.contains(message),
            "{line:?}: message {:?}",
            e.message
        );
        // The text names the line, the word and what was expected.
        let text = e.to_string();
        assert!(text.starts_with("line 12"), "{text}");
        if let Some(t) = token {
            assert!(text.contains(&format!("{t:?}")), "{text}");
        } else {
            assert!(text.contains("at the end of the line"), "{text}");
        }
        assert!(text.contains(&e.expected), "{text}");
        // As the crate's error: an invalid argument with the same text.
        let err = vss_core::Error::from(e.clone());
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(err.message(), text);
    }
}

#[test]
fn aliases_expand_from_the_script_then_the_environment() {
    let mut env = Aliases::with_environment([("BACKUP_DIR", "/srv/backup"), ("Mixed", "m")]);
    // Environment variables by exact name.
    assert_eq!(
        parse_line(1, "set metadata %BACKUP_DIR%/db.json", &env),
        Ok(Some(Command::SetMetadata("/srv/backup/db.json".into())))
    );
    assert_eq!(
        parse_line(1, "exec %Mixed%.sh", &env),
        Ok(Some(Command::Exec("m.sh".into())))
    );
    assert!(parse_line(1, "exec %MIXED%.sh", &env).is_err());
    // `%%` is a percent sign, inside quotes too; two aliases in one word.
    assert_eq!(
        parse_line(1, "exec \"%BACKUP_DIR% 100%%\"", &env),
        Ok(Some(Command::Exec("/srv/backup 100%".into())))
    );
    assert_eq!(
        parse_line(1, "exec %Mixed%%Mixed%", &env),
        Ok(Some(Command::Exec("mm".into())))
    );
    // `add alias` defines at once; a script alias shadows an environment variable, in any case.
    let def = parse_line(1, "add alias backup_dir /mnt", &env)
        .unwrap()
        .unwrap();
    env.apply(&def);
    assert_eq!(
        parse_line(2, "exec %BACKUP_DIR%/x", &env),
        Ok(Some(Command::Exec("/mnt/x".into())))
    );
    // An expanded value with spaces stays one word (a LUN name cannot hold spaces).
    let def = parse_line(3, "add alias two \"a b\"", &env)
        .unwrap()
        .unwrap();
    env.apply(&def);
    let e = parse_line(4, "add volume %two%", &env).unwrap_err();
    assert_eq!(e.token.as_deref(), Some("%two%"));
    assert!(e.message.contains("a b"), "{e}");
    // A value no word can hold is refused where it is used.
    let env2 = Aliases::with_environment([("Q", "a\"b"), ("NL", "a\nb")]);
    let e = parse_line(5, "exec %Q%", &env2).unwrap_err();
    assert_eq!(e.expected, "a word without double quotes");
    let e = parse_line(5, "exec %NL%", &env2).unwrap_err();
    assert_eq!(e.expected, "a word without control characters");
}

#[test]
fn create_defines_numbered_aliases_and_the_volumes_own() {
    let mut env = Aliases::isolated();
    for line in [
        "add volume db alias Data",
        "add volume logs",
        "add volume idx alias Index",
    ] {
        let c = parse_line(1, line, &env).unwrap().unwrap();
        env.apply(&c);
    }
    assert_eq!(env.pending_volumes(), 3);
    // The volume's alias waits for the shadow.
    assert!(parse_line(4, "revert %Data%", &env).is_err());
    let set = Uuid::new_v4();
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    // One id per volume, or nothing changes.
    assert_eq!(
        env.created(set, &ids[..2]).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(env.pending_volumes(), 3);
    env.created(set, &ids).unwrap();
    assert_eq!(env.pending_volumes(), 0);
    let expand = |env: &Aliases, word: &str| match parse_line(9, &format!("revert {word}"), env) {
        Ok(Some(Command::Revert(id))) => Ok(id),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e),
    };
    assert_eq!(expand(&env, "%VSS_SHADOW_1%"), Ok(ids[0]));
    assert_eq!(expand(&env, "%vss_shadow_2%"), Ok(ids[1]));
    assert_eq!(expand(&env, "%VSS_SHADOW_3%"), Ok(ids[2]));
    assert_eq!(expand(&env, "%data%"), Ok(ids[0]));
    assert_eq!(expand(&env, "%Index%"), Ok(ids[2]));
    assert_eq!(expand(&env, "%VSS_SHADOW_SET%"), Ok(set));
    assert!(expand(&env, "%VSS_SHADOW_4%").is_err());
    let names: Vec<&str> = env.defined().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "Data",
            "Index",
            "VSS_SHADOW_1",
            "VSS_SHADOW_2",
            "VSS_SHADOW_3",
            "VSS_SHADOW_SET"
        ]
    );

    // A second, smaller create: its numbers replace the first's, none of the first's remains;
    // the volume aliases of the first stay.
    let c = parse_line(1, "add volume db", &env).unwrap().unwrap();
    env.apply(&c);
    let (set2, id2) = (Uuid::new_v4(), Uuid::new_v4());
    env.created(set2, &[id2]).unwrap();
    assert_eq!(expand(&env, "%VSS_SHADOW_1%"), Ok(id2));
    assert_eq!(expand(&env, "%VSS_SHADOW_SET%"), Ok(set2));
    assert!(expand(&env, "%VSS_SHADOW_2%").is_err());
    assert_eq!(expand(&env, "%Data%"), Ok(ids[0]));

    // reset forgets the volumes added, and so their aliases.
    for line in ["add volume a alias A1", "reset", "add volume b"] {
        let c = parse_line(1, line, &env).unwrap().unwrap();
        env.apply(&c);
    }
    assert_eq!(env.pending_volumes(), 1);
    env.created(set2, &[id2]).unwrap();
    assert!(expand(&env, "%A1%").is_err());
}

#[test]
fn validate_reports_every_bad_line_and_follows_aliases() {
    let script = "\
# back up the database LUNs
set context persistent
set option transportable
add volume db-data alias data
add volume db-log
set backuptyp copy
create
expose %data% iqn.2024-01.com.example:backup
expose %VSS_SHADOW_2% iqn.2024-01.com.example:backup
list shadows set %VSS_SHADOW_SET%
revert %VSS_SHADOW_3%
delete shadows volume db data
exec %HOOK%
exit
this line never runs
";
    let env = Aliases::with_environment([("HOOK", "/bin/true")]);
    let v = validate(script, &env);
    assert!(!v.is_ok());
    assert_eq!(v.exit_code, ExitCode::Syntax);
    let bad: Vec<(usize, Option<&str>)> = v
        .errors
        .iter()
        .map(|e| (e.line, e.token.as_deref()))
        .collect();
    assert_eq!(
        bad,
        [
            (6, Some("backuptyp")),
            (11, Some("%VSS_SHADOW_3%")),
            (12, Some("data"))
        ]
    );
    for e in &v.errors {
        assert_eq!(e.code, ExitCode::Syntax);
        assert_eq!(e.kind, ScriptErrorKind::Syntax);
    }
    let lines: Vec<usize> = v.commands.iter().map(|c| c.line).collect();
    assert_eq!(lines, [2, 3, 4, 5, 7, 8, 9, 10, 13, 14]);
    // The stand-in ids: the set is 0, the shadows 1.. in the order added.
    assert_eq!(
        v.commands[5].command,
        Command::Expose {
            id: Aliases::placeholder_id(1),
            host: InitiatorId::parse("iqn.2024-01.com.example:backup").unwrap(),
        }
    );
    assert_eq!(
        v.commands[7].command,
        Command::ListShadows(ShadowSelector::Set(Aliases::placeholder_id(0)))
    );
    assert_eq!(
        Aliases::placeholder_id(2).to_string(),
        "00000000-0000-4000-8000-000000000002"
    );
    assert_eq!(v.commands[8].command, Command::Exec("/bin/true".into()));
    // The caller's environment is not changed.
    assert_eq!(env.defined().count(), 0);

    let text = v.render_text();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.starts_with("line 6, column 5: at \"backuptyp\": unknown word"),
        "{text}"
    );

    // The failed run a front end prints: one line per error, stopped at the first.
    let run = v.failed_run(script).unwrap();
    assert_eq!(run.exit_code, ExitCode::Syntax);
    assert_eq!(run.stopped_at, Some(6));
    assert_eq!(run.lines.len(), 3);
    assert_eq!(run.lines[0].command, "set backuptyp copy");
    assert_eq!(run.stopping_error().unwrap().line, 6);

    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["exit_code"], 5);
    assert_eq!(
        json["commands"][0],
        serde_json::json!({"line": 2, "command": "set context persistent"})
    );
    assert_eq!(
        json["errors"][0],
        serde_json::json!({
            "line": 6, "exit_code": 5, "kind": "syntax",
            "message": "unknown word \"backuptyp\"", "column": 5, "token": "backuptyp",
            "expected": "context, option, backuptype, metadata or verbose"
        })
    );

    // A good script: no errors, exit code 0, no failed run.
    let good = validate(
        "set context volatile\nadd volume a\ncreate\nrevert %VSS_SHADOW_1%\n",
        &Aliases::isolated(),
    );
    assert!(good.is_ok(), "{}", good.render_text());
    assert_eq!(good.exit_code, ExitCode::Ok);
    assert!(good.failed_run("").is_none());
}

/// The run result's JSON, as an executor will fill it, with the field names of vds-core's
/// DiskRAID run.
#[test]
fn a_run_serialises_with_stable_names() {
    let set = id();
    let run = ScriptRun {
        exit_code: ExitCode::CommandFailed,
        stopped_at: Some(3),
        lines: vec![
            LineResult {
                line: 1,
                command: "set context persistent".into(),
                outcome: Ok(Output::ContextSet {
                    context: Context::APP_ROLLBACK,
                }),
            },
            LineResult {
                line: 2,
                command: "create".into(),
                outcome: Ok(Output::Created {
                    set_id: set,
                    shadows: vec![],
                }),
            },
            LineResult {
                line: 3,
                command: "create".into(),
                outcome: Err(ScriptError::failed(
                    3,
                    &vss_core::Error::new(ErrorKind::SnapshotSetInProgress, "set x"),
                )),
            },
        ],
    };
    let json = serde_json::to_value(&run).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "exit_code": 4,
            "stopped_at": 3,
            "lines": [
                {"line": 1, "command": "set context persistent", "status": "ok",
                 "output": {"type": "context_set", "context": "APP_ROLLBACK"}},
                {"line": 2, "command": "create", "status": "ok",
                 "output": {"type": "created", "set_id": ID, "shadows": []}},
                {"line": 3, "command": "create", "status": "error",
                 "error": {"line": 3, "exit_code": 4, "kind": "snapshot_set_in_progress",
                           "message": "snapshot set in progress: set x",
                           "column": null, "token": null, "expected": null}}
            ]
        })
    );
    assert_eq!(run.stopping_error().unwrap().code, ExitCode::CommandFailed);
    let text = run.render_text();
    assert!(text.contains("Context set to APP_ROLLBACK."), "{text}");
    assert!(
        text.contains(&format!("Alias VSS_SHADOW_SET for shadow set ID {{{ID}}}")),
        "{text}"
    );
    assert!(
        text.ends_with("line 3: snapshot set in progress: set x\n"),
        "{text}"
    );
    let e = ScriptError::exec_failed(9, "copy.sh exited with status 3");
    assert_eq!((e.code.code(), e.kind.as_str()), (6, "exec_failed"));
    let f = ScriptError::file(2, &vss_core::Error::new(ErrorKind::Io, "cannot read x"));
    assert_eq!((f.code.code(), f.kind.as_str()), (3, "io"));
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn lun() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,64}"
}

fn alias() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_]{0,12}"
}

/// Text a word can hold: anything but a double quote or a control character, `%` and `#` and
/// white space included.
fn text(min: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[^\"\\p{{Cc}}]{{{min},24}}")).unwrap()
}

fn host() -> impl Strategy<Value = InitiatorId> {
    prop_oneof![
        (1u64..).prop_map(InitiatorId::Port),
        any::<u64>().prop_map(InitiatorId::Eui),
        "iqn\\.20[0-9]{2}-(0[1-9]|1[0-2])\\.[a-z]{1,8}\\.[a-z]{1,8}(:[a-z0-9.-]{1,10})?"
            .prop_map(|s| InitiatorId::parse(&s).unwrap()),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    let context = prop_oneof![
        Just(ContextWord::ClientAccessible),
        any::<bool>().prop_map(|nowriters| ContextWord::Persistent { nowriters }),
        any::<bool>().prop_map(|nowriters| ContextWord::Volatile { nowriters }),
    ];
    let options = (0u8..3, any::<bool>(), 0u8..5).prop_filter_map(
        "at least one option",
        |(kind, transportable, recovery)| {
            let mut a = [
                Attributes::empty(),
                Attributes::DIFFERENTIAL,
                Attributes::PLEX,
            ][kind as usize];
            a.set(Attributes::TRANSPORTABLE, transportable);
            a |= [
                Attributes::empty(),
                Attributes::ROLLBACK_RECOVERY,
                Attributes::TXF_RECOVERY,
                Attributes::ROLLBACK_RECOVERY | Attributes::TXF_RECOVERY,
                Attributes::NO_AUTORECOVERY,
            ][recovery as usize];
            (!a.is_empty()).then_some(a)
        },
    );
    let backup = prop::sample::select(vec![
        BackupType::Copy,
        BackupType::Full,
        BackupType::Incremental,
        BackupType::Differential,
        BackupType::Log,
    ]);
    let provider = prop::option::of(prop::sample::select(vec![
        ProviderType::Software,
        ProviderType::Hardware,
    ]));
    let delete = prop_oneof![
        Just(DeleteTarget::All),
        lun().prop_map(DeleteTarget::Volume),
        lun().prop_map(DeleteTarget::Oldest),
        uuid().prop_map(DeleteTarget::Set),
        uuid().prop_map(DeleteTarget::Id),
        host().prop_map(DeleteTarget::Exposed),
    ];
    let listing = prop::sample::select(vec![
        WriterListing::Summary,
        WriterListing::Metadata,
        WriterListing::Detailed,
        WriterListing::Status,
    ]);
    prop_oneof![
        context.prop_map(Command::SetContext),
        options.prop_map(Command::SetOption),
        backup.prop_map(Command::SetBackupType),
        text(1).prop_map(Command::SetMetadata),
        any::<bool>().prop_map(Command::SetVerbose),
        text(1).prop_map(Command::LoadMetadata),
        (any::<bool>(), text(1)).prop_filter_map("a name", |(v, name)| {
            // A name that is only white space reads back as written, in quotes; an empty one
            // is no name.
            (!name.is_empty()).then_some(Command::Writer {
                action: if v {
                    WriterAction::Verify
                } else {
                    WriterAction::Exclude
                },
                name,
            })
        }),
        (lun(), provider, prop::option::of(alias())).prop_map(|(lun, provider, alias)| {
            Command::AddVolume {
                lun,
                provider,
                alias,
            }
        }),
        (alias(), text(0)).prop_map(|(name, value)| Command::AddAlias { name, value }),
        prop::sample::select(vec![
            Command::BeginBackup,
            Command::EndBackup,
            Command::BeginRestore,
            Command::EndRestore,
            Command::SimulateRestore,
            Command::Create,
            Command::ListProviders,
            Command::Import,
            Command::Reset,
            Command::Exit,
        ]),
        prop_oneof![
            Just(ShadowSelector::All),
            uuid().prop_map(ShadowSelector::Set),
            uuid().prop_map(ShadowSelector::Id)
        ]
        .prop_map(Command::ListShadows),
        listing.prop_map(Command::ListWriters),
        delete.prop_map(Command::DeleteShadows),
        (uuid(), host()).prop_map(|(id, host)| Command::Expose { id, host }),
        uuid().prop_map(Command::Unexpose),
        uuid().prop_map(Command::Mask),
        (any::<bool>(), uuid()).prop_map(|(writable, set)| Command::Break { writable, set }),
        uuid().prop_map(Command::Revert),
        (uuid(), prop::option::of(lun())).prop_map(|(id, target)| Command::Resync { id, target }),
        text(1).prop_map(Command::Exec),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Every command's canonical text parses back to it, in any alias environment, and a
    /// script of canonical lines validates to the same commands on the same lines.
    #[test]
    fn canonical_text_parses_back(cmds in prop::collection::vec(command(), 1..12)) {
        let env = Aliases::with_environment([("HOME", "/root")]);
        for c in &cmds {
            let text = c.to_string();
            prop_assert_eq!(parse_line(1, &text, &Aliases::isolated()), Ok(Some(c.clone())), "{}", text);
            prop_assert_eq!(parse_line(1, &text, &env), Ok(Some(c.clone())), "{}", text);
        }
        let upto = cmds.iter().position(|c| *c == Command::Exit).map_or(cmds.len(), |i| i + 1);
        let script: String = cmds.iter().map(|c| format!("{c}\n# a comment\n")).collect();
        let v = validate(&script, &Aliases::isolated());
        prop_assert!(v.is_ok(), "{}", v.render_text());
        let got: Vec<(usize, Command)> = v.commands.into_iter().map(|p| (p.line, p.command)).collect();
        let want: Vec<(usize, Command)> = cmds[..upto].iter().cloned().enumerate().map(|(i, c)| (2 * i + 1, c)).collect();
        prop_assert_eq!(got, want);
    }

    /// Keywords are read in any case.
    #[test]
    fn keywords_in_any_case(c in command(), upper in any::<bool>()) {
        let text = c.to_string();
        // Only the keywords change: values keep their case, as the canonical text has them
        // quoted or positioned.
        let words: Vec<&str> = text.split(' ').collect();
        let keywords = [
            "set", "context", "clientaccessible", "persistent", "nowriters", "volatile", "option",
            "backuptype", "metadata", "verbose", "on", "off", "load", "create", "list", "shadows",
            "writers", "providers", "all", "delete", "begin", "end", "backup", "restore",
        ];
        let changed: Vec<String> = words.iter().enumerate().map(|(i, w)| {
            if i < 2 && keywords.contains(w) {
                if upper { w.to_uppercase() } else { format!("{}{}", w[..1].to_uppercase(), &w[1..]) }
            } else {
                w.to_string()
            }
        }).collect();
        let changed = changed.join(" ");
        prop_assert_eq!(parse_line(1, &changed, &Aliases::isolated()), Ok(Some(c)), "{}", changed);
    }
}
