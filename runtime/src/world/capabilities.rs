//! The capabilities a governed world's processes may not hold: each would
//! let a process inside undo what governs it. A spec (or an `exec`'s
//! process) that could hold one is refused, never silently narrowed.

use oci_spec::runtime::{Capability, LinuxCapabilities, Process};

use crate::record::WorldRecord;

/// A capability a governed world may not hold, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Forbidden {
    pub capability: Capability,
    pub name: &'static str,
    pub why: &'static str,
}

/// Under an egress policy.
pub(crate) const UNDER_EGRESS: [Forbidden; 1] = [Forbidden {
    capability: Capability::NetAdmin,
    name: "CAP_NET_ADMIN",
    why: "it could rewrite its own nftables table",
}];

/// Under a policy's `filesystem` mounts (`hidden`, `read_only`,
/// `writable`).
pub(crate) const UNDER_MOUNTS: [Forbidden; 2] = [
    Forbidden {
        capability: Capability::SysAdmin,
        name: "CAP_SYS_ADMIN",
        why: "it could unmount what hides its paths and remount what is read-only",
    },
    Forbidden {
        capability: Capability::DacReadSearch,
        name: "CAP_DAC_READ_SEARCH",
        why: "open_by_handle_at(2) opens a file by its handle, through any mount of its \
              filesystem: a hidden one, or a read-only one through a writable bind",
    },
];

/// Whether `process` could hold `capability`: in one of its sets, or, with
/// no `capabilities` at all, always (libcontainer, as runc, then drops
/// nothing: the process keeps every capability of the runtime).
pub(crate) fn may_hold(process: &Process, capability: Capability) -> bool {
    process
        .capabilities()
        .as_ref()
        .is_none_or(|sets| in_any_set(sets, capability))
}

fn in_any_set(sets: &LinuxCapabilities, capability: Capability) -> bool {
    [
        sets.bounding(),
        sets.effective(),
        sets.permitted(),
        sets.inheritable(),
        sets.ambient(),
    ]
    .into_iter()
    .flatten()
    .any(|set| set.contains(&capability))
}

/// What the world `record` describes is governed by, and so may not hold.
pub(crate) fn forbidden_in(record: &WorldRecord) -> Vec<Forbidden> {
    let mut forbidden = Vec::new();
    if record.egress.is_some() {
        forbidden.extend(UNDER_EGRESS);
    }
    if record.policy.as_ref().is_some_and(|policy| {
        let filesystem = &policy.filesystem;
        !filesystem.hidden.is_empty()
            || !filesystem.read_only.is_empty()
            || filesystem.writable.is_some()
    }) {
        forbidden.extend(UNDER_MOUNTS);
    }
    forbidden
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxCapabilitiesBuilder, ProcessBuilder};

    fn process(bounding: Option<&[Capability]>) -> Process {
        let mut builder = ProcessBuilder::default().args(vec!["true".to_owned()]);
        if let Some(set) = bounding {
            builder = builder.capabilities(
                LinuxCapabilitiesBuilder::default()
                    .bounding(
                        set.iter()
                            .copied()
                            .collect::<std::collections::HashSet<_>>(),
                    )
                    .build()
                    .unwrap(),
            );
        }
        let mut process = builder.build().unwrap();
        if bounding.is_none() {
            process.set_capabilities(None);
        }
        process
    }

    #[test]
    fn a_process_without_capabilities_holds_them_all() {
        assert!(may_hold(&process(None), Capability::NetAdmin));
        assert!(may_hold(
            &process(Some(&[Capability::NetAdmin])),
            Capability::NetAdmin
        ));
        assert!(!may_hold(
            &process(Some(&[Capability::Kill])),
            Capability::NetAdmin
        ));
        assert!(!may_hold(&process(Some(&[])), Capability::SysAdmin));
    }
}
