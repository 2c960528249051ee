//! The name grammar, both ways: model → DNS name, and query name → pod IP.
//!
//! Every name stsdns serves is built here, so no other module joins labels by hand:
//!
//! ```text
//! <svc>.<ns>.svc.<zone>                 Service
//! <host>.<svc>.<ns>.svc.<zone>          endpoint of a headless Service
//! _<port>._<proto>.<svc>.<ns>.svc.<zone> SRV of a named port
//! <a-b-c-d>.<ns>.pod.<zone>             pod by IP (--pods)
//! d.c.b.a.in-addr.arpa, nibbles.ip6.arpa PTR
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::ProtoError;
use hickory_proto::rr::{LowerName, Name};

use crate::model::{Hostname, Namespace, Protocol, ServiceKey};

/// `label.<name>`, for a label the model has validated (a lowercase DNS-1123 label) or one made
/// here, taken as bytes. As a `&str`, hickory maps a label through IDNA (UTS 46): work for
/// nothing on such a label, and it rejects valid Kubernetes names that start with `xn--`
/// (`xn--a` is not valid punycode), which failed the whole build.
fn prepend(name: &Name, label: &str) -> Result<Name, ProtoError> {
    name.prepend_label(label.as_bytes())
}

/// `svc.<zone>`.
pub fn svc_root(zone: &Name) -> Result<Name, ProtoError> {
    prepend(zone, "svc")
}

/// `pod.<zone>`.
pub fn pod_root(zone: &Name) -> Result<Name, ProtoError> {
    prepend(zone, "pod")
}

/// `<ns>.svc.<zone>`.
pub fn namespace(ns: &Namespace, zone: &Name) -> Result<Name, ProtoError> {
    prepend(&svc_root(zone)?, ns.as_str())
}

/// `<ns>.pod.<zone>`.
pub fn pod_namespace(ns: &Namespace, zone: &Name) -> Result<Name, ProtoError> {
    prepend(&pod_root(zone)?, ns.as_str())
}

/// `<svc>.<ns>.svc.<zone>`.
pub fn service(key: &ServiceKey, zone: &Name) -> Result<Name, ProtoError> {
    prepend(&namespace(&key.namespace, zone)?, key.name.as_str())
}

/// `<host>.<svc>.<ns>.svc.<zone>` of an endpoint's hostname.
pub fn endpoint(host: &Hostname, service_name: &Name) -> Result<Name, ProtoError> {
    prepend(service_name, host.as_str())
}

/// `<a-b-c-d>.<svc>.<ns>.svc.<zone>`: the name of an endpoint without a hostname.
pub fn dashed_endpoint(ip: IpAddr, service_name: &Name) -> Result<Name, ProtoError> {
    prepend(service_name, &dashed(ip))
}

/// `_<proto>.<svc>.<ns>.svc.<zone>`: the empty non-terminal above SRV names.
pub fn protocol(protocol: Protocol, service_name: &Name) -> Result<Name, ProtoError> {
    service_name.prepend_label(underscored(protocol.label()))
}

/// `_<port>._<proto>.<svc>.<ns>.svc.<zone>`. The port name is a DNS-1123 label (conversion
/// checks it); hickory takes a label starting with `_` without IDNA.
pub fn srv(port_name: &str, proto: Protocol, service_name: &Name) -> Result<Name, ProtoError> {
    protocol(proto, service_name)?.prepend_label(underscored(port_name))
}

/// `_<label>`, joined without `format!`, whose machinery cost more than the join.
fn underscored(label: &str) -> String {
    let mut joined = String::with_capacity(1 + label.len());
    joined.push('_');
    joined.push_str(label);
    joined
}

/// `<a-b-c-d>.<ns>.pod.<zone>`.
pub fn pod(ip: IpAddr, ns: &Namespace, zone: &Name) -> Result<Name, ProtoError> {
    prepend(&pod_namespace(ns, zone)?, &dashed(ip))
}

/// The reverse name of an address: `d.c.b.a.in-addr.arpa.` or the nibble form under `ip6.arpa.`.
///
/// The same name as hickory's `Name::from(IpAddr)`, built from byte labels: that one formats
/// each octet or nibble into a `String` of its own.
pub fn reverse(ip: IpAddr) -> Name {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Labels of 1 to 7 bytes, names of at most 74 (of 255): appending cannot fail.
    let append = |name: Name, label: &[u8]| name.append_label(label).expect("short label");
    match ip {
        IpAddr::V4(v4) => {
            let mut name = Name::root();
            for octet in v4.octets().into_iter().rev() {
                let digits = [octet / 100, octet / 10 % 10, octet % 10].map(|d| b'0' + d);
                let skip = match octet {
                    100.. => 0,
                    10.. => 1,
                    _ => 2,
                };
                name = append(name, &digits[skip..]);
            }
            append(append(name, b"in-addr"), b"arpa")
        }
        IpAddr::V6(v6) => {
            let mut name = Name::root();
            for byte in v6.octets().into_iter().rev() {
                name = append(name, &[HEX[usize::from(byte & 0xf)]]);
                name = append(name, &[HEX[usize::from(byte >> 4)]]);
            }
            append(append(name, b"ip6"), b"arpa")
        }
    }
}

/// The apexes of the reverse zones.
pub fn reverse_zones() -> [Name; 2] {
    // Both are constant, valid names.
    [
        Name::from_ascii("in-addr.arpa.").expect("constant name"),
        Name::from_ascii("ip6.arpa.").expect("constant name"),
    ]
}

