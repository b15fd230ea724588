#!/usr/bin/python3
"""dash_tb_check.py DIR PYOUT - decode every TensorBoard event file in DIR
(test helper for t_dash_tb.sh) with Google's protobuf runtime and the
classes protoc generated from proto/tensorboard.proto into PYOUT. Checks
the TFRecord framing and both masked CRC-32C of every record (CRC computed
here, bit by bit, independently of gambar's table code), that the first
record is file_version "brain.Event:2", and prints one line per summary:
    scalar TAG STEP VALUE
    image TAG STEP WIDTHxHEIGHT COLORSPACE SHA256
Exit 1 with the reason on any framing, CRC or decoding error."""
import glob
import hashlib
import struct
import sys

sys.path.insert(0, sys.argv[2])
import tensorboard_pb2  # noqa: E402


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value

files = sorted(glob.glob(sys.argv[1] + "/events.out.tfevents.*"))
if not files:
    sys.exit("no event file in " + sys.argv[1])
records = 0
for path in files:
    data = open(path, "rb").read()
    off = 0
    first = True
    while off < len(data):
        if off + 12 > len(data):
            sys.exit("%s: torn header at %d" % (path, off))
        (n,) = struct.unpack_from("<Q", data, off)
        (hcrc,) = struct.unpack_from("<I", data, off + 8)
        if hcrc != masked(crc32c(data[off:off + 8])):
            sys.exit("%s: bad length CRC at %d" % (path, off))
        if off + 12 + n + 4 > len(data):
            sys.exit("%s: torn record at %d" % (path, off))
        body = data[off + 12:off + 12 + n]
        (dcrc,) = struct.unpack_from("<I", data, off + 12 + n)
        if dcrc != masked(crc32c(body)):
            sys.exit("%s: bad data CRC at %d" % (path, off))
        off += 12 + n + 4
        records += 1
        ev = tensorboard_pb2.Event()
        ev.ParseFromString(body)
        if first:
            if ev.WhichOneof("what") != "file_version" or ev.file_version != "brain.Event:2":
                sys.exit("%s: first record is not file_version brain.Event:2: %s" % (path, ev))
            if ev.wall_time <= 0:
                sys.exit("%s: first record has no wall_time" % path)
            first = False
            continue
        if ev.WhichOneof("what") != "summary":
            sys.exit("%s: record at %d is not a summary" % (path, off))
        for v in ev.summary.value:
            kind = v.WhichOneof("value")
            if kind == "simple_value":
                print("scalar %s %d %.9g" % (v.tag, ev.step, v.simple_value))
            elif kind == "image":
                im = v.image
                print("image %s %d %dx%d %d %s" % (v.tag, ev.step, im.width, im.height, im.colorspace,
                                                   hashlib.sha256(im.encoded_image_string).hexdigest()))
            else:
                sys.exit("%s: summary value of kind %s" % (path, kind))
print("records %d files %d" % (records, len(files)))
