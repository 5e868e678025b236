#!/usr/bin/env python3
"""Generate backends/vpp/src/api/messages.rs from VPP's .api.json definitions.

Run at development time when the VPP release or the message list changes; the output is
committed, so the build never reads these files (a clean clone builds without them).

    python3 scripts/vpp-gen-messages.py            # rewrite the file
    python3 scripts/vpp-gen-messages.py --check    # exit 1 if the committed file is stale

Only the standard library is used. The layout rules (packed, big-endian, NUL-padded fixed
strings, u32-length variable strings, arrays counted by an earlier field) are those of
vppapigen's C output and vpp_papi's serializer; the golden-bytes test checks the result against
vpp_papi itself.
"""
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API_DIR = os.path.join(ROOT, "backends", "vpp", "api")
OUT = os.path.join(ROOT, "backends", "vpp", "src", "api", "messages.rs")

VPP_RELEASE = "v26.06"
VPP_COMMIT = "c3200b88dc46bd380f00a49ca3392a102cc1980b"

# (request, reply): every message the backend sends or parses. A dump's reply is its details
# message (the dump ends with control_ping_reply).
PAIRS = [
    ("sockclnt_create", "sockclnt_create_reply"),
    ("sockclnt_delete", "sockclnt_delete_reply"),
    ("control_ping", "control_ping_reply"),
    ("show_version", "show_version_reply"),
    ("memif_socket_filename_add_del_v2", "memif_socket_filename_add_del_v2_reply"),
    ("memif_socket_filename_dump", "memif_socket_filename_details"),
    ("memif_create_v2", "memif_create_v2_reply"),
    ("memif_delete", "memif_delete_reply"),
    ("memif_dump", "memif_details"),
    ("sw_interface_set_flags", "sw_interface_set_flags_reply"),
    ("sw_interface_tag_add_del", "sw_interface_tag_add_del_reply"),
    ("sw_interface_dump", "sw_interface_details"),
    ("sw_interface_add_del_address", "sw_interface_add_del_address_reply"),
    ("ip_address_dump", "ip_address_details"),
    ("bridge_domain_add_del_v2", "bridge_domain_add_del_v2_reply"),
    ("bridge_domain_dump", "bridge_domain_details"),
    ("sw_interface_set_l2_bridge", "sw_interface_set_l2_bridge_reply"),
    ("create_vhost_user_if_v2", "create_vhost_user_if_v2_reply"),
    ("delete_vhost_user_if", "delete_vhost_user_if_reply"),
    ("sw_interface_vhost_user_dump", "sw_interface_vhost_user_details"),
]

RUST_KEYWORDS = {"type", "mod", "match", "ref", "loop", "move", "fn", "impl", "use", "where", "self"}
INTS = {"u8": 1, "i8": 1, "u16": 2, "i16": 2, "u32": 4, "i32": 4, "u64": 8, "i64": 8, "f64": 8, "bool": 1}


def load():
    messages, types, enums, aliases, unions, files = {}, {}, {}, {}, {}, {}
    for path in sorted(glob.glob(os.path.join(API_DIR, "*", "*.api.json"))):
        with open(path) as f:
            j = json.load(f)
        rel = os.path.relpath(path, API_DIR)
        for m in j.get("messages", []):
            messages[m[0]] = m
            files[m[0]] = rel
        for t in j.get("types", []):
            types[t[0]] = t
        for e in j.get("enums", []) + j.get("enumflags", []):
            enums[e[0]] = e
        for u in j.get("unions", []):
            unions[u[0]] = u
        for name, a in j.get("aliases", {}).items():
            aliases[name] = a
    return messages, types, enums, aliases, unions, files


def camel(name):
    return "".join(p[:1].upper() + p[1:] for p in name.split("_"))


def field_name(n):
    return "r#" + n if n in RUST_KEYWORDS else n


