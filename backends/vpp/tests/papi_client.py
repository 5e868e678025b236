#!/usr/bin/env python3
"""vpp_papi (VPP's own Python client) against the VPP simulator: connect, dumps, a memif create.

usage: papi_client.py <apidir> <api socket> <memif socket path>
Prints one JSON object with what VPP answered; exits non-zero on any error.
"""
import glob
import json
import os
import sys

try:
    from vpp_papi import VPPApiClient
except ImportError:
    sys.exit("vpp_papi is not installed: pip install vpp-papi (scripts/setup.sh does)")


def main():
    apidir, sock, memif_path = sys.argv[1:4]
    files = sorted(glob.glob(os.path.join(apidir, "*", "*.api.json")))
    vpp = VPPApiClient(apifiles=files, server_address=sock, read_timeout=5)
    vpp.connect("papi-test")
    out = {}
    try:
        out["version"] = vpp.api.show_version().version
        out["sockets_before"] = [s.socket_filename for s in vpp.api.memif_socket_filename_dump()]
        r = vpp.api.memif_socket_filename_add_del_v2(is_add=True, socket_id=0xFFFFFFFF, socket_filename=memif_path)
        assert r.retval == 0, r
        sid = r.socket_id
        out["socket_id"] = sid
        r = vpp.api.memif_create_v2(role=0, mode=0, socket_id=sid, id=0, ring_size=1024, buffer_size=2048)
        assert r.retval == 0, r
        idx = r.sw_if_index
        out["sw_if_index"] = idx
        r = vpp.api.sw_interface_tag_add_del(is_add=True, sw_if_index=idx, tag="papi-tag")
        assert r.retval == 0, r
        r = vpp.api.sw_interface_set_flags(sw_if_index=idx, flags=1)
        assert r.retval == 0, r
        memifs = vpp.api.memif_dump()
        out["memifs"] = [(m.sw_if_index, m.socket_id, int(m.role), m.if_name) for m in memifs]
        ifs = vpp.api.sw_interface_dump(sw_if_index=0xFFFFFFFF)
        out["interfaces"] = [(i.sw_if_index, i.interface_name, i.tag, int(i.flags)) for i in ifs]
        r = vpp.api.bridge_domain_add_del_v2(bd_id=3, flood=True, uu_flood=True, forward=True, learn=True, is_add=True)
        assert r.retval == 0, r
        r = vpp.api.sw_interface_set_l2_bridge(rx_sw_if_index=idx, bd_id=3, enable=True)
        assert r.retval == 0, r
        bds = vpp.api.bridge_domain_dump(bd_id=3)
        out["bd_members"] = [m.sw_if_index for b in bds for m in b.sw_if_details]
        r = vpp.api.sw_interface_add_del_address(sw_if_index=idx, is_add=True, prefix="10.9.0.1/24")
        assert r.retval == 0, r
        out["addresses"] = [str(a.prefix) for a in vpp.api.ip_address_dump(sw_if_index=idx, is_ipv6=False)]
        r = vpp.api.bridge_domain_add_del_v2(bd_id=0, is_add=True)
        out["bd0_retval"] = r.retval
        r = vpp.api.memif_delete(sw_if_index=idx)
        assert r.retval == 0, r
        r = vpp.api.memif_delete(sw_if_index=idx)
        out["second_delete_retval"] = r.retval
    finally:
        vpp.disconnect()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
