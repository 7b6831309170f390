//! `umbra demo fast-recovery`: the seed's story, end to end, on real files.
//!
//! A directory-service database on a LUN the server reaches at its host LUN number, a writer
//! appending to it; an application-consistent, transportable shadow through the coordinator and
//! the hardware provider; damage; detection by the database's checksums; fast recovery (the
//! shadow takes the damaged LUN's place, nothing copied); the database reopened by the server's
//! initiator and LUN number; the damaged LUN kept for diagnosis. Every step is checked, and a
//! failed check exits with code 10. The recovery is vss-core's (`HardwareProvider::recover`);
//! the database is demo code (`db`, `writer`).

mod db;
mod writer;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::json;
use vds_core::{Array, ErrorKind, InitiatorId, LunStats, MaskSpec};
use vss_core::{Attributes, BackupType, Context, Coordinator, HardwareProvider, Provider};

use crate::error::{Error, Result};
use crate::exit::Status;
use crate::output::{self, fields, Report};
use crate::Ctx;

use db::{Db, RECORD};
use writer::DbWriter;

/// `umbra demo ...`.
#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// The seed's story: a shadow of a live database's LUN, damage, and fast recovery by LUN
    /// masking (nothing copied), every step checked (exit code 10 if a check fails). The pool
    /// is a temporary directory, removed at the end, unless --pool names one (a missing or empty
    /// directory), which is kept for inspection.
    FastRecovery(FastRecoveryArgs),
}

/// `umbra demo fast-recovery`'s options.
#[derive(Debug, Args)]
pub struct FastRecoveryArgs {
    /// The database LUN's size (64 is 64 MiB; 1GB, 512MiB, ...): at least 1 MiB, a multiple
    /// of 4 KiB. The recovery moves no data whatever the size.
    #[arg(long, default_value = "64MiB", value_name = "SIZE")]
    pub size: String,
    /// Also show the copying alternative: the shadow resynced onto a new LUN, block by block
    /// (progress on stderr).
    #[arg(long)]
    pub resync: bool,
}

/// The server's initiator.
pub const SERVER: &str = "iqn.1991-05.com.microsoft:server";
/// The host LUN number the server sees the database LUN at.
pub const NUMBER: u32 = 3;
/// The database LUN.
pub const LUN: &str = "ntds";
/// The LUN the copying alternative (`--resync`) writes.
pub const COPY: &str = "ntds-copy";
/// The database's writer.
pub const WRITER: &str = "directory";
/// The array's block size (the pool's default).
const BS: u64 = 4096;
/// The smallest LUN.
const MIN_SIZE: u64 = 1 << 20;
/// The log's room is the LUN's first bytes, at most these.
const MAX_LOG: u64 = 16 << 20;
/// Records acknowledged before the shadow is taken.
const MIN_RECORDS: u64 = 2048;
/// Records acknowledged after the thaw, showing the writer resumed.
const RESUMED_RECORDS: u64 = 256;
/// Blocks the damage overwrites.
const DAMAGE_BLOCKS: u64 = 4;
/// Records written after the recovery.
const NEW_RECORDS: u64 = 100;

/// One verification of the run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// Its stable name (`records_verified`, ...).
    pub name: &'static str,
    /// Whether it held.
    pub ok: bool,
    /// What was seen.
    pub detail: String,
}

impl Check {
    fn new(name: &'static str, ok: bool, detail: impl Into<String>) -> Self {
        Check {
            name,
            ok,
            detail: detail.into(),
        }
    }
}

/// The run's verdict: `None` when every check held, else the verification failure (exit code
/// 10) naming each check that failed.
pub fn verdict(checks: &[Check]) -> Option<Error> {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{} ({})", c.name, c.detail))
        .collect();
    if failed.is_empty() {
        return None;
    }
    Some(Error {
        kind: "verification_failed",
        status: Status::VerificationFailed,
        message: format!("verification failed: {}", failed.join("; ")),
    })
}

/// A vss-core error (or a failed backup step) as the command's.
fn vss(e: impl Into<vss_core::Error>) -> Error {
    Error::from(e.into())
}