/// An address as one label: `10-1-2-3`; for IPv6 `:` becomes `-`, with `0` added where the
/// label would otherwise start or end with `-` (`::1` → `0--1`, `fd00::` → `fd00--0`).
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => {
            let mut label = v6.to_string().replace(':', "-");
            if label.ends_with('-') {
                label.push('0');
            }
            if label.starts_with('-') {
                label.insert(0, '0');
            }
            label
        }
    }
}

/// Parses the first label of `<a-b-c-d>.<ns>.pod.<zone>` back into an address; `None` for any
/// other shape of name.
pub fn parse_pod_name(name: &LowerName, zone: &LowerName) -> Option<IpAddr> {
    let name = Name::from(name);
    if name.num_labels() != zone.num_labels() + 3 {
        return None;
    }
    let labels: Vec<&[u8]> = name.iter().collect();
    if labels[2] != b"pod" {
        return None;
    }
    let first = std::str::from_utf8(labels[0]).ok()?;
    if let Ok(v4) = first.replace('-', ".").parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    first
        .replace('-', ":")
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

/// Sort key that puts StatefulSet ordinals in numeric order (`web-2` before `web-10`).
pub fn ordinal_order(label: &str) -> (&str, u64, &str) {
    match label.rsplit_once('-') {
        Some((stem, digits))
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (stem, digits.parse().unwrap_or(u64::MAX), label)
        }
        _ => (label, 0, label),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServiceName;

    fn zone() -> Name {
        Name::from_ascii("cluster.local.").expect("valid")
    }

    #[test]
    fn builds_every_name_form() {
        let key = ServiceKey {
            namespace: Namespace::new("prod").expect("valid"),
            name: ServiceName::new("svc-nginx").expect("valid"),
        };
        let svc = service(&key, &zone()).expect("valid");
        assert_eq!(svc.to_string(), "svc-nginx.prod.svc.cluster.local.");
        assert_eq!(
            endpoint(&Hostname::new("sts-nginx-0").expect("valid"), &svc)
                .expect("valid")
                .to_string(),
            "sts-nginx-0.svc-nginx.prod.svc.cluster.local."
        );
        assert_eq!(
            srv("http", Protocol::Tcp, &svc).expect("valid").to_string(),
            "_http._tcp.svc-nginx.prod.svc.cluster.local."
        );
        let ip: IpAddr = "10.42.0.11".parse().expect("ip");
        assert_eq!(
            pod(ip, &key.namespace, &zone()).expect("valid").to_string(),
            "10-42-0-11.prod.pod.cluster.local."
        );
        assert_eq!(reverse(ip).to_string(), "11.0.42.10.in-addr.arpa.");
    }

    #[test]
    fn reverse_names_are_hickorys() {
        let ips = [
            "0.0.0.0",
            "9.10.99.100",
            "10.42.0.11",
            "255.254.199.200",
            "::",
            "::1",
            "2001:db8::f0a",
            "fd00:abcd:ef01:2345:6789:abcd:ef01:2345",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ];
        for ip in ips {
            let ip: IpAddr = ip.parse().expect("ip");
            let ours = reverse(ip);
            let hickorys = Name::from(ip);
            assert!(ours.eq_case(&hickorys), "{ip}: {ours} != {hickorys}");
            assert_eq!(ours.is_fqdn(), hickorys.is_fqdn(), "{ip}");
            assert!(ours.iter().eq(hickorys.iter()), "{ip}: labels differ");
        }
    }

    #[test]
    fn endpoint_names_take_model_labels_and_host_checks_free_text() {
        let svc = Name::from_ascii("web.default.svc.cluster.local.").expect("valid");
        let hostname = Hostname::new("xn--a").expect("a valid DNS-1123 label");
        assert_eq!(
            endpoint(&hostname, &svc).expect("valid").to_string(),
            "xn--a.web.default.svc.cluster.local."
        );
        let ip: IpAddr = "fd00::1".parse().expect("ip");
        assert_eq!(
            dashed_endpoint(ip, &svc).expect("valid").to_string(),
            "fd00--1.web.default.svc.cluster.local."
        );
    }

    #[test]
    fn dashed_addresses_are_valid_labels() {
        let cases = [
            ("10.1.2.3", "10-1-2-3"),
            ("2001:db8::1", "2001-db8--1"),
            ("fd00::", "fd00--0"),
            ("::1", "0--1"),
        ];
        for (ip, label) in cases {
            assert_eq!(dashed(ip.parse().expect("ip")), label, "{ip}");
        }
    }

    #[test]
    fn parses_pod_names() {
        let zone = LowerName::from(zone());
        let parse =
            |s: &str| parse_pod_name(&LowerName::from(Name::from_ascii(s).expect("valid")), &zone);
        assert_eq!(
            parse("10-1-2-3.default.pod.cluster.local."),
            Some("10.1.2.3".parse().expect("ip"))
        );
        assert_eq!(
            parse("2001-db8--1.default.pod.cluster.local."),
            Some("2001:db8::1".parse().expect("ip"))
        );
        assert_eq!(parse("10-1-2-3.default.svc.cluster.local."), None);
        assert_eq!(parse("x.10-1-2-3.default.pod.cluster.local."), None);
        assert_eq!(parse("web.default.pod.cluster.local."), None);
        assert_eq!(parse("10-1-2-300.default.pod.cluster.local."), None);
    }

    #[test]
    fn ordinals_sort_numerically() {
        let mut names = vec!["web-10", "web-2", "web-1", "db-0", "web"];
        names.sort_by_key(|n| ordinal_order(n));
        assert_eq!(names, ["db-0", "web", "web-1", "web-2", "web-10"]);
    }
}
