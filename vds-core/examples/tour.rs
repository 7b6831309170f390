//! A runnable tour of the engine and the array, telling the story umbra serves: snapshot a LUN with
//! its writes frozen, keep the snapshot LUN masked away from the server, and when the LUN is
//! damaged, mask it off and unmask the snapshot LUN in its place: the server is back at once,
//! nothing copied, the damaged copy kept for diagnosis.
//!
//! Run: `cargo run --release -p vds-core --example tour`

use std::time::{Duration, Instant};

use cow_engine::{SnapshotOptions, Volume, VolumeConfig};
use vds_core::script::Session;
use vds_core::{Access, Array, InitiatorId, LunHosts, MaskSpec, Notification};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("== the engine: a volume with O(1) snapshots");
    let vol = Volume::create_mem(1 << 30, VolumeConfig::default())?;
    vol.write_at(b"monday's data", 0)?;
    let t = Instant::now();
    let monday = vol.create_snapshot(SnapshotOptions::default())?;
    println!("snapshot of a 1 GiB volume in {:?}", t.elapsed());
    vol.write_at(b"tuesday's data", 0)?;
    let mut buf = [0u8; 13];
    vol.snapshot(monday)?.read_at(&mut buf, 0)?;
    println!(
        "the snapshot still reads {:?}",
        String::from_utf8_lossy(&buf)
    );

    let pool = std::env::temp_dir().join(format!("umbra-tour-pool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&pool);
    println!("\n== the array: a pool of LUNs in {}", pool.display());
    let array = Array::open(&pool)?;
    let events = array.subscribe_channel();
    let server = InitiatorId::parse("iqn.1991-05.com.microsoft:dc01.contoso.com")?;
    let admin = InitiatorId::parse("iqn.1991-05.com.microsoft:forensics")?;
    array.create_lun(
        "ad-db",
        256 << 20,
        &MaskSpec::host(server.clone(), Access::ReadWrite),
    )?;
    array.set_host_number("ad-db", &server, 3)?;
    array.write_at("ad-db", &server, b"directory: 1,204 users", 4096)?;
    println!("LUN ad-db is visible to the domain controller only, at LUN 3");

    println!("\n== back up: freeze writes, snapshot the LUN, thaw");
    let frozen = array.freeze_luns(&["ad-db"], Duration::from_secs(10))?;
    array.snapshot_lun("ad-db", "ad-db-backup")?;
    println!("thaw: {:?}", frozen.thaw()?);
    println!(
        "snapshot LUN ad-db-backup is masked to: {:?} (the server never sees it)",
        array.get_mask("ad-db-backup")?
    );

    println!("\n== disaster: the directory is damaged");
    array.write_at("ad-db", &server, b"directory: CORRUPTED!!", 4096)?;

    println!("\n== fast recovery: mask off the damaged LUN, unmask the snapshot in its place");
    let t = Instant::now();
    array.swap_lun("ad-db", "ad-db-backup")?;
    println!("swapped in {:?}, nothing copied", t.elapsed());
    for (lun, grant) in array.host_view(&server) {
        println!(
            "the server now sees {lun} at LUN {} ({:?})",
            grant.number, grant.access
        );
    }
    let mut data = [0u8; 22];
    array.read_at("ad-db-backup", &server, &mut data, 4096)?;
    println!("and reads {:?}", String::from_utf8_lossy(&data));

    println!("\n== the damaged copy is kept for diagnosis");
    array.set_mask("ad-db", &MaskSpec::host(admin.clone(), Access::ReadOnly))?;
    array.read_at("ad-db", &admin, &mut data, 4096)?;
    println!(
        "forensics host reads {:?} (read-only)",
        String::from_utf8_lossy(&data)
    );
    if let LunHosts::Hosts(h) = array.lun_hosts("ad-db")? {
        println!("ad-db is now unmasked to {} host(s)", h.len());
    }
    let changed = array.changed_blocks("ad-db-backup", "ad-db")?;
    println!(
        "blocks of {} bytes changed since the backup (the maps name the candidates; only those are compared): {changed:?}",
        array.block_size()
    );

    println!("\n== split the snapshot LUN from its source, with a DiskRAID-style script");
    let mut out = String::new();
    let (code, _) =
        Session::new(&array).run("select lun ad-db-backup\nsplit lun\nlist luns\n", &mut out);
    print!("{out}");
    println!("script exit code {}", code as i32);

    let seen: Vec<Notification> = events
        .try_iter()
        .filter_map(vds_core::Delivery::into_event)
        .collect();
    println!(
        "\n{} notifications were sent to subscribers (hosts rescan on these)",
        seen.len()
    );
    drop(array);
    std::fs::remove_dir_all(&pool)?;
    Ok(())
}
