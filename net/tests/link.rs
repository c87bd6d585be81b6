//! A world's link, on a real kernel: a bridge of the test's own, a world
//! netns joined to it, reaching a server on the host side, and nothing of
//! the world's left after release.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use substrate_net::link::{self, Bridge};
use substrate_net::netns::NetNs;

fn test_bridge(tag: &str) -> Bridge {
    // A bridge and subnets of this test's own, so tests run side by side.
    let n = std::process::id() % 200 + 20;
    format!(
        "sbt{tag}{n},10.{n}.{}.1/24,fd5b:{n:x}:{}::1/64",
        tag.len(),
        tag.len()
    )
    .parse()
    .unwrap()
}

fn interface_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

#[test]
fn a_world_joins_the_bridge_reaches_the_host_side_and_leaves_nothing() {
    let run_dir = tempfile::tempdir().unwrap();
    let bridge = test_bridge("a");
    let world = NetNs::new_anonymous().unwrap();
    let link = link::attach(&world, &bridge, run_dir.path(), "world-a").unwrap();
    assert!(interface_exists(&bridge.name));
    assert!(interface_exists(&link.host_interface));
    assert!(bridge.v4.contains(&link.v4) && link.v4 != bridge.v4.addr());
    assert!(bridge.v6.contains(&link.v6));

    // A server on the bridge's own address, reached from inside the world
    // over v4 and v6.
    for gateway in [
        bridge.v4.addr().into(),
        std::net::IpAddr::from(bridge.v6.addr()),
    ] {
        let listener = TcpListener::bind(SocketAddr::new(gateway, 0)).unwrap();
        let target = listener.local_addr().unwrap();
        let client = std::thread::spawn({
            let world = world.try_clone().unwrap();
            move || {
                world.run(move || {
                    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
                    stream.write_all(b"ping")?;
                    Ok(stream.local_addr()?.ip())
                })
            }
        });
        let (mut accepted, _) = listener.accept().unwrap();
        let mut got = [0u8; 4];
        accepted.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        let source = client.join().unwrap().unwrap();
        assert!(
            source == std::net::IpAddr::from(link.v4) || source == std::net::IpAddr::from(link.v6)
        );
    }

    // What went through the world's eth0 is counted, loopback not.
    let traffic = link::traffic(&world).unwrap();
    assert!(traffic.sent > 0 && traffic.received > 0, "{traffic:?}");

    // A second world gets the next address.
    let other = NetNs::new_anonymous().unwrap();
    let other_link = link::attach(&other, &bridge, run_dir.path(), "world-b").unwrap();
    assert_ne!(other_link.v4, link.v4);

    assert!(bridge.nat_installed().unwrap());
    link.release().unwrap();
    other_link.release().unwrap();
    assert!(!interface_exists(&link.host_interface));
    assert!(!link.lease.exists());
    // Releasing twice is fine.
    link.release().unwrap();
    bridge.remove(run_dir.path()).unwrap();
    assert!(!interface_exists(&bridge.name));
    assert!(!bridge.nat_installed().unwrap());
}

#[test]
fn a_lease_whose_world_died_is_taken_over() {
    let run_dir = tempfile::tempdir().unwrap();
    let bridge = test_bridge("bb");
    let first = {
        let world = NetNs::new_anonymous().unwrap();
        link::attach(&world, &bridge, run_dir.path(), "gone").unwrap()
        // The netns goes here: its veth pair with it.
    };
    // The kernel removes the veth pair when the netns is freed, which is
    // deferred work: wait for it, bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while interface_exists(&first.host_interface) {
        assert!(
            std::time::Instant::now() < deadline,
            "the dead world's veth stayed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(first.lease.exists(), "the stale lease is still there");
    let world = NetNs::new_anonymous().unwrap();
    let second = link::attach(&world, &bridge, run_dir.path(), "new").unwrap();
    assert_eq!(second.v4, first.v4);
    assert_eq!(std::fs::read_to_string(&second.lease).unwrap(), "new");
    second.release().unwrap();
    bridge.remove(run_dir.path()).unwrap();
}

#[test]
fn bad_bridge_settings_are_named() {
    for bad in [
        "",
        "x",
        "x,10.0.0.1/24",
        "x,10.0.0.1/30,fd00::1/64",
        "waytoolonganame0,10.0.0.1/24,fd00::1/64",
        "x,fd00::1/64,10.0.0.1/24",
    ] {
        let error = bad.parse::<Bridge>().unwrap_err().to_string();
        assert!(error.contains(&format!("{bad:?}")), "{error}");
    }
}

#[test]
fn the_hosts_addresses_include_its_loopback() {
    let addresses = link::host_addresses().unwrap();
    assert!(
        addresses.contains(&"127.0.0.1".parse().unwrap()),
        "{addresses:?}"
    );
    // A namespace's own: only what it has.
    let netns = NetNs::new_anonymous().unwrap();
    link::bring_up_loopback(&netns).unwrap();
    let inside = netns.run(link::host_addresses).unwrap();
    assert!(inside.iter().all(|a| a.is_loopback()), "{inside:?}");
}
