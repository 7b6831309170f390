//! The coordinator over both providers: a volume the array has goes to the hardware provider
//! (before a software volume of the same name), the others to the software provider; one set
//! spans both, and the restore brings each back through its own provider (hardware: resync
//! inside the array; software: revert).

mod common;
mod hardware_common;

use std::sync::Arc;

use common::{mem_volumes, short, Recorder, BACKUP};
use hardware_common::{block, mask, open_as, read_block, HOST_A, MB};
use vds_core::Array;
use vss_core::document::Component;
use vss_core::{
    BackupType, Context, Coordinator, HardwareProvider, Provider, ProviderType, RestoreStatus,
    SoftwareProvider, WriterEvent,
};

#[test]
fn one_set_across_the_hardware_and_software_providers_and_back() {
    let array = Array::in_memory();
    array.create_lun("db", MB, &mask(HOST_A)).unwrap();
    let lun = open_as(&array, HOST_A, "db");
    lun.write_at(&block(0, 1), 0).unwrap();
    // A software volume also named "db": the hardware provider is asked first and wins.
    let vols = mem_volumes(&["db", "files"]);
    vols[1].1.write_at(b"files-v1", 0).unwrap();
    let sw: Arc<dyn Provider> = Arc::new(SoftwareProvider::new(vols.clone()).unwrap());
    let hw: Arc<dyn Provider> = Arc::new(HardwareProvider::new(array.clone()));
    let c = Coordinator::with_timeouts([sw, hw], short());
    assert_eq!(c.providers()[0].provider_type(), ProviderType::Hardware);
    let app = Recorder::with_components("app", vec![Component::new("", "all", ["db", "files"])]);
    c.add_writer(app.clone()).unwrap();

    let mut b = c.backup(Context::APP_ROLLBACK, BackupType::Full);
    b.gather_writer_metadata().unwrap();
    b.start_set().unwrap();
    b.add_volume("db").unwrap();
    b.add_volume("files").unwrap();
    b.prepare_for_backup().unwrap();
    let shadows = b.do_snapshot_set().unwrap();
    assert_eq!(shadows[0].provider_type, ProviderType::Hardware);
    assert_eq!(shadows[1].provider_type, ProviderType::Software);
    assert!(
        vols[0].1.snapshots().is_empty(),
        "the software decoy was not used"
    );
    let saved = b.backup_components().unwrap();
    b.backup_complete().unwrap();
    b.backup_shutdown().unwrap();
    drop(b);
    assert_eq!(app.events(), BACKUP);
    assert_eq!(c.shadows().unwrap().len(), 2);

    lun.write_at(&block(0, 9), 0).unwrap();
    vols[1].1.write_at(b"files-v2", 0).unwrap();
    app.clear();
    let mut r = c.restore(saved).unwrap();
    r.gather_writer_metadata().unwrap();
    r.pre_restore().unwrap();
    r.restore().unwrap();
    r.post_restore().unwrap();
    assert_eq!(r.restore_status()[0].status, RestoreStatus::All);
    assert_eq!(r.restore_status()[0].volumes, ["db", "files"]);
    drop(r);
    assert_eq!(
        app.events(),
        [
            WriterEvent::Identify,
            WriterEvent::PreRestore,
            WriterEvent::PostRestore
        ]
    );
    // The resync revoked the handle opened before it; opened again, it reads the restored data.
    let mut old = vec![0u8; 4096];
    assert_eq!(
        lun.read_at(&mut old, 0).unwrap_err().kind(),
        vds_core::ErrorKind::AccessDenied
    );
    let lun = open_as(&array, HOST_A, "db");
    assert_eq!(read_block(&lun, 0), block(0, 1));
    let mut buf = [0u8; 8];
    vols[1].1.read_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"files-v1");
}
