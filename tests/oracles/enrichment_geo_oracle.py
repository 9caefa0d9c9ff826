#!/usr/bin/env python3
"""Test oracle for Enrichment's GeoIP resolver (spawned by Tests/EnrichmentTests).

    enrichment_geo_oracle.py OUTDIR [--count N] [--seed S]
    enrichment_geo_oracle.py --lookup DB.mmdb [DB.mmdb ...] < ips.txt > results.jsonl

The second form looks up one address per stdin line in the given databases
with the same field rules and prints {"ip", "expected"} lines.

Writes into OUTDIR:
  city.mmdb     GeoIP2-City-style DB: hand-made records (nested networks, two
                nested subdivisions, a record without city, a record with only
                registered_country, a non-ASCII city) + random IPv4/IPv6 networks
  asn.mmdb      GeoLite2-ASN-style DB (networks overlap the city DB's, not equal)
  country.mmdb  GeoLite2-Country-style DB (country only)
  corrupt.mmdb  garbage bytes
  cases.jsonl   N lines {"ip", "kind", "global", "expected"} where expected is
                what Python's `maxminddb` reader gives for [city.mmdb, asn.mmdb]
                (null = no record in either), using the same field rules as the
                Swift resolver: country.iso_code (else registered_country.iso_code),
                region = country + "-" + subdivisions[0].iso_code, city.names.en,
                autonomous_system_number, autonomous_system_organization; the
                first DB that has a field wins; IPv4-mapped IPv6 is looked up as IPv4.
"""
import argparse
import ipaddress
import json
import os
import random
import sys

import maxminddb
from mmdb_writer import MMDBWriter, MmdbU32
from netaddr import IPNetwork, IPSet

FIXED_CITY = [
    ("81.2.69.0/24", {"country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
                      "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}},
                                       {"iso_code": "WBK", "names": {"en": "West Berkshire"}}],
                      "city": {"names": {"en": "London"}}}),
    ("81.2.69.160/27", {"country": {"iso_code": "GB"}, "subdivisions": [{"iso_code": "ENG"}]}),  # nested, no city
    ("89.160.20.112/28", {"country": {"iso_code": "SE"}, "subdivisions": [{"iso_code": "E"}],
                          "city": {"names": {"en": "Linköping"}}}),
    ("216.160.83.56/29", {"country": {"iso_code": "US"}, "subdivisions": [{"iso_code": "WA"}],
                          "city": {"names": {"en": "Milton"}}}),
    ("67.43.156.0/24", {"registered_country": {"iso_code": "BT"}}),
    ("2a02:c7f::/32", {"country": {"iso_code": "GB"}, "subdivisions": [{"iso_code": "SCT"}],
                       "city": {"names": {"en": "Glasgow"}}}),
    ("2001:480::/32", {"country": {"iso_code": "US"}, "subdivisions": [{"iso_code": "CA"}],
                       "city": {"names": {"en": "San Diego"}}}),
    ("2001:480:10::/48", {"country": {"iso_code": "US"}}),  # nested, country only
]
FIXED_ASN = [
    ("81.2.69.0/23", {"autonomous_system_number": MmdbU32(20712), "autonomous_system_organization": "Andrews & Arnold Ltd"}),
    ("89.160.0.0/16", {"autonomous_system_number": MmdbU32(29518), "autonomous_system_organization": "Bredband2 AB"}),
    ("1.0.0.0/24", {"autonomous_system_number": MmdbU32(13335), "autonomous_system_organization": "Cloudflare, Inc."}),
    ("2a02:c7f::/29", {"autonomous_system_number": MmdbU32(5089)}),
]
COUNTRIES = ["US", "GB", "DE", "FR", "BR", "IN", "JP", "SE", "CA", "AU", "NG", "ZA"]
SUBDIVS = ["CA", "TX", "ENG", "SCT", "BY", "IDF", "SP", "MH", "13", "AB", "NSW", "LA", "GP"]
CITIES = ["Springfield", "Zürich", "São Paulo", "Mumbai", "Tokyo", "Lagos", "Cape Town", "Köln"]


def is_public(ip):
    """Python's idea of a public unicast address (is_global minus multicast)."""
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def writer(kind):
    return MMDBWriter(ip_version=6, database_type=kind, languages=["en"],
                      description="VideoQoS Enrichment test DB", ipv4_compatible=True)


def random_network(rng, v6):
    if v6:
        plen = rng.randint(24, 64)
        addr = (0b001 << 125) | rng.getrandbits(125)
        net = IPNetwork(f"{ipaddress.IPv6Address(addr)}/{plen}").cidr
    else:
        plen = rng.randint(12, 28)
        while True:
            addr = rng.getrandbits(32)
            if is_public(ipaddress.IPv4Address(addr)):
                break
        net = IPNetwork(f"{ipaddress.IPv4Address(addr)}/{plen}").cidr
    return net


def random_city_record(rng):
    rec = {}
    r = rng.random()
    c = rng.choice(COUNTRIES)
    if r < 0.05:
        return {"registered_country": {"iso_code": c}}
    rec["country"] = {"iso_code": c, "names": {"en": c}}
    n_sub = rng.choice([0, 1, 1, 1, 2])
    if n_sub:
        rec["subdivisions"] = [{"iso_code": rng.choice(SUBDIVS)} for _ in range(n_sub)]
    if rng.random() < 0.7:
        rec["city"] = {"names": {"en": rng.choice(CITIES)}}
    return rec


