//! Validated settings: what the CLI (and, later, a config file) decide.
//!
//! The CLI parses what the user typed; this module holds the result after validation, so the
//! rest of the crate never sees a raw string.

use std::net::SocketAddr;
use std::path::PathBuf;

use hickory_proto::rr::Name;

/// How `<ip>.<ns>.pod.<zone>` names are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PodsMode {
    /// No pod names (the default, as in CoreDNS).
    #[default]
    Disabled,
    /// Any IP-shaped name in a namespace that exists answers with that IP (kube-dns style).
    Insecure,
    /// Only the IPs of Pods that exist in that namespace.
    Verified,
}

/// Everything the record builder needs to know about the zones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneConfig {
    /// Cluster domains, e.g. `cluster.local.` (fully qualified, lowercase).
    pub zones: Vec<Name>,
    /// TTL of positive answers, in seconds.
    pub ttl: u32,
    /// TTL of negative answers (the SOA minimum and the authority SOA's TTL), in seconds.
    pub negative_ttl: u32,
    /// Pod names.
    pub pods: PodsMode,
}

impl Default for ZoneConfig {
    fn default() -> Self {
        Self {
            zones: vec![Name::from_ascii("cluster.local.").expect("constant name")],
            ttl: 5,
            negative_ttl: 5,
            pods: PodsMode::Disabled,
        }
    }
}

/// Where the objects come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedSource {
    /// The example cluster built into the binary (`zones/`).
    Embedded,
    /// A manifest file or directory (watched for changes), or a watch-event stream: `-`
    /// (standard input), a FIFO, or a file of watch events that is followed as it grows.
    Path(PathBuf),
    /// A live API server through kube-rs.
    Kube {
        /// A kubeconfig file; default: in-cluster service account, `KUBECONFIG`, ~/.kube/config.
        kubeconfig: Option<PathBuf>,
        /// The kubeconfig context; default: the current one.
        context: Option<String>,
    },
}

/// Settings of `stsdns serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Addresses to answer on, over both UDP and TCP.
    pub listen: Vec<SocketAddr>,
    /// The feeds.
    pub feeds: Vec<FeedSource>,
    /// The zones.
    pub zone: ZoneConfig,
    /// Where the SOA serial is kept across restarts; `None` keeps it only in memory.
    pub serial_file: Option<PathBuf>,
    /// UDP worker threads (one SO_REUSEPORT socket each) per listen address.
    pub threads: usize,
}

/// Why a setting is invalid.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A zone is not a valid domain name.
    #[error("invalid zone {zone:?}")]
    Zone {
        /// What was given.
        zone: String,
        /// Why it is invalid.
        #[source]
        source: hickory_proto::ProtoError,
    },
    /// The same zone twice, or one inside another.
    #[error("zone {inner} is inside zone {outer}; give each cluster domain once")]
    NestedZones {
        /// The enclosed zone.
        inner: String,
        /// The enclosing zone.
        outer: String,
    },
    /// A zone with an empty label (`a..b`, `.a`).
    #[error("invalid zone {0:?}: a label is empty (two dots in a row, or a leading dot)")]
    EmptyLabel(String),
    /// A reverse zone cannot be a cluster domain.
    #[error("zone {0} is a reverse zone; stsdns serves in-addr.arpa and ip6.arpa by itself")]
    ReverseZone(String),
}

/// Parses and checks cluster domains: fully qualified, lowercase, none inside another.
pub fn parse_zones(zones: &[String]) -> Result<Vec<Name>, Error> {
    let mut parsed: Vec<Name> = Vec::new();
    for zone in zones {
        if zone != "." && zone.trim_end_matches('.').split('.').any(str::is_empty) {
            return Err(Error::EmptyLabel(zone.clone()));
        }
        let text = if zone.ends_with('.') {
            zone.clone()
        } else {
            format!("{zone}.")
        };
        let name = Name::from_ascii(&text)
            .map_err(|source| Error::Zone {
                zone: zone.clone(),
                source,
            })?
            .to_lowercase();
        if name.is_root() {
            return Err(Error::Zone {
                zone: zone.clone(),
                source: "the root zone would make stsdns answer for every name".into(),
            });
        }
        let arpa = Name::from_ascii("arpa.").expect("constant name");
        if arpa.zone_of(&name) {
            return Err(Error::ReverseZone(name.to_string()));
        }
        for other in &parsed {
            let (inner, outer) = if other.zone_of(&name) {
                (&name, other)
            } else if name.zone_of(other) {
                (other, &name)
            } else {
                continue;
            };
            return Err(Error::NestedZones {
                inner: inner.to_string(),
                outer: outer.to_string(),
            });
        }
        parsed.push(name);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_normalized_and_checked() {
        let zones = parse_zones(&["Cluster.Local".into(), "corp.example.".into()]).expect("valid");
        assert_eq!(zones[0].to_string(), "cluster.local.");
        assert_eq!(zones[1].to_string(), "corp.example.");
        assert!(parse_zones(&["cluster.local".into(), "svc.cluster.local".into()]).is_err());
        assert!(parse_zones(&["cluster.local".into(), "cluster.local.".into()]).is_err());
        assert!(parse_zones(&[".".into()]).is_err());
        assert!(parse_zones(&["10.in-addr.arpa".into()]).is_err());
        assert!(parse_zones(&["bad..name".into()]).is_err());
    }
}
