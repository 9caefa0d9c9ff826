#!/usr/bin/env python3
"""DDSketch oracle for Tests/SketchesTests: DataDog `ddsketch` (sketches-py) protobuf support.

Usage (JSON on stdin / stdout; doubles are sent as the 16 hex digits of their bits):
  sketches_ddsketch.py decode {"sketches":[{"hex":..., "qs":[0.5,0.9,0.99]}]}
      -> {"results":[{"count":c,"zeroCount":z,"quantiles":[...],"gamma":g}]}
  sketches_ddsketch.py encode {"relativeAccuracy":0.01,"values":[...],"qs":[...]}
      -> {"hex": DDSketchProto.to_proto(sketch).SerializeToString(), "quantiles":[...]}
"""
import json
import struct
import sys

from ddsketch import DDSketch

try:
    from ddsketch.pb.proto import DDSketchProto, pb
except ImportError as e:  # ddsketch's protobuf support needs the `protobuf` package
    sys.exit("ddsketch protobuf support unavailable (%s): run make deps "
             "(the venv needs the `protobuf` package next to `ddsketch`)" % e)


def bits(x):
    """Exact double as 16 hex digits of its IEEE bits (JSON readers may round decimals)."""
    return struct.pack(">d", float(x)).hex()


def cmd_decode(req):
    res = []
    for s in req["sketches"]:
        msg = pb.DDSketch()
        msg.ParseFromString(bytes.fromhex(s["hex"]))
        sk = DDSketchProto.from_proto(msg)
        res.append({"count": bits(sk.count), "zeroCount": bits(sk._zero_count), "gamma": bits(sk._mapping.gamma),
                    "quantiles": [bits(sk.get_quantile_value(q)) for q in s["qs"]]})
    return {"results": res}


def cmd_encode(req):
    sk = DDSketch(req["relativeAccuracy"])
    for v in req["values"]:
        sk.add(v)
    return {"hex": DDSketchProto.to_proto(sk).SerializeToString().hex(),
            "quantiles": [bits(sk.get_quantile_value(q)) for q in req["qs"]]}


def main():
    cmd = sys.argv[1]
    req = json.load(sys.stdin)
    json.dump({"decode": cmd_decode, "encode": cmd_encode}[cmd](req), sys.stdout)


if __name__ == "__main__":
    main()