def random_asn_record(rng):
    rec = {"autonomous_system_number": MmdbU32(rng.randint(1, 400000))}
    if rng.random() < 0.8:
        rec["autonomous_system_organization"] = f"AS Org {rng.randint(1, 999)} ÄÖ"
    return rec


def build(outdir, rng):
    city_nets, asn_nets = list(FIXED_CITY), list(FIXED_ASN)
    for _ in range(300):
        v6 = rng.random() < 0.5
        net = random_network(rng, v6)
        city_nets.append((str(net), random_city_record(rng)))
        if rng.random() < 0.3:  # a nested, more specific network
            sub = list(net.subnet(min(net.prefixlen + rng.randint(1, 6), 128 if v6 else 32)))
            city_nets.append((str(rng.choice(sub)), random_city_record(rng)))
        if rng.random() < 0.7:
            anet = IPNetwork(f"{net.network}/{max(net.prefixlen - rng.randint(0, 4), 8)}")
            asn_nets.append((str(anet.cidr), random_asn_record(rng)))
    def key(item):
        n = IPNetwork(item[0])
        return (n.version, n.prefixlen)
    fixed_city = {n for n, _ in FIXED_CITY}
    fixed_asn = {n for n, _ in FIXED_ASN}
    # Random networks first (less specific first), the hand-made ones last so they win.
    city = writer("GeoIP2-City")
    for n, rec in sorted([x for x in city_nets if x[0] not in fixed_city], key=key) + sorted(FIXED_CITY, key=key):
        city.insert_network(IPSet([IPNetwork(n)]), rec)
    city.to_db_file(os.path.join(outdir, "city.mmdb"))
    asn = writer("GeoLite2-ASN")
    for n, rec in sorted([x for x in asn_nets if x[0] not in fixed_asn], key=key) + sorted(FIXED_ASN, key=key):
        asn.insert_network(IPSet([IPNetwork(n)]), rec)
    asn.to_db_file(os.path.join(outdir, "asn.mmdb"))
    country = writer("GeoLite2-Country")
    country.insert_network(IPSet([IPNetwork("81.2.69.0/24")]), {"country": {"iso_code": "GB"}})
    country.insert_network(IPSet([IPNetwork("2a02:c7f::/32")]), {"country": {"iso_code": "GB"}})
    country.to_db_file(os.path.join(outdir, "country.mmdb"))
    with open(os.path.join(outdir, "corrupt.mmdb"), "wb") as f:
        f.write(bytes(rng.getrandbits(8) for _ in range(4096)))
    return [IPNetwork(n) for n, _ in city_nets + asn_nets]


def extract(readers, ip):
    out = {}
    found = False
    for r in readers:
        rec = r.get(ip)
        if rec is None:
            continue
        found = True
        c = (rec.get("country") or {}).get("iso_code") or (rec.get("registered_country") or {}).get("iso_code")
        if "country" not in out and c:
            out["country"] = c
            subs = rec.get("subdivisions") or []
            if "region" not in out and subs and subs[0].get("iso_code"):
                out["region"] = c + "-" + subs[0]["iso_code"]
        city = ((rec.get("city") or {}).get("names") or {}).get("en")
        if "city" not in out and city:
            out["city"] = city
        asn = rec.get("autonomous_system_number")
        if "asn" not in out and asn is not None:
            out["asn"] = asn
        org = rec.get("autonomous_system_organization")
        if "as_org" not in out and org:
            out["as_org"] = org
    return out if found else None


def random_in(rng, net):
    return ipaddress.ip_address(int(net.first) + rng.randrange(0, min(net.size, 1 << 64)))


def lookup_mode(dbs):
    readers = [maxminddb.open_database(p) for p in dbs]
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        ip = ipaddress.ip_address(text)
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        print(json.dumps({"ip": text, "expected": extract(readers, str(ip))}, ensure_ascii=False))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--lookup":
        lookup_mode(sys.argv[2:])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=20261125)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.outdir, exist_ok=True)
    nets = build(args.outdir, rng)
    readers = [maxminddb.open_database(os.path.join(args.outdir, n)) for n in ("city.mmdb", "asn.mmdb")]
    with open(os.path.join(args.outdir, "cases.jsonl"), "w", encoding="utf-8") as f:
        for _ in range(args.count):
            r = rng.random()
            if r < 0.45:
                ip, kind = random_in(rng, rng.choice(nets)), "in-network"
            elif r < 0.65:
                ip, kind = ipaddress.IPv4Address(rng.getrandbits(32)), "random-v4"
            elif r < 0.85:
                ip, kind = ipaddress.IPv6Address((0b001 << 125) | rng.getrandbits(125)), "random-v6"
            else:
                v4 = [n for n in nets if n.version == 4]
                ip, kind = random_in(rng, rng.choice(v4)), "mapped"
            text = str(ip)
            if kind == "mapped":
                text = "::ffff:" + str(ip)
            norm = ip
            if ip.version == 6 and ip.ipv4_mapped is not None:
                norm = ip.ipv4_mapped
            f.write(json.dumps({"ip": text, "kind": kind, "global": is_public(norm),
                                "expected": extract(readers, str(norm))}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
