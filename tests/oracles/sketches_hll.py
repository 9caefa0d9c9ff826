#!/usr/bin/env python3
"""HLL oracle for Tests/SketchesTests: Apache DataSketches (Python `datasketches`).

Usage (JSON on stdin / stdout; doubles are sent as the 16 hex digits of their bits):
  sketches_hll.py build    {"lgK":12,"prefix":"item-","ns":[0,1,7]}
      -> {"<n>": {"hex": compact HLL_8 of prefix+str(i) for i<n, "updatable": hex, "estimate": e}}
  sketches_hll.py formats  {"lgK":12,"prefix":"x","n":1000}
      -> {"HLL_4": {"compact":hex,"updatable":hex,"estimate":e}, "HLL_6": ..., "HLL_8": ...}
  sketches_hll.py doubles  {"lgK":12,"bits":[16 hex digits of a double,...]} -> {"hex": compact}
  sketches_hll.py read     {"sketches":[hex,...]}
      -> {"results":[{"estimate":e,"compact":hex of reserialize,"lgK":k}]}
  sketches_hll.py union    {"lgK":12,"pairs":[[hexA,hexB],...]}
      -> {"results":[{"compact":hex of get_result(HLL_8) (taken before any estimate),
                      "estimate": result estimate, "unionEstimate": union.get_estimate()}]}
"""
import json
import struct
import sys

import datasketches as ds

def bits(x):
    """Exact double as 16 hex digits of its IEEE bits (JSON readers may round decimals)."""
    return struct.pack(">d", x).hex()


TYPES = {"HLL_4": ds.tgt_hll_type.HLL_4, "HLL_6": ds.tgt_hll_type.HLL_6, "HLL_8": ds.tgt_hll_type.HLL_8}


def build(lg_k, prefix, n, tgt=ds.tgt_hll_type.HLL_8):
    sk = ds.hll_sketch(lg_k, tgt)
    for i in range(n):
        sk.update(prefix + str(i))
    return sk


def cmd_build(req):
    out = {}
    for n in req["ns"]:
        sk = build(req["lgK"], req["prefix"], n)
        out[str(n)] = {"hex": sk.serialize_compact().hex(),
                       "updatable": sk.serialize_updatable().hex(),
                       "estimate": bits(sk.get_estimate())}
    return out


def cmd_formats(req):
    out = {}
    for name, tgt in TYPES.items():
        sk = build(req["lgK"], req["prefix"], req["n"], tgt)
        out[name] = {"compact": sk.serialize_compact().hex(),
                     "updatable": sk.serialize_updatable().hex(),
                     "estimate": bits(sk.get_estimate())}
        # an out-of-order (unioned) sketch of this type, composite estimator
        u = ds.hll_union(req["lgK"])
        u.update(sk)
        u.update(build(req["lgK"], req["prefix"] + "b", req["n"]))
        r = u.get_result(tgt)
        out[name + "_union"] = {"compact": r.serialize_compact().hex(),
                                "updatable": r.serialize_updatable().hex(),
                                "estimate": bits(r.get_estimate())}
    return out


def cmd_doubles(req):
    sk = ds.hll_sketch(req["lgK"], ds.tgt_hll_type.HLL_8)
    for b in req["bits"]:
        sk.update(struct.unpack(">d", bytes.fromhex(b))[0])
    return {"hex": sk.serialize_compact().hex()}


def cmd_read(req):
    res = []
    for h in req["sketches"]:
        sk = ds.hll_sketch.deserialize(bytes.fromhex(h))
        res.append({"estimate": bits(sk.get_estimate()), "compact": sk.serialize_compact().hex(),
                    "lgK": sk.lg_config_k})
    return {"results": res}


def cmd_union(req):
    res = []
    for a, b in req["pairs"]:
        u = ds.hll_union(req["lgK"])
        u.update(ds.hll_sketch.deserialize(bytes.fromhex(a)))
        u.update(ds.hll_sketch.deserialize(bytes.fromhex(b)))
        r = u.get_result(ds.tgt_hll_type.HLL_8)  # before any estimate: rebuild not yet run
        res.append({"compact": r.serialize_compact().hex(), "estimate": bits(r.get_estimate()),
                    "unionEstimate": bits(u.get_estimate())})
    return {"results": res}


def main():
    cmd = sys.argv[1]
    req = json.load(sys.stdin)
    fn = {"build": cmd_build, "doubles": cmd_doubles, "formats": cmd_formats, "read": cmd_read, "union": cmd_union}[cmd]
    json.dump(fn(req), sys.stdout)


if __name__ == "__main__":
    main()
