//! `kill -9` of the runtime in the middle of `create` leaves nothing that a
//! following `delete --force` cannot clean.

use std::process::Stdio;
use std::time::Duration;

use substrate_tests::{assert_no_leftovers, unique_id, Bundle, Runtime};

#[test]
fn sigkill_during_create_is_cleaned_by_delete_force() {
    let rt = Runtime::new();
    for delay_us in [
        0, 500, 1000, 2000, 3000, 4000, 5000, 6000, 8000, 10_000, 15_000, 25_000,
    ] {
        let id = unique_id("crash");
        let bundle = Bundle::new(&id, &["sleep", "1000"]);
        let mut create = rt
            .cmd(&["create", "--bundle", bundle.path_str(), &id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(delay_us));
        let _ = create.kill();
        let _ = create.wait();

        let out = rt.run(&["delete", "--force", &id]);
        assert!(
            out.status.success(),
            "delete --force after a create killed at {delay_us}us: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_leftovers(rt.root(), &id);
        // Unless the world had been fully created (then its record stays,
        // with an empty diff), nothing of it remains in the world store.
        if rt.world_dir(&id).exists() {
            let record = rt.record(&id);
            assert!(
                record["diff"].is_object(),
                "a half-made record was left: {record}"
            );
        }
    }
}
