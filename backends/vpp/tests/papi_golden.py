#!/usr/bin/env python3
"""Golden bytes from vpp_papi (VPP's own Python client) for the Rust golden-bytes test.

stdin:  {"apidir": "<dir with core/ and plugins/>", "cases": [{"msg": name, "fields": {...}}]}
stdout: {"hex": ["<packed message>", ...], "papi": "<vpp_papi version>"}

Fields are given the way vpp_papi takes them (MAC and prefixes as strings, counts explicit),
so this side shares no code and no convention with the Rust encoder.
"""
import glob
import json
import os
import sys

try:
    from vpp_papi.vpp_papi import VPPApiJSONFiles
except ImportError:
    sys.exit("vpp_papi is not installed: pip install vpp-papi (scripts/setup.sh does)")


def main():
    req = json.load(sys.stdin)
    files = sorted(glob.glob(os.path.join(req["apidir"], "*", "*.api.json")))
    _, messages, _ = VPPApiJSONFiles.load_api(apifiles=files)
    out = []
    for case in req["cases"]:
        msg = messages[case["msg"]]
        fields = dict(case["fields"])
        b = msg.pack(fields)
        # vpp_papi must read its own bytes back, or the case itself is wrong.
        msg.unpack(b)
        out.append(b.hex())
    try:
        from importlib.metadata import version

        v = version("vpp_papi")
    except Exception:  # noqa: BLE001 - the version is informative only
        v = "unknown"
    json.dump({"hex": out, "papi": v}, sys.stdout)


if __name__ == "__main__":
    main()
