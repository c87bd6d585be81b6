//! A world's network, set up and governed from the host side.
//!
//! - [`link`]: the host bridge, the world's veth pair, addresses, routes and
//!   the bridge's NAT, over rtnetlink;
//! - [`egress`]: the world's own nftables table (its allow-list as sets),
//!   built with `nftnl` and sent as one atomic batch into the world's netns;
//! - [`nflog`]: the packets that table logs, read from the world's netns;
//! - [`resolver`]: the DNS resolver the world's `/etc/resolv.conf` names,
//!   which answers only names the policy allows and admits the answers into
//!   the table's sets for their TTL.

pub mod egress;
pub mod link;
pub mod netns;
pub mod nflog;
pub mod protected;
pub mod resolver;