/// Milliseconds, for the timeline.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Deterministic garbage (a bad update's bytes): xorshift64, not the tests' SplitMix64
/// (`umbra_test_support::Rng`), which production code does not depend on; any bytes serve.
fn garbage(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The blocks holding bytes `start..end`.
fn blocks_of(start: u64, end: u64) -> impl Iterator<Item = u64> {
    let first = start / BS;
    let last = if end > start { end.div_ceil(BS) } else { first };
    first..last
}

/// Bytes and write operations issued to LUNs `luns`' origins and diff areas so far.
fn written(array: &Array, luns: &[&str]) -> Result<(u64, u64)> {
    let mut total = (0, 0);
    for l in luns {
        let s: LunStats = array.lun_stats(l)?;
        total.0 += s.origin_write_bytes + s.diff_write_bytes;
        total.1 += s.origin_writes + s.diff_writes;
    }
    Ok(total)
}

/// Runs `umbra demo ...`.
pub fn run(cmd: DemoCommand, ctx: &Ctx) -> Result<Report> {
    let DemoCommand::FastRecovery(args) = cmd;
    let size = crate::parse::size(&args.size)?;
    if size < MIN_SIZE || !size.is_multiple_of(BS) {
        return Err(Error::of_kind(
            ErrorKind::InvalidArgument,
            format!(
                "--size {:?} is {size} bytes: the demo's LUN needs at least 1 MiB, a multiple \
                 of 4 KiB",
                args.size
            ),
        ));
    }
    let (dir, temp) = if ctx.pool_given {
        (ctx.pool.clone(), None)
    } else {
        let t = tempfile::Builder::new()
            .prefix("umbra-demo-")
            .tempdir()
            .map_err(|e| {
                Error::of_kind(ErrorKind::Io, format!("cannot make a temporary pool: {e}"))
            })?;
        (t.path().join("pool"), Some(t))
    };
    let shown = output::progress_shown(ctx.json);
    let story = {
        let array = ctx_open(&dir)?;
        if let Some(l) = array.luns().first() {
            return Err(Error::of_kind(
                ErrorKind::AlreadyExists,
                format!(
                    "pool {} already holds LUNs (LUN {:?}): the demo needs a fresh pool, a \
                     missing or empty directory",
                    dir.display(),
                    l.name
                ),
            ));
        }
        fast_recovery(&array, size, args.resync, shown)?
    };
    // The array is closed: a temporary pool goes now.
    let kept = temp.is_none();
    drop(temp);
    Ok(story.report(&dir, kept))
}

/// Opens (creating) the pool at `dir`.
fn ctx_open(dir: &std::path::Path) -> Result<Array> {
    Ok(Array::open(dir)?)
}

/// What the run saw.
struct Story {
    size: u64,
    set_id: uuid::Uuid,
    shadow_id: uuid::Uuid,
    shadow_lun: String,
    acked_at_freeze: u64,
    appended: u64,
    freeze_window: Option<Duration>,
    shadow_time: Duration,
    damage: (u64, u64),
    bad_records: usize,
    detection_time: Duration,
    recovery_time: Duration,
    bytes_moved: u64,
    writes: u64,
    verified: u64,
    changed_blocks: Vec<u64>,
    resync: Option<Resync>,
    checks: Vec<Check>,
}

/// The copying alternative's figures.
struct Resync {
    bytes: u64,
    time: Duration,
    verified: u64,
}

/// The story, step by step, on `array` (a fresh pool).
fn fast_recovery(array: &Array, size: u64, resync: bool, shown: bool) -> Result<Story> {
    let mut checks = Vec::new();
    let server = InitiatorId::parse(SERVER)?;
    let capacity = size.min(MAX_LOG) / RECORD;

    // 1. The database's LUN, the server's at LUN number NUMBER, and its writer appending.
    array.create_lun(LUN, size, &MaskSpec::parse(SERVER)?)?;
    array.set_host_number(LUN, &server, NUMBER)?;
    let db = Db::new(array.open_lun(&server, NUMBER)?, capacity);
    let writer = DbWriter::start(WRITER, LUN, db);
    writer.wait_acked(MIN_RECORDS);

    // 2. A transportable, application-consistent shadow through the coordinator.
    let hw = Arc::new(HardwareProvider::new(array.clone()));
    let coordinator = Coordinator::new([Arc::clone(&hw) as Arc<dyn Provider>]);
    coordinator
        .add_writer(Arc::clone(&writer) as _)
        .map_err(vss)?;
    let context = Context::APP_ROLLBACK | Attributes::TRANSPORTABLE;
    let started = Instant::now();
    let mut gathered = coordinator
        .begin_backup(context, BackupType::Copy)
        .gather()
        .map_err(vss)?;
    gathered.select(WRITER, "ntds").map_err(vss)?;
    let mut set = gathered.start_set().map_err(vss)?;
    let set_id = set.set_id();
    let shadow_id = set.add_volume(LUN).map_err(vss)?;
    let made = set.prepare().map_err(vss)?.snapshot().map_err(vss)?;
    let props = made.properties().to_vec();
    let ended = made.complete().map_err(vss)?.shutdown();
    let shadow_time = started.elapsed();
    let status = ended.writer_status();
    let shadow = props
        .iter()
        .find(|p| p.shadow_id == shadow_id)
        .ok_or_else(|| Error::of_kind(ErrorKind::Internal, "the set lacks its shadow"))?;
    let shadow_lun = shadow.shadow.name.clone();
    let resumed = writer.wait_past_freeze(RESUMED_RECORDS);
    let tally = writer.stop();
    let acked_at_freeze = tally.acked_at_freeze.unwrap_or(0);
    let w = status.iter().find(|s| s.writer == WRITER);
    checks.push(Check::new(
        "writer_held_at_freeze",
        w.is_some_and(|s| s.taking_part && s.failure.is_none())
            && tally.freeze_window.is_some()
            && tally.error.is_none()
            && acked_at_freeze >= MIN_RECORDS,
        format!(
            "writer {WRITER}: {}; {acked_at_freeze} records acknowledged at the freeze{}",
            w.map_or("not in the set".to_string(), |s| format!(
                "{}, {}",
                s.state,
                s.failure
                    .as_ref()
                    .map_or("no failure".to_string(), |f| f.to_string())
            )),
            tally
                .error
                .as_ref()
                .map_or(String::new(), |e| format!("; database error: {e}"))
        ),
    ));
    checks.push(Check::new(
        "writer_resumed_after_thaw",
        resumed >= acked_at_freeze + RESUMED_RECORDS,
        format!(
            "{resumed} records acknowledged after the thaw (from {acked_at_freeze}){}",
            if tally.full {
                "; the log filled up"
            } else {
                ""
            }
        ),
    ));
    let attrs = shadow.attributes;
    checks.push(Check::new(
        "shadow_transportable",
        attrs.contains(
            Attributes::TRANSPORTABLE | Attributes::HARDWARE_ASSISTED | Attributes::PERSISTENT,
        ),
        format!("shadow {shadow_id} on LUN {shadow_lun}, attributes {attrs}"),
    ));
    let seen: Vec<String> = array
        .host_view(&server)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mask = array.get_mask(&shadow_lun)?;
    checks.push(Check::new(
        "shadow_masked_from_server",
        !seen.contains(&shadow_lun) && mask.is_empty(),
        format!(
            "the server sees LUNs [{}]; the shadow's mask is {}",
            seen.join(", "),
            crate::output::mask(&mask)
        ),
    ));

    // 3. Damage: a bad update overwrites blocks in the middle of the acknowledged records.
    let server_lun = array.open_lun(&server, NUMBER)?;
    let full_blocks = acked_at_freeze * RECORD / BS;
    if full_blocks < 2 * DAMAGE_BLOCKS {
        return Err(verdict(&checks).unwrap_or_else(|| {
            Error::of_kind(
                ErrorKind::Internal,
                format!("only {acked_at_freeze} records before the freeze"),
            )
        }));
    }
    let first = full_blocks / 2 - DAMAGE_BLOCKS / 2;
    let damage = (first * BS, DAMAGE_BLOCKS * BS);
    let junk = garbage(damage.1 as usize);
    server_lun.write_at(&junk, damage.0)?;
    server_lun.flush()?;

    // 4. Detection: the database's checksums fail.
    let started = Instant::now();
    let scan = db::scan(capacity, |buf, off| server_lun.read_at(buf, off))?;
    let detection_time = started.elapsed();
    let damaged_records: Vec<u64> = (damage.0 / RECORD..(damage.0 + damage.1) / RECORD).collect();
    checks.push(Check::new(
        "damage_detected",
        !scan.clean() && scan.bad == damaged_records,
        format!(
            "{} records fail their checksums (records {}..{})",
            scan.bad.len(),
            scan.bad.first().copied().unwrap_or(0),
            scan.bad.last().map_or(0, |l| l + 1)
        ),
    ));

    // The copying alternative, while the shadow is one: every block onto a new LUN.
    let resync = if resync {
        array.create_lun(COPY, size, &MaskSpec::None)?;
        let before = written(array, &[COPY])?;
        let started = Instant::now();
        let op = hw.resync(shadow_id, Some(COPY)).map_err(vss)?;
        output::wait(op, &format!("resync {COPY}"), shown)?;
        let time = started.elapsed();
        let bytes = written(array, &[COPY])?.0 - before.0;
        let copy = db::scan(capacity, |buf, off| array.admin_read_at(COPY, buf, off))?;
        checks.push(Check::new(
            "resync_copy_verified",
            copy.clean() && copy.valid == acked_at_freeze && bytes > 0,
            format!(
                "{} records check out on {COPY}; {bytes} bytes copied",
                copy.valid
            ),
        ));
        Some(Resync {
            bytes,
            time,
            verified: copy.valid,
        })
    } else {
        None
    };

    // Fast recovery: the shadow takes the damaged LUN's place; nothing is copied.
    let before = written(array, &[LUN, &shadow_lun])?;
    let started = Instant::now();
    let report = hw.recover(shadow_id, None).map_err(vss)?;
    let recovery_time = started.elapsed();
    let after = written(array, &[LUN, &shadow_lun])?;
    checks.push(Check::new(
        "no_data_moved",
        report.bytes_moved == 0
            && report.writes == 0
            && after == before
            && report.recovered == shadow_lun
            && report.damaged == LUN,
        format!(
            "{} bytes, {} writes moved (the LUNs' statistics: {} bytes, {} writes)",
            report.bytes_moved,
            report.writes,
            after.0 - before.0,
            after.1 - before.1
        ),
    ));
    let mut probe = [0u8; RECORD as usize];
    let old = server_lun.read_at(&mut probe, 0);
    drop(server_lun);
    let reopened = array.open_lun(&server, NUMBER)?;
    let at_number: Vec<String> = array
        .host_view(&server)
        .into_iter()
        .filter(|(_, g)| g.number == NUMBER)
        .map(|(n, _)| n)
        .collect();
    checks.push(Check::new(
        "server_reaches_recovered_lun",
        at_number == [report.recovered.clone()]
            && old
                .as_ref()
                .is_err_and(|e| e.kind() == ErrorKind::AccessDenied),
        format!(
            "LUN number {NUMBER} of {SERVER} is [{}]; the handle opened before: {}",
            at_number.join(", "),
            match &old {
                Ok(()) => "still reads".to_string(),
                Err(e) => e.to_string(),
            }
        ),
    ));
    let db = Db::new(reopened, capacity);
    let scan = db.scan()?;
    let verified = scan.valid;
    checks.push(Check::new(
        "records_verified",
        scan.clean()
            && scan.slots == acked_at_freeze
            && verified == acked_at_freeze
            && verified > 0,
        format!(
            "{verified} of the {acked_at_freeze} records acknowledged before the freeze check \
             out; {} damaged, {} in the log",
            scan.bad.len(),
            scan.slots
        ),
    ));

    // 5. The damaged LUN, kept for diagnosis: masked to no one, its damage in place.
    let kept_mask = array.get_mask(LUN)?;
    let mut kept = vec![0u8; damage.1 as usize];
    array.admin_read_at(LUN, &mut kept, damage.0)?;
    checks.push(Check::new(
        "damaged_lun_kept",
        kept_mask.is_empty() && kept == junk,
        format!(
            "LUN {LUN} masked to {}; its damaged bytes {}",
            output::mask(&kept_mask),
            if kept == junk {
                "read back as written"
            } else {
                "differ from the damage"
            }
        ),
    ));
    let changed_blocks = array.changed_blocks(&report.recovered, LUN)?;
    let expected: BTreeSet<u64> = blocks_of(damage.0, damage.0 + damage.1)
        .chain(blocks_of(acked_at_freeze * RECORD, tally.appended * RECORD))
        .collect();
    checks.push(Check::new(
        "changed_blocks_compared",
        changed_blocks.iter().copied().collect::<BTreeSet<_>>() == expected,
        format!(
            "{} blocks differ between {LUN} and {}: the {DAMAGE_BLOCKS} damaged and the {} the \
             writer wrote after the freeze (expected {})",
            changed_blocks.len(),
            report.recovered,
            expected.len() as u64 - DAMAGE_BLOCKS,
            expected.len()
        ),
    ));

    // The recovered database accepts new writes.
    for seq in acked_at_freeze..acked_at_freeze + NEW_RECORDS {
        db.append(seq)?;
    }
    db.flush()?;
    let scan = db.scan()?;
    checks.push(Check::new(
        "accepts_new_writes",
        scan.clean() && scan.valid == acked_at_freeze + NEW_RECORDS,
        format!("{NEW_RECORDS} records appended; {} check out", scan.valid),
    ));

    Ok(Story {
        size,
        set_id,
        shadow_id,
        shadow_lun,
        acked_at_freeze,
        appended: tally.appended,
        freeze_window: tally.freeze_window,
        shadow_time,
        damage,
        bad_records: damaged_records.len(),
        detection_time,
        recovery_time,
        bytes_moved: report.bytes_moved,
        writes: report.writes,
        verified,
        changed_blocks,
        resync,
        checks,
    })
}

impl Story {
    /// The report: the story and timeline, or one JSON document; failing with exit code 10 if
    /// a check did not hold.
    fn report(self, pool: &std::path::Path, kept: bool) -> Report {
        let freeze_ms = self.freeze_window.map(ms);
        let mut text = String::new();
        text.push_str(&format!(
            "umbra demo fast-recovery: a {} LUN {LUN}, seen by {SERVER} at LUN number {NUMBER}.\n",
            output::size(self.size)
        ));
        text.push_str(&format!(
            "1. The directory database's writer appended records; {} were acknowledged when it \
             froze.\n",
            self.acked_at_freeze
        ));
        text.push_str(&format!(
            "2. Shadow {} (set {}) on LUN {}, transportable, masked from the server; the writer \
             resumed ({} records in all).\n",
            self.shadow_id, self.set_id, self.shadow_lun, self.appended
        ));
        text.push_str(&format!(
            "3. Damage: {} bytes of garbage at offset {}.\n",
            self.damage.1, self.damage.0
        ));
        text.push_str(&format!(
            "4. Detected: {} records fail their checksums. Fast recovery: {} is now at the \
             server's LUN number {NUMBER}; {} records verified, new writes accepted.\n",
            self.bad_records, self.shadow_lun, self.verified
        ));
        text.push_str(&format!(
            "5. LUN {LUN} kept, masked to no one: {} blocks differ from the recovered LUN.\n",
            self.changed_blocks.len()
        ));
        if let Some(r) = &self.resync {
            text.push_str(&format!(
                "   The copying alternative: the shadow resynced onto {COPY}, {} written, {} \
                 records verified.\n",
                output::size(r.bytes),
                r.verified
            ));
        }
        text.push_str("\nTimeline:\n");
        let mut lines = vec![
            (
                "freeze window",
                freeze_ms.map_or("-".to_string(), |m| format!("{m:.1} ms")),
            ),
            ("shadow", format!("{:.1} ms", ms(self.shadow_time))),
            ("detection", format!("{:.1} ms", ms(self.detection_time))),
            ("recovery", format!("{:.1} ms", ms(self.recovery_time))),
            (
                "bytes moved",
                format!("{} ({} writes)", self.bytes_moved, self.writes),
            ),
            ("records verified", self.verified.to_string()),
        ];
        if let Some(r) = &self.resync {
            lines.push((
                "resync (copying)",
                format!("{:.1} ms, {} bytes written", ms(r.time), r.bytes),
            ));
        }
        text.push_str(&fields(&lines));
        text.push_str("\nChecks:\n");
        for c in &self.checks {
            text.push_str(&format!(
                "  [{}] {}: {}\n",
                if c.ok { "ok" } else { "FAILED" },
                c.name,
                c.detail
            ));
        }
        text.push_str(&if kept {
            format!(
                "\nThe pool is kept at {} (umbra --pool {} lun list).\n",
                pool.display(),
                pool.display()
            )
        } else {
            "\nThe temporary pool was removed (--pool DIR keeps one).\n".to_string()
        });
        let failure = verdict(&self.checks);
        let json = json!({
            "pool": { "path": pool, "kept": kept },
            "lun": LUN,
            "size": self.size,
            "server": SERVER,
            "number": NUMBER,
            "writer": WRITER,
            "set_id": self.set_id,
            "shadow_id": self.shadow_id,
            "recovered": self.shadow_lun,
            "damage": { "offset": self.damage.0, "length": self.damage.1,
                        "records": self.bad_records },
            "timeline": {
                "freeze_window_ms": freeze_ms,
                "shadow_ms": ms(self.shadow_time),
                "detection_ms": ms(self.detection_time),
                "recovery_ms": ms(self.recovery_time),
                "bytes_moved": self.bytes_moved,
                "writes": self.writes,
                "records_acknowledged_before_freeze": self.acked_at_freeze,
                "records_written": self.appended,
                "records_verified": self.verified,
            },
            "changed_blocks": self.changed_blocks,
            "resync": self.resync.as_ref().map(|r| json!({
                "target": COPY, "ms": ms(r.time), "bytes_written": r.bytes,
                "records_verified": r.verified,
            })),
            "checks": self.checks,
            "ok": failure.is_none(),
        });
        Report {
            text,
            json,
            failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_holding_is_no_failure() {
        let checks = [Check::new("a", true, "fine"), Check::new("b", true, "fine")];
        assert_eq!(verdict(&checks), None);
    }

    #[test]
    fn a_failed_check_exits_10_naming_it() {
        let checks = [
            Check::new("records_verified", true, "all there"),
            Check::new("no_data_moved", false, "4096 bytes, 1 writes moved"),
        ];
        let e = verdict(&checks).expect("a failure");
        assert_eq!(e.status.code(), 10);
        assert_eq!(e.kind, "verification_failed");
        assert!(
            e.message.contains("no_data_moved (4096 bytes"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("records_verified"), "{}", e.message);
    }

    /// The report of a run with a failed check carries the failure (the process exits 10
    /// after printing it) and says so in both forms.
    #[test]
    fn a_run_with_a_failed_check_reports_it_and_fails() {
        let story = Story {
            size: 4 << 20,
            set_id: uuid::Uuid::nil(),
            shadow_id: uuid::Uuid::nil(),
            shadow_lun: "ntds.shadow-00000000".into(),
            acked_at_freeze: 2048,
            appended: 2304,
            freeze_window: Some(Duration::from_millis(5)),
            shadow_time: Duration::from_millis(9),
            damage: (57344, 16384),
            bad_records: 256,
            detection_time: Duration::from_millis(1),
            recovery_time: Duration::from_millis(2),
            bytes_moved: 0,
            writes: 0,
            verified: 2047,
            changed_blocks: vec![14, 15, 16, 17, 32],
            resync: None,
            checks: vec![
                Check::new("no_data_moved", true, "0 bytes"),
                Check::new("records_verified", false, "2047 of the 2048 records"),
            ],
        };
        let r = story.report(std::path::Path::new("/tmp/p"), true);
        let f = r.failure.expect("a failure");
        assert_eq!(f.status.code(), 10);
        assert!(f.message.contains("records_verified"), "{}", f.message);
        assert_eq!(r.json["ok"], false);
        assert_eq!(r.json["checks"][1]["ok"], false);
        assert!(r
            .text
            .contains("  [FAILED] records_verified: 2047 of the 2048 records\n"));
    }

    #[test]
    fn blocks_of_a_range_cover_it() {
        assert_eq!(blocks_of(0, 4096).collect::<Vec<_>>(), [0]);
        assert_eq!(blocks_of(4000, 4200).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(blocks_of(8192, 8192).count(), 0);
    }
}
