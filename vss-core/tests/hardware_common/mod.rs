//! What the hardware provider's tests share: host identities, requests, a whole set made
//! through the provider's sequence, block patterns.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use uuid::Uuid;
use vds_core::{Array, InitiatorId, LunHandle, MaskSpec};
use vss_core::{Attributes, Context, Provider, ShadowProperties, ShadowRequest};

pub const KB: u64 = 1 << 10;
pub const MB: u64 = 1 << 20;
pub const GB: u64 = 1 << 30;
/// The block size of every LUN here (the array's default).
pub const BS: u64 = 4096;
/// Host A: the production server.
pub const HOST_A: &str = "iqn.2024-01.org.example:server-a";
/// Host B: the backup (or forensics) server.
pub const HOST_B: &str = "iqn.2024-01.org.example:backup-b";
/// Long enough never to pass in these tests.
pub const LONG: Duration = Duration::from_secs(3600);

pub fn id(s: &str) -> InitiatorId {
    InitiatorId::parse(s).unwrap()
}

pub fn mask(s: &str) -> MaskSpec {
    MaskSpec::parse(s).unwrap()
}

/// One block of `fill` bytes, its first 8 bytes the block number (so a misplaced block shows).
pub fn block(n: u64, fill: u8) -> Vec<u8> {
    let mut b = vec![fill; BS as usize];
    b[..8].copy_from_slice(&n.to_le_bytes());
    b
}

/// The request for LUN `volume` in set `set_id`.
pub fn request(set_id: Uuid, volume: &str, attributes: Attributes, count: u32) -> ShadowRequest {
    ShadowRequest {
        set_id,
        shadow_id: Uuid::new_v4(),
        volume: volume.to_string(),
        context: Context::BACKUP,
        attributes,
        count_in_set: count,
    }
}

/// Runs the provider's whole sequence for LUNs `luns` (begin_prepare each, end_prepare,
/// pre_commit, commit, post_commit) and returns the set id, the requests and the properties.
pub fn make_set(
    hw: &dyn Provider,
    luns: &[&str],
    attributes: Attributes,
) -> (Uuid, Vec<ShadowRequest>, Vec<ShadowProperties>) {
    let set_id = Uuid::new_v4();
    let requests: Vec<ShadowRequest> = luns
        .iter()
        .map(|l| request(set_id, l, attributes, luns.len() as u32))
        .collect();
    for r in &requests {
        hw.begin_prepare(r).unwrap();
    }
    hw.end_prepare(set_id, Instant::now() + LONG).unwrap();
    hw.pre_commit(set_id).unwrap();
    hw.commit(set_id, LONG).unwrap();
    let props = hw.post_commit(set_id).unwrap();
    (set_id, requests, props)
}

/// Opens the LUN `host` sees as `lun`, at the number it sees it.
pub fn open_as(a: &Array, host: &str, lun: &str) -> LunHandle {
    let number = a.access(lun, &id(host)).unwrap().unwrap().number;
    a.open_lun(&id(host), number).unwrap()
}

/// Reads block `n` through `h`.
pub fn read_block(h: &LunHandle, n: u64) -> Vec<u8> {
    let mut buf = vec![0u8; BS as usize];
    h.read_at(&mut buf, n * BS).unwrap();
    buf
}

/// The names of the array's LUNs, sorted.
pub fn lun_names(a: &Array) -> Vec<String> {
    a.luns().into_iter().map(|l| l.name).collect()
}
