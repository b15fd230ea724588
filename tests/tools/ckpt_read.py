#!/usr/bin/env python3
"""ckpt_read.py - an independent reader of gambar checkpoint files (*.gck).

Written from the format description in proto/checkpoint.proto alone (no
gambar code, no protobuf library: the protobuf wire format is decoded by
hand), so that tests/t_ckpt_format.sh can prove the documented contract is
enough to read a checkpoint from another language. It doubles as an
example for operators.

    ckpt_read.py FILE          print every field in the canonical text form
                               of `ckpt_tool dump FILE`
    ckpt_read.py --tensor NAME FILE
                               print the tensor's values, one per line

Exit status: 0 ok, 3 the file is not a valid checkpoint (reason on stderr).
"""
import hashlib
import struct
import sys


class Bad(Exception):
    pass


def varint(buf, i):
    shift = 0
    v = 0
    while True:
        if i >= len(buf):
            raise Bad("truncated varint")
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            return v, i
        shift += 7
        if shift > 63:
            raise Bad("varint too long")


def fields(buf):
    """Yield (field number, wire type, value) for one message's bytes.
    value is an int for varint/fixed types, bytes for length-delimited."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 1:
            if i + 8 > len(buf):
                raise Bad("truncated fixed64")
            v = struct.unpack_from("<Q", buf, i)[0]
            i += 8
        elif wt == 2:
            n, i = varint(buf, i)
            if i + n > len(buf):
                raise Bad("truncated field")
            v = buf[i:i + n]
            i += n
        elif wt == 5:
            if i + 4 > len(buf):
                raise Bad("truncated fixed32")
            v = struct.unpack_from("<I", buf, i)[0]
            i += 4
        else:
            raise Bad("unsupported wire type %d" % wt)
        yield num, wt, v


def s64(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def f32(v):
    return struct.unpack("<f", struct.pack("<I", v))[0]


def f64(v):
    return struct.unpack("<d", struct.pack("<Q", v))[0]


def repeated_varints(wt, v):
    """A repeated int64 field entry: packed (bytes) or one varint."""
    if wt == 0:
        return [s64(v)]
    out, i = [], 0
    while i < len(v):
        x, i = varint(v, i)
        out.append(s64(x))
    return out


def repeated_fixed64(wt, v):
    if wt == 1:
        return [v]
    if len(v) % 8:
        raise Bad("packed fixed64 length")
    return list(struct.unpack("<%dQ" % (len(v) // 8), v))


# Field tables: number -> (name, kind). Kinds: u (varint), b (bool),
# s (string), y (bytes), f (float), d (double), i64 (int64).
MODEL = {1: ("family", "s"), 2: ("height", "u"), 3: ("width", "u"), 4: ("channels", "u"),
         5: ("g_mult", "u"), 6: ("d_mult", "u"), 7: ("z_dim", "u"), 8: ("conditional", "b"),
         9: ("num_classes", "u"), 11: ("embed_dim", "u"), 12: ("loss", "s"), 13: ("text_dim", "u")}
ADAM = {1: ("t", "u"), 2: ("lr", "f"), 3: ("beta1", "f"), 4: ("beta2", "f"), 5: ("eps", "f")}
STATE = {1: ("step", "u"), 2: ("epoch", "u"), 3: ("batches_seen", "u"), 4: ("images_seen", "u"),
         7: ("ema_decay", "f"), 8: ("seed", "u"), 10: ("next_batch_seq", "u"),
         11: ("wall_time_trained", "d"), 12: ("threads", "u")}
TOP = {5: ("command_line", "s"), 7: ("software_version", "s"), 8: ("created_unix", "i64"),
       4: ("dataset_digest", "y"), 6: ("parent_digest", "y")}
DEFAULT = {"u": 0, "b": False, "s": "", "y": b"", "f": 0.0, "d": 0.0, "i64": 0}


def scalar(kind, wt, v):
    want = {"u": 0, "b": 0, "i64": 0, "s": 2, "y": 2, "f": 5, "d": 1}[kind]
    if wt != want:
        raise Bad("wire type %d for a %s field" % (wt, kind))
    if kind == "b":
        return bool(v)
    if kind == "s":
        return v.decode("utf-8")
    if kind == "y":
        return bytes(v)
    if kind == "f":
        return f32(v)
    if kind == "d":
        return f64(v)
    if kind == "i64":
        return s64(v)
    return v


def decode(buf, table, extra=None):
    """Decode a message with a scalar field table; extra(num, wt, v, out)
    handles repeated/sub-message fields. Unknown fields are skipped."""
    out = {name: DEFAULT[kind] for name, kind in table.values()}
    for num, wt, v in fields(buf):
        if num in table:
            name, kind = table[num]
            out[name] = scalar(kind, wt, v)
        elif extra:
            extra(num, wt, v, out)
    return out


def read_checkpoint(path):
    data = open(path, "rb").read()
    if len(data) < 64:
        raise Bad("shorter than the 64-byte header")
    if data[:8] != b"GAMBARCK":
        raise Bad("bad magic")
    version, hsize, plen = struct.unpack_from("<IIQ", data, 8)
    if version != 1:
        raise Bad("format version %d" % version)
    if not 64 <= hsize <= 4096:
        raise Bad("bad header size")
    if len(data) != hsize + plen:
        raise Bad("file size %d, header says %d + %d" % (len(data), hsize, plen))
    payload = data[hsize:]
    if hashlib.sha256(payload).digest() != data[24:56]:
        raise Bad("payload SHA-256 mismatch")

    ck = {"header": (version, hsize, plen, data[24:56].hex()),
          "file_sha256": hashlib.sha256(data).hexdigest(),
          "tensors": [], "notes": [], "model": None, "state": None}

    def model_extra(num, wt, v, out):
        if num == 10:
            out.setdefault("class_names", []).append(v.decode("utf-8"))

    def state_extra(num, wt, v, out):
        if num in (5, 6):
            out["adam_g" if num == 5 else "adam_d"] = decode(v, ADAM)
        elif num == 9:
            r = {"name": "", "s": []}
            for n2, w2, v2 in fields(v):
                if n2 == 1:
                    r["name"] = v2.decode("utf-8")
                elif n2 == 2:
                    r["s"] += repeated_fixed64(w2, v2)
            out.setdefault("rngs", []).append(r)

    def top_extra(num, wt, v, out):
        if num == 1:
            ck["model"] = decode(v, MODEL, model_extra)
        elif num == 3:
            ck["state"] = decode(v, STATE, state_extra)
        elif num == 2:
            t = {"name": "", "shape": [], "data": b""}
            for n2, w2, v2 in fields(v):
                if n2 == 1:
                    t["name"] = v2.decode("utf-8")
                elif n2 == 2:
                    t["shape"] += repeated_varints(w2, v2)
                elif n2 == 3:
                    t["data"] = bytes(v2)
            n = 1
            for s in t["shape"]:
                n *= s
            if len(t["data"]) != 4 * n:
                raise Bad("tensor %s: %d bytes for shape %s" % (t["name"], len(t["data"]), t["shape"]))
            ck["tensors"].append(t)
        elif num == 9:
            kv = {1: "", 2: ""}
            for n2, w2, v2 in fields(v):
                kv[n2] = v2.decode("utf-8")
            ck["notes"].append((kv[1], kv[2]))

    ck["top"] = decode(payload, TOP, top_extra)
    if ck["model"] is None or ck["state"] is None:
        raise Bad("model or state missing")
    return ck


def dump(ck):
    v, hs, pl, psha = ck["header"]
    p = print
    p("version %d\nheader_size %d\npayload_len %d\npayload_sha256 %s" % (v, hs, pl, psha))
    p("file_sha256 %s" % ck["file_sha256"])
    m = ck["model"]
    for k in ("family", "height", "width", "channels", "g_mult", "d_mult", "z_dim"):
        p("model.%s %s" % (k, m[k]))
    p("model.conditional %d" % int(m["conditional"]))
    p("model.num_classes %d" % m["num_classes"])
    for c in m.get("class_names", []):
        p("model.class_name %s" % c)
    p("model.embed_dim %d\nmodel.loss %s" % (m["embed_dim"], m["loss"]))
    if m["text_dim"]:
        p("model.text_dim %d" % m["text_dim"])
    s = ck["state"]
    for k in ("step", "epoch", "batches_seen", "images_seen"):
        p("state.%s %d" % (k, s[k]))
    for k in ("adam_g", "adam_d"):
        a = s.get(k) or decode(b"", ADAM)
        p("state.%s %d %.9g %.9g %.9g %.9g" % (k, a["t"], a["lr"], a["beta1"], a["beta2"], a["eps"]))
    p("state.ema_decay %.9g\nstate.seed %d" % (s["ema_decay"], s["seed"]))
    for r in s.get("rngs", []):
        p("state.rng %s %s" % (r["name"], " ".join("%016x" % w for w in r["s"])))
    p("state.next_batch_seq %d\nstate.wall_time_trained %.17g" % (s["next_batch_seq"], s["wall_time_trained"]))
    p("state.threads %d" % s["threads"])
    for t in ck["tensors"]:
        shape = "x".join(str(d) for d in t["shape"]) if t["shape"] else "scalar"
        p("tensor %s shape %s bytes %d sha256 %s" % (t["name"], shape, len(t["data"]),
                                                     hashlib.sha256(t["data"]).hexdigest()))
    top = ck["top"]
    p("dataset_digest %s" % (top["dataset_digest"].hex() or "-"))
    p("parent_digest %s" % (top["parent_digest"].hex() or "-"))
    p("command_line %s\nsoftware_version %s\ncreated_unix %d" % (top["command_line"], top["software_version"], top["created_unix"]))
    for k, val in ck["notes"]:
        p("note %s=%s" % (k, val))


def main(argv):
    try:
        if len(argv) == 4 and argv[1] == "--tensor":
            ck = read_checkpoint(argv[3])
            for t in ck["tensors"]:
                if t["name"] == argv[2]:
                    for x in struct.unpack("<%df" % (len(t["data"]) // 4), t["data"]):
                        print("%.9g" % x)
                    return 0
            raise Bad("no tensor %s" % argv[2])
        if len(argv) != 2:
            print(__doc__, file=sys.stderr)
            return 2
        dump(read_checkpoint(argv[1]))
        return 0
    except Bad as e:
        print("ckpt_read.py: %s: %s" % (argv[-1], e), file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv))
