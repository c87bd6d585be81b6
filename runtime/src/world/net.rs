//! A world's network, set up between create and start: loopback only, or a
//! veth pair on the host bridge; and, when it has an egress policy, its
//! nftables table, in the world's own network namespace.
//!
//! The table is installed here, by whoever runs the world, not by its
//! monitor: a world's policy holds whether or not it is traced. The monitor
//! adds what only a running resolver can (the addresses allowed names
//! resolve to) and reads what the table logs.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use substrate_net::egress::EgressTable;
use substrate_net::link::{self, WorldLink};
use substrate_net::netns::NetNs;

use super::World;
use crate::error::{Error, Result};
use crate::record::{WorldEgress, WorldNetwork};

/// The NFLOG group a world's table logs to: groups are per network
/// namespace, so every world uses the same one.
pub const LOG_GROUP: u16 = 1;

/// Where a governed world's resolver listens, inside the world: an address
/// on its own loopback, which its `/etc/resolv.conf` names.
pub const RESOLVER: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53)), 53);

const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Where bridge address leases live.
const LEASES_DIR: &str = "/run/substrate/net";

/// A world's end of the bridge, kept in its runtime state so whoever
/// deletes the world releases it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LinkMeta {
    bridge: String,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    host_interface: String,
    lease: PathBuf,
}

impl From<WorldLink> for LinkMeta {
    fn from(link: WorldLink) -> Self {
        LinkMeta {
            bridge: link.bridge,
            v4: link.v4,
            v6: link.v6,
            host_interface: link.host_interface,
            lease: link.lease,
        }
    }
}

impl From<LinkMeta> for WorldLink {
    fn from(meta: LinkMeta) -> Self {
        WorldLink {
            bridge: meta.bridge,
            v4: meta.v4,
            v6: meta.v6,
            host_interface: meta.host_interface,
            lease: meta.lease,
        }
    }
}

fn network_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |e| Error::Network {
        what,
        source: Box::new(e),
    }
}

impl World {
    /// Gives the world (created, its init waiting for `start`) the network
    /// its caller chose and installs its egress table. A world given its
    /// network by its spec (CNI's netns) only gets the table, and only in a
    /// namespace of its own: a world on the host's network cannot be
    /// governed, and says so.
    pub(crate) fn connect(
        &self,
        network: WorldNetwork,
        egress: Option<&WorldEgress>,
    ) -> Result<()> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        let netns = NetNs::of_pid(pid).map_err(network_error("cannot open the world's netns"))?;
        let own_namespace = !netns
            .is_current()
            .map_err(network_error("cannot compare network namespaces"))?;
        if !own_namespace {
            if egress.is_some() {
                return Err(Error::UnsupportedConfig {
                    path: self.bundle().join("config.json"),
                    reason: "an egress policy needs a network namespace of the world's own; \
                             this spec shares the host's"
                        .into(),
                });
            }
            return Ok(());
        }
        match network {
            WorldNetwork::Spec => {}
            WorldNetwork::LoopbackOnly => link::bring_up_loopback(&netns)
                .map_err(network_error("cannot bring up lo in the world"))?,
            WorldNetwork::Bridge => {
                let bridge = match egress {
                    Some(egress) => egress.bridge()?,
                    None => link::Bridge::default(),
                };
                let world_link =
                    link::attach(&netns, &bridge, LEASES_DIR.as_ref(), self.id().as_str())
                        .map_err(|e| Error::Network {
                            what: format!("cannot join the world to {}", bridge.name),
                            source: Box::new(e),
                        })?;
                // Written by create before it returned the world.
                let saved = match self.meta() {
                    Some(mut meta) => {
                        meta.link = Some(world_link.clone().into());
                        self.save_meta(&meta)
                    }
                    None => Err(network_error("the world has no runtime state")(
                        std::io::ErrorKind::NotFound.into(),
                    )),
                };
                if let Err(e) = saved {
                    let _ = world_link.release();
                    return Err(e);
                }
            }
        }
        if let Some(egress) = egress {
            let failed = |what: &str| {
                let what = what.to_owned();
                move |e: substrate_net::egress::EgressError| Error::Network {
                    what,
                    source: Box::new(e),
                }
            };
            let options = egress.table_options()?;
            // A namespace another world governs already (a pod's sandbox,
            // for each of the pod's containers): its table stays, with the
            // addresses its resolver admitted; one policy per namespace.
            let shared = network == WorldNetwork::Spec
                && EgressTable::open(&netns, &egress.policy, options.clone())
                    .and_then(|table| table.is_installed())
                    .map_err(failed("cannot read the world's egress table"))?;
            if shared {
                tracing::info!(
                    "world {}: its network namespace is governed already; its table stays",
                    self.id()
                );
            } else {
                EgressTable::install(&netns, &egress.policy, options)
                    .map_err(failed("cannot install the world's egress table"))?;
                // `ping` without CAP_NET_RAW (which a governed world does
                // not get: see `govern_spec`), as Docker's containers have
                // it: ICMP echo sockets, which the table governs.
                netns
                    .run(|| std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647"))
                    .map_err(network_error("cannot allow ping sockets in the world"))?;
            }
        }
        Ok(())
    }
}

