#!/usr/bin/env python3
"""check-layers.py - enforce which parts of the tree may include which.

common/ is layered; each layer lists the layers it may include:
  core  errors, logging, memory, RNG, signals, CLI, digests, protobuf decode
  nn    tensors, layers, models, metrics math        -> core
  img   PNG decode/encode, provenance chunks         -> core
  io    LMDB datasets, checkpoint files              -> core, nn, img
  msg   ZeroMQ + protobuf envelope                   -> core
Generated protobuf headers (*.pb-c.h) are for io and msg only. common/
never includes a stage (stages/*) or a test helper (tests/lib). A stage may
include common/ and its own folder, never another stage's.

Usage: check-layers.py [ROOT]   prints one line per violation, exits 1 if any.
"""
import os
import re
import sys

ALLOWED = {
    "core": {"core"},
    "nn": {"core", "nn"},
    "img": {"core", "img"},
    "io": {"core", "nn", "img", "io"},
    "msg": {"core", "msg"},
}
PB_OK = {"io", "msg"}
INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    root = os.path.abspath(root)
    where = {}  # header name -> list of owners ("common/nn", "stages/eval", "tests/lib")
    for top in ("common", "stages", "tests/lib"):
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in files:
                if f.endswith(".h"):
                    where.setdefault(f, []).append(os.path.relpath(d, root))
    bad = []
    layers = sorted(os.listdir(os.path.join(root, "common")))
    for layer in layers:
        ldir = os.path.join(root, "common", layer)
        if not os.path.isdir(ldir):
            bad.append("common/%s: a file directly in common/ (put it in a layer)" % layer)
            continue
        if layer not in ALLOWED:
            bad.append("common/%s: unknown layer (add it to scripts/check-layers.py)" % layer)
            continue
        for f in sorted(os.listdir(ldir)):
            path = os.path.join("common", layer, f)
            with open(os.path.join(root, path), encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    m = INC.match(line)
                    if not m:
                        continue
                    h = m.group(1)
                    if h.endswith(".pb-c.h"):
                        if layer not in PB_OK:
                            bad.append("%s:%d: %s layer includes generated %s" % (path, n, layer, h))
                        continue
                    owners = where.get(os.path.basename(h), [])
                    if not owners:
                        bad.append("%s:%d: includes %s, which is not in the tree" % (path, n, h))
                        continue
                    owner = owners[0]
                    if not owner.startswith("common/"):
                        bad.append("%s:%d: common includes %s from %s" % (path, n, h, owner))
                        continue
                    to = owner.split("/")[1]
                    if to not in ALLOWED[layer]:
                        bad.append("%s:%d: %s layer includes %s (%s layer); allowed: %s"
                                   % (path, n, layer, h, to, ", ".join(sorted(ALLOWED[layer]))))
    sdir = os.path.join(root, "stages")
    for stage in sorted(os.listdir(sdir)):
        for f in sorted(os.listdir(os.path.join(sdir, stage))):
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join("stages", stage, f)
            with open(os.path.join(root, path), encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    m = INC.match(line)
                    if not m:
                        continue
                    owners = where.get(os.path.basename(m.group(1)), [])
                    if owners and owners[0].startswith("stages/") and owners[0] != "stages/" + stage:
                        bad.append("%s:%d: includes %s from another stage (%s)" % (path, n, m.group(1), owners[0]))
                    if owners and owners[0] == "tests/lib":
                        bad.append("%s:%d: a stage includes the test helper %s" % (path, n, m.group(1)))
    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
