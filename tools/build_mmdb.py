#!/usr/bin/env python3
"""Build GeoIP2-City-style and GeoLite2-ASN-style MaxMind DB files from a CSV.

Usage:
    tools/build_mmdb.py NETWORKS.csv --city OUT_CITY.mmdb [--asn OUT_ASN.mmdb]

The CSV header is exactly ``network,country,region,city,asn,as_org``:

* ``network`` — an IPv4 or IPv6 CIDR (``81.2.69.0/24``, ``2a02:c7f::/32``) or a
  single address; nested networks are allowed (the more specific one wins for
  the addresses it covers).
* ``country`` — ISO 3166-1 alpha-2 (``GB``).
* ``region`` — the first subdivision's own ``iso_code`` as MaxMind stores it
  (``ENG``, ``CA``); a full ISO 3166-2 code (``GB-ENG``) is accepted and
  stored as ``ENG``.
* ``city`` — English city name.
* ``asn`` — integer autonomous system number; ``as_org`` — its organisation.

Empty fields are allowed and are simply left out of the record. A row with
neither ``asn`` nor ``as_org`` does not go into the ASN database; a row with no
country/region/city does not go into the City database.

Records follow MaxMind's layout: ``country.iso_code``, ``country.names.en``,
``subdivisions[0].iso_code``, ``city.names.en`` (City DB) and
``autonomous_system_number`` (uint32), ``autonomous_system_organization``
(ASN DB). Both databases are IPv6 trees with IPv4 at ``::/96`` (as MaxMind
ships them). Requires PyPI ``mmdb-writer`` and ``netaddr`` (``make deps``).
"""
import argparse
import csv
import sys

from mmdb_writer import MMDBWriter, MmdbU32
from netaddr import IPNetwork, IPSet

HEADER = ["network", "country", "region", "city", "asn", "as_org"]


def city_record(country, region, city):
    rec = {}
    if country:
        rec["country"] = {"iso_code": country, "names": {"en": country}}
    if region:
        rec["subdivisions"] = [{"iso_code": region}]
    if city:
        rec["city"] = {"names": {"en": city}}
    return rec


def asn_record(asn, as_org):
    rec = {}
    if asn not in (None, ""):
        rec["autonomous_system_number"] = MmdbU32(int(asn))
    if as_org:
        rec["autonomous_system_organization"] = as_org
    return rec


def new_writer(database_type, description):
    return MMDBWriter(ip_version=6, database_type=database_type, languages=["en"],
                      description=description, ipv4_compatible=True)


def insert(writer, network, record):
    writer.insert_network(IPSet([IPNetwork(network)]), record)


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or [h.strip() for h in reader.fieldnames] != HEADER:
            raise SystemExit(f"{path}: header must be {','.join(HEADER)}, got {reader.fieldnames}")
        for lineno, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items()}
            if not row["network"]:
                raise SystemExit(f"{path}:{lineno}: empty network")
            try:
                IPNetwork(row["network"])
            except Exception as e:  # noqa: BLE001
                raise SystemExit(f"{path}:{lineno}: bad network {row['network']!r}: {e}")
            if row["asn"] and not row["asn"].isdigit():
                raise SystemExit(f"{path}:{lineno}: asn must be an integer, got {row['asn']!r}")
            yield row


def build(rows, city_out, asn_out):
    # Insert less specific networks first so nested, more specific ones win.
    rows = sorted(rows, key=lambda r: (IPNetwork(r["network"]).version, IPNetwork(r["network"]).prefixlen))
    city = new_writer("GeoIP2-City", "VideoQoS test City database")
    asn = new_writer("GeoLite2-ASN", "VideoQoS test ASN database") if asn_out else None
    n_city = n_asn = 0
    for r in rows:
        region = r["region"]
        if r["country"] and region.upper().startswith(r["country"].upper() + "-"):
            region = region[len(r["country"]) + 1:]  # accept a full ISO 3166-2 code too (GB-ENG → ENG)
        c = city_record(r["country"], region, r["city"])
        if c:
            insert(city, r["network"], c)
            n_city += 1
        if asn is not None:
            a = asn_record(r["asn"], r["as_org"])
            if a:
                insert(asn, r["network"], a)
                n_asn += 1
    city.to_db_file(city_out)
    if asn is not None:
        asn.to_db_file(asn_out)
    return n_city, n_asn


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", help="CSV with header " + ",".join(HEADER))
    ap.add_argument("--city", required=True, help="output GeoIP2-City-style .mmdb")
    ap.add_argument("--asn", help="output GeoLite2-ASN-style .mmdb")
    args = ap.parse_args(argv)
    n_city, n_asn = build(list(read_rows(args.csv)), args.city, args.asn)
    print(f"wrote {args.city} ({n_city} networks)" + (f", {args.asn} ({n_asn} networks)" if args.asn else ""),
          file=sys.stderr)


if __name__ == "__main__":
    main()