/// Releases a world's end of the bridge (its veth pair and address), as
/// its runtime state described it. Idempotent.
pub(crate) fn release(link: LinkMeta) -> Result<()> {
    WorldLink::from(link).release().map_err(|e| Error::Network {
        what: "cannot release the world's link".into(),
        source: Box::new(e),
    })
}

/// The spec of a world with an egress policy: refused if its processes
/// could hold CAP_NET_ADMIN (they could rewrite or delete their own table),
/// CAP_NET_RAW taken away (packet sockets go around the table), and its
/// `/etc/resolv.conf` pointed at its resolver.
pub(crate) fn govern_spec(
    spec: &mut oci_spec::runtime::Spec,
    bundle: &std::path::Path,
    world_dir: &std::path::Path,
) -> Result<()> {
    use oci_spec::runtime::Capability;
    for forbidden in super::capabilities::UNDER_EGRESS {
        if spec
            .process()
            .as_ref()
            .is_some_and(|process| super::capabilities::may_hold(process, forbidden.capability))
        {
            return Err(Error::UnsupportedConfig {
                path: bundle.join("config.json"),
                reason: format!(
                    "a world governed by an egress policy cannot hold {}: {}; drop it from \
                     process.capabilities (a process without that list keeps them all)",
                    forbidden.name, forbidden.why
                ),
            });
        }
    }
    // Packet sockets (AF_PACKET) hand frames to the device below the IP
    // stack, where no nftables output hook sees them: with CAP_NET_RAW a
    // world could send what its table refuses. A governed world does not
    // get it (only ever narrowed: a bundle's caps are never widened);
    // `ping` works without it, through ICMP echo sockets.
    if let Some(mut process) = spec.process().clone() {
        if let Some(mut caps) = process.capabilities().clone() {
            let without = |set: &Option<oci_spec::runtime::Capabilities>| {
                set.clone().map(|mut set| {
                    set.remove(&Capability::NetRaw);
                    set
                })
            };
            caps.set_bounding(without(caps.bounding()));
            caps.set_effective(without(caps.effective()));
            caps.set_permitted(without(caps.permitted()));
            caps.set_inheritable(without(caps.inheritable()));
            caps.set_ambient(without(caps.ambient()));
            process.set_capabilities(Some(caps));
            spec.set_process(Some(process));
        }
    }
    mount_resolv_conf(spec, world_dir)
}

/// Points the world's `/etc/resolv.conf` at its resolver: a file in the
/// world's state dir bind-mounted read-only over it (replacing any mount
/// there, such as the one CRI adds), never written into the image.
fn mount_resolv_conf(
    spec: &mut oci_spec::runtime::Spec,
    world_dir: &std::path::Path,
) -> Result<()> {
    let file = world_dir.join("resolv.conf");
    let text = format!(
        "# Substrate: this world's names are resolved by its egress policy.\n\
         nameserver {}\noptions edns0 trust-ad\n",
        RESOLVER.ip()
    );
    std::fs::write(&file, text).map_err(|e| Error::io("cannot write", &file, e))?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.retain(|m| m.destination() != std::path::Path::new(RESOLV_CONF));
    mounts.push(
        oci_spec::runtime::MountBuilder::default()
            .destination(RESOLV_CONF)
            .source(&file)
            .typ("bind")
            .options(vec![
                "rbind".into(),
                "ro".into(),
                "nosuid".into(),
                "nodev".into(),
                "noexec".into(),
            ])
            .build()
            .expect("every field of a bind mount is set"),
    );
    spec.set_mounts(Some(mounts));
    Ok(())
}
