#!/usr/bin/env python3
"""Generates a synthetic cluster and a dnsperf query file for tests/bench/dnsperf.sh.

    gen_cluster.py --pods 3000|100000 --out DIR [--queries N] [--seed S] [--list-size N]

writes

    DIR/feed/cluster-NNN.json  one `kind: List` (or several of --list-size objects each), as
                               `kubectl get svc,pods -A -o json` prints it: headless Services
                               (clusterIP None, a named port `web` 80, a selector) and their
                               Ready Pods (`<svc>-<i>`, hostname and subdomain set, podIP from
                               10.x). No EndpointSlices: stsdns derives the endpoints from Pods.
    DIR/queries.txt            dnsperf input, one `<name> <type>` per line, shuffled with a fixed
                               seed: 40% pod A, 30% SRV (half bare, half _web._tcp), 20% service
                               A, 10% NXDOMAIN inside the zone.
    DIR/sample.txt             a few queries of each kind, for comparing the servers' answers.

Sizes: 3000 = 10 namespaces x 100 services x 3 pods (+ 100 one-pod services: 3,100 pods);
100000 = 10 namespaces x 3333 services x 3 pods (+ 100 one-pod services: 100,090 pods).
Only the standard library; the output is the same for the same arguments.
"""

import argparse
import json
import os
import random
import sys

NAMESPACES = 10
SOLO_SERVICES = 100  # one-pod services, spread over the namespaces
ZONE = "cluster.local"
SIZES = {3000: 100, 100000: 3333}  # --pods -> headless 3-pod services per namespace
CREATED = "2026-01-15T10:00:00Z"


def uid(kind, n):
    """A stable, well-formed UID."""
    return "%08x-0000-4000-8000-%012x" % ({"svc": 1, "pod": 2}[kind], n)


def service(ns, name, n):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "creationTimestamp": CREATED,
            "labels": {"app": name},
            "name": name,
            "namespace": ns,
            "resourceVersion": str(1000 + n),
            "uid": uid("svc", n),
        },
        "spec": {
            "clusterIP": "None",
            "clusterIPs": ["None"],
            "internalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": [{"name": "web", "port": 80, "protocol": "TCP", "targetPort": 80}],
            "publishNotReadyAddresses": False,
            "selector": {"app": name},
            "sessionAffinity": "None",
            "type": "ClusterIP",
        },
        "status": {"loadBalancer": {}},
    }


def pod(ns, svc, ordinal, ip, n):
    name = "%s-%d" % (svc, ordinal)
    ready = {"lastProbeTime": None, "lastTransitionTime": CREATED, "status": "True"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "creationTimestamp": CREATED,
            "generateName": svc + "-",
            "labels": {
                "app": svc,
                "apps.kubernetes.io/pod-index": str(ordinal),
                "statefulset.kubernetes.io/pod-name": name,
            },
            "name": name,
            "namespace": ns,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "blockOwnerDeletion": True,
                    "controller": True,
                    "kind": "StatefulSet",
                    "name": svc,
                    "uid": uid("svc", n),
                }
            ],
            "resourceVersion": str(500000 + n),
            "uid": uid("pod", n),
        },
        "spec": {
            "containers": [
                {
                    "image": "registry.k8s.io/nginx-slim:0.27",
                    "name": "web",
                    "ports": [{"containerPort": 80, "name": "web", "protocol": "TCP"}],
                }
            ],
            "hostname": name,
            "nodeName": "node-%d" % (n % 8),
            "subdomain": svc,
        },
        "status": {
            "conditions": [
                dict(ready, type="Initialized"),
                dict(ready, type="Ready"),
                dict(ready, type="ContainersReady"),
                dict(ready, type="PodScheduled"),
            ],
            "hostIP": "192.168.0.%d" % (10 + n % 8),
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": CREATED,
        },
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=3000, choices=sorted(SIZES))
    parser.add_argument("--out", required=True)
    parser.add_argument("--queries", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--list-size",
        type=int,
        default=0,
        help="objects per List file (default 0: the whole cluster in one List, as one "
        "`kubectl get -o json` prints it)",
    )
    args = parser.parse_args()

    per_ns = SIZES[args.pods]
    items = []
    # (namespace, service, pod count) of every service, for the queries.
    services = []
    serial = 0
    for n in range(NAMESPACES):
        ns = "ns-%02d" % n
        host = 0  # pod addresses in 10.<n+1>.0.0/16, in order
        solo = SOLO_SERVICES // NAMESPACES

        def next_ip():
            nonlocal host
            host += 1
            return "10.%d.%d.%d" % (n + 1, host // 256, host % 256)

        for s in range(per_ns + solo):
            if s < per_ns:
                name, replicas = "svc-%04d" % s, 3
            else:
                name, replicas = "solo-%02d" % (s - per_ns), 1
            serial += 1
            items.append(service(ns, name, serial))
            for i in range(replicas):
                items.append(pod(ns, name, i, next_ip(), serial * 4 + i))
            services.append((ns, name, replicas))

    feed = os.path.join(args.out, "feed")
    os.makedirs(feed, exist_ok=True)
    size = args.list_size or len(items)
    for k, start in enumerate(range(0, len(items), size)):
        doc = {
            "apiVersion": "v1",
            "items": items[start : start + size],
            "kind": "List",
            "metadata": {"resourceVersion": ""},
        }
        with open(os.path.join(feed, "cluster-%03d.json" % k), "w") as f:
            json.dump(doc, f, indent=4)
            f.write("\n")

    rng = random.Random(args.seed)
    total = args.queries
    counts = {
        "pod": total * 40 // 100,
        "srv": total * 15 // 100,
        "srv_port": total * 15 // 100,
        "svc": total * 20 // 100,
    }
    counts["nx"] = total - sum(counts.values())

    def make(kind):
        ns, svc, replicas = rng.choice(services)
        base = "%s.%s.svc.%s" % (svc, ns, ZONE)
        if kind == "pod":
            return "%s-%d.%s A" % (svc, rng.randrange(replicas), base)
        if kind == "srv":
            return base + " SRV"
        if kind == "srv_port":
            return "_web._tcp.%s SRV" % base
        if kind == "svc":
            return base + " A"
        return "nope-%d.%s.svc.%s A" % (rng.randrange(1000000), ns, ZONE)

    lines = [make(kind) for kind, count in counts.items() for _ in range(count)]
    sample = [make(kind) for kind in counts for _ in range(5)]
    rng.shuffle(lines)
    with open(os.path.join(args.out, "queries.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "sample.txt"), "w") as f:
        f.write("\n".join(sample) + "\n")
    pods = sum(r for _, _, r in services)
    print(
        "generated %d namespaces, %d services, %d pods; %d queries (%s)"
        % (NAMESPACES, len(services), pods, len(lines),
           ", ".join("%s %d" % kv for kv in counts.items())),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