class Gen:
    def __init__(self):
        self.messages, self.types, self.enums, self.aliases, self.unions, self.files = load()
        self.structs_needed = []  # type names, in dependency order
        self.out = []

    def strip(self, t):
        if t.startswith("vl_api_") and t.endswith("_t"):
            return t[len("vl_api_"):-2]
        return t

    def union_size(self, name):
        u = self.unions[name]
        size = 0
        for f in u[1:]:
            if isinstance(f, list):
                size = max(size, self.size_of(f[0], f[2] if len(f) > 2 and isinstance(f[2], int) else None))
        return size

    def size_of(self, t, n=None):
        kind, info = self.resolve(t)
        if kind == "int":
            base = INTS[info]
        elif kind == "bytes":
            base = info
        elif kind == "struct":
            base = sum(self.size_of(f[0], f[2] if len(f) > 2 and isinstance(f[2], int) else None)
                       for f in self.types[info][1:] if isinstance(f, list))
        elif kind == "union":
            base = self.union_size(info)
        else:
            raise SystemExit("size of %s" % t)
        return base * (n or 1)

    def resolve(self, t):
        """('int', 'u32') | ('bytes', N) | ('struct', name) | ('union', name) | ('string', None)"""
        if t in INTS:
            return ("int", t)
        if t == "string":
            return ("string", None)
        name = self.strip(t)
        if name in self.aliases:
            a = self.aliases[name]
            if "length" in a:
                if a["type"] != "u8":
                    raise SystemExit("alias array of %s unsupported" % a["type"])
                return ("bytes", a["length"])
            return self.resolve(a["type"])
        if name in self.enums:
            return ("int", self.enums[name][-1]["enumtype"])
        if name in self.types:
            return ("struct", name)
        if name in self.unions:
            return ("union", name)
        raise SystemExit("unknown type %s" % t)

    def need_struct(self, name):
        if name in self.structs_needed:
            return
        for f in self.types[name][1:]:
            if isinstance(f, list):
                k, info = self.resolve(f[0])
                if k == "struct":
                    self.need_struct(info)
        self.structs_needed.append(name)

    def fields(self, defn, is_message):
        """[(name, kind, info, array_len, count_field)] without _vl_msg_id; count fields marked."""
        raw = [f for f in defn[1:] if isinstance(f, list)]
        if is_message:
            if raw[0] != ["u16", "_vl_msg_id"]:
                raise SystemExit("%s does not start with _vl_msg_id" % defn[0])
            raw = raw[1:]
        counted = {f[3] for f in raw if len(f) > 3 and isinstance(f[3], str)}
        out = []
        for f in raw:
            t, n = f[0], f[1]
            arr = f[2] if len(f) > 2 and isinstance(f[2], int) else None
            count = f[3] if len(f) > 3 and isinstance(f[3], str) else None
            kind, info = self.resolve(t)
            if kind == "struct":
                self.need_struct(info)
            out.append({"name": n, "kind": kind, "info": info, "arr": arr, "count": count,
                        "is_count": n in counted, "type": t})
        return out

    def rust_type(self, f):
        kind, info, arr = f["kind"], f["info"], f["arr"]
        if kind == "string":
            return "String"
        if f["count"] is not None or arr == 0:
            elem = self.elem_type(kind, info)
            return "Vec<%s>" % elem
        elem = self.elem_type(kind, info)
        if arr:
            return "[%s; %d]" % (elem, arr)
        return elem

    def elem_type(self, kind, info):
        if kind == "int":
            return info
        if kind == "bytes":
            return "[u8; %d]" % info
        if kind == "struct":
            return camel(info)
        if kind == "union":
            return "[u8; %d]" % self.union_size(info)
        raise SystemExit(kind)

    def encode_one(self, kind, info, expr, fname):
        if kind == "int":
            return ["w.%s(%s);" % (info, expr)]
        if kind in ("bytes", "union"):
            return ["w.bytes(&%s);" % expr]
        if kind == "struct":
            return ["%s.encode(w)?;" % expr]
        raise SystemExit(kind)

    def decode_one(self, kind, info, fname):
        if kind == "int":
            return 'r.%s("%s")?' % (info, fname)
        if kind == "bytes":
            return 'r.bytes::<%d>("%s")?' % (info, fname)
        if kind == "union":
            return 'r.bytes::<%d>("%s")?' % (self.union_size(info), fname)
        if kind == "struct":
            return "%s::decode(r)?" % camel(info)
        raise SystemExit(kind)

    def emit_body(self, fields, self_prefix="self."):
        enc, dec, names = [], [], []
        by_name = {f["name"]: f for f in fields}
        for f in fields:
            n, kind, info, arr = f["name"], f["kind"], f["info"], f["arr"]
            rn = field_name(n)
            if f["is_count"]:
                # Written from the length of the array it counts; read into a local.
                arrays = [g for g in fields if g["count"] == n]
                target = arrays[0]
                width = info
                enc.append('w.count_%s("%s", %s%s.len())?;' % (width, n, self_prefix, field_name(target["name"])))
                dec.append('let %s = r.%s("%s")? as usize;' % ("count_" + n, width, n))
                continue
            names.append(rn)
            if kind == "string":
                if arr:
                    enc.append('w.fixed_string("%s", &%s%s, %d)?;' % (n, self_prefix, rn, arr))
                    dec.append('let %s = r.fixed_string("%s", %d)?;' % (rn, n, arr))
                else:
                    enc.append('w.var_string("%s", &%s%s)?;' % (n, self_prefix, rn))
                    dec.append('let %s = r.var_string("%s")?;' % (rn, n))
                continue
            if f["count"] is not None:
                enc.append("for e in &%s%s {" % (self_prefix, rn))
                enc += ["    " + line for line in self.encode_one(kind, info, "(*e)" if kind == "int" else "e", n)]
                enc.append("}")
                # Never trust a count from the wire for an allocation: grow as elements arrive.
                dec.append("let mut %s = Vec::new();" % rn)
                dec.append("for _ in 0..count_%s {" % f["count"])
                dec.append("    %s.push(%s);" % (rn, self.decode_one(kind, info, n)))
                dec.append("}")
                continue
            if arr:
                if kind == "int":
                    enc.append("for e in %s%s {" % (self_prefix, rn))
                    enc.append("    w.%s(e);" % info)
                    enc.append("}")
                    dec.append("let mut %s = [0%s; %d];" % (rn, info, arr))
                    dec.append("for e in %s.iter_mut() {" % rn)
                    dec.append('    *e = r.%s("%s")?;' % (info, n))
                    dec.append("}")
                    continue
                raise SystemExit("fixed array of %s unsupported (%s)" % (kind, n))
            enc += self.encode_one(kind, info, self_prefix + rn, n)
            dec.append("let %s = %s;" % (rn, self.decode_one(kind, info, n)))
        return enc, dec, names

    def emit_struct(self, name, fields, doc, derive_default=True):
        o = self.out
        o.append("/// %s" % doc)
        o.append("#[derive(Debug, Clone, PartialEq%s)]" % (", Default" if derive_default else ""))
        o.append("pub struct %s {" % camel(name))
        for f in fields:
            if f["is_count"]:
                continue
            o.append("    pub %s: %s," % (field_name(f["name"]), self.rust_type(f)))
        o.append("}")
        o.append("")

    def default_ok(self, fields):
        for f in fields:
            t = self.rust_type(f) if not f["is_count"] else "u32"
            if t.startswith("[u8; ") and int(t[5:-1]) > 32:
                return False
        return True

    def gen_type(self, name):
        fields = self.fields(self.types[name], False)
        self.emit_struct(name, fields, "`vl_api_%s_t` (a type used inside messages)." % name, self.default_ok(fields))
        enc, dec, names = self.emit_body(fields)
        o = self.out
        o.append("impl %s {" % camel(name))
        o.append("    pub fn encode(&self, w: &mut Writer) -> Result<(), WireError> {")
        o += ["        " + line for line in enc]
        o.append("        Ok(())")
        o.append("    }")
        o.append("")
        o.append("    pub fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {")
        o += ["        " + line for line in dec]
        o.append("        Ok(%s { %s })" % (camel(name), ", ".join(names)))
        o.append("    }")
        o.append("}")
        o.append("")

    def gen_message(self, name):
        m = self.messages[name]
        meta = m[-1]
        crc = meta["crc"]
        fields = self.fields(m, True)
        self.emit_struct(name, fields, "`%s_%s` (%s)." % (name, crc[2:], self.files[name]), self.default_ok(fields))
        enc, dec, names = self.emit_body(fields)
        o = self.out
        o.append("impl Message for %s {" % camel(name))
        o.append('    const NAME: &\'static str = "%s";' % name)
        o.append('    const CRC: &\'static str = "%s";' % crc[2:])
        o.append("")
        o.append("    fn encode_body(&self, w: &mut Writer) -> Result<(), WireError> {")
        o += ["        " + line for line in enc]
        o.append("        Ok(())")
        o.append("    }")
        o.append("")
        o.append("    fn decode_body(r: &mut Reader<'_>) -> Result<Self, WireError> {")
        o += ["        " + line for line in dec]
        o.append("        Ok(%s { %s })" % (camel(name), ", ".join(names)))
        o.append("    }")
        o.append("}")
        o.append("")
        plain = [f["name"] for f in fields]
        if name in ("sockclnt_create", "sockclnt_create_reply"):
            # The handshake's header is unlike any other (no client_index in the request,
            # client_index before context in the reply): the client handles it by hand.
            pass
        elif plain[:2] == ["client_index", "context"]:
            o.append("impl Request for %s {" % camel(name))
            o.append("    fn set_header(&mut self, client_index: u32, context: u32) {")
            o.append("        self.client_index = client_index;")
            o.append("        self.context = context;")
            o.append("    }")
            o.append("}")
            o.append("")
        elif "context" in plain:
            o.append("impl Reply for %s {" % camel(name))
            o.append("    fn retval(&self) -> i32 {")
            if "retval" in plain:
                o.append("        self.retval")
            elif "response" in plain:
                o.append("        self.response")
            else:
                o.append("        0")
            o.append("    }")
            o.append("}")
            o.append("")

    def run(self):
        names = [n for pair in PAIRS for n in pair]
        # Resolve structs first (fields() records them), then emit types before messages.
        for n in names:
            self.fields(self.messages[n], True)
        o = self.out
        o.append("//! VPP %s binary-API messages used by the backend, generated by scripts/vpp-gen-messages.py" % VPP_RELEASE)
        o.append("//! from backends/vpp/api/*.api.json; never edit by hand (regenerate and commit instead).")
        o.append("")
        o.append("#![allow(clippy::all)]")
        o.append("")
        o.append("use super::wire::{Reader, WireError, Writer};")
        o.append("use super::{Message, Reply, Request};")
        o.append("")
        o.append("/// The VPP release these definitions come from, and its commit.")
        o.append('pub const VPP_RELEASE: &str = "%s";' % VPP_RELEASE)
        o.append('pub const VPP_COMMIT: &str = "%s";' % VPP_COMMIT)
        o.append("")
        o.append("/// `(name, crc)` of every message the backend uses: all must be in VPP's table at connect.")
        o.append("pub const USED: &[(&str, &str)] = &[")
        for n in names:
            o.append('    ("%s", "%s"),' % (n, self.messages[n][-1]["crc"][2:]))
        o.append("];")
        o.append("")
        # Enum constants the backend refers to.
        for e in ["memif_role", "memif_mode", "if_status_flags", "l2_port_type", "address_family"]:
            defn = self.enums[e]
            for v in defn[1:-1]:
                o.append("pub const %s: %s = %d;" % (v[0], defn[-1]["enumtype"], v[1]))
        o.append("")
        for t in self.structs_needed:
            self.gen_type(t)
        for n in names:
            self.gen_message(n)
        return "\n".join(o).rstrip() + "\n"


def main():
    text = Gen().run()
    if "--check" in sys.argv:
        with open(OUT) as f:
            current = f.read()
        if current != text:
            print("%s is stale: run python3 scripts/vpp-gen-messages.py" % OUT, file=sys.stderr)
            return 1
        return 0
    with open(OUT, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
