use std::time::Duration;

use anyhow::Result;
use liboci_cli::Events;
use serde_json::json;
use substrate_runtime::{Runtime, WorldStatus};

/// Prints a `stats` event (runc's `{"type":"stats","id":…,"data":…}`) every
/// `--interval` seconds until the world stops; once with `--stats`.
pub fn events(args: Events, runtime: &Runtime) -> Result<()> {
    let mut world = runtime.world(&args.container_id)?;
    loop {
        let event = json!({ "type": "stats", "id": world.id(), "data": world.stats()? });
        println!("{event}");
        if args.stats {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(args.interval.max(1).into()));
        world.refresh()?;
        if world.status() == WorldStatus::Stopped {
            return Ok(());
        }
    }
}
