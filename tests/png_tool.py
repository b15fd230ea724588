#!/usr/bin/env python3
# png_tool.py - PNG helpers for the shell tests: IHDR size, a hash of the
# decoded pixel data (IDAT only, so provenance text such as the creation
# time does not count), splicing pixels into another file, rewriting a
# text chunk, writing a plain checkerboard PNG.
# rawhash hashes the unfiltered 8-bit pixels, optionally only columns
# [X0, X0 + W) (e.g. one side of a gambar-eval closest pair), so images
# encoded with different PNG filters compare by their pixels.
#   png_tool.py size FILE | pixhash FILE | splice TEXTS PIXELS OUT |
#               retext FILE KEY VALUE OUT | plain OUT | plain56rgb OUT |
#               rawhash FILE [X0 W]
import sys, struct, zlib, hashlib
def chunks(p):
    d = open(p, 'rb').read(); i = 8; out = []
    while i < len(d):
        n, = struct.unpack('>I', d[i:i+4]); t = d[i+4:i+8]; out.append((t, d[i+8:i+8+n])); i += 12 + n
    return out
def pixels(p):
    c = chunks(p); ihdr = c[0][1]
    return ihdr, zlib.decompress(b''.join(x for t, x in c if t == b'IDAT'))
def raw(p):   # 8-bit, non-interlaced: width, height, channels, rows of bytes
    ihdr, d = pixels(p)
    w, h, depth, ct = struct.unpack('>IIBB', ihdr[:10])
    assert depth == 8 and ihdr[12] == 0, 'only 8-bit non-interlaced PNGs'
    c = {0: 1, 2: 3, 4: 2, 6: 4}[ct]; stride = w * c; rows = []; prev = bytearray(stride); i = 0
    for _ in range(h):
        f = d[i]; line = bytearray(d[i + 1:i + 1 + stride]); i += 1 + stride
        for x in range(stride):
            a = line[x - c] if x >= c else 0; b = prev[x]; cc = prev[x - c] if x >= c else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + b) & 255
            elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - cc), abs(a - cc), abs(a + b - 2 * cc)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else cc)) & 255
        rows.append(bytes(line)); prev = line
    return w, h, c, rows
cmd = sys.argv[1]
if cmd == 'size':
    w, h = struct.unpack('>II', chunks(sys.argv[2])[0][1][:8]); print('%dx%d' % (w, h))
elif cmd == 'pixhash':
    print(hashlib.sha256(pixels(sys.argv[2])[1]).hexdigest())
elif cmd == 'rawhash':
    w, h, c, rows = raw(sys.argv[2])
    x0, n = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else (0, w)
    print(hashlib.sha256(b''.join(r[x0 * c:(x0 + n) * c] for r in rows)).hexdigest())
elif cmd == 'splice':   # text chunks of argv[2], pixels of argv[3] (changed), into argv[4]
    src, other = chunks(sys.argv[2]), chunks(sys.argv[3])
    def ch(t, x): return struct.pack('>I', len(x)) + t + x + struct.pack('>I', zlib.crc32(t + x))
    out = b'\x89PNG\r\n\x1a\n'
    for t, x in src:
        if t == b'IDAT': continue
        if t == b'IEND':
            for t2, x2 in other:
                if t2 == b'IDAT': out += ch(t2, x2)
        out += ch(t, x)
    open(sys.argv[4], 'wb').write(out)
elif cmd == 'retext':   # copy argv[2] to argv[5] with iTXt key argv[3] set to argv[4]
    def ch(t, x): return struct.pack('>I', len(x)) + t + x + struct.pack('>I', zlib.crc32(t + x))
    out = b'\x89PNG\r\n\x1a\n'
    for t, x in chunks(sys.argv[2]):
        if t == b'iTXt' and x.split(b'\0', 1)[0] == sys.argv[3].encode():
            x = sys.argv[3].encode() + b'\0\0\0\0\0' + sys.argv[4].encode()
        out += ch(t, x)
    open(sys.argv[5], 'wb').write(out)
elif cmd in ('plain', 'plain56rgb'):  # a gray checkerboard without text chunks (28x28),
    s = 1 if cmd == 'plain' else 2       # or the same scaled 2x as RGB (56x56)
    w = h = 28 * s
    px = lambda x, y: ((x // (4 * s) + y // (4 * s)) % 2) * 255
    if s == 1: rows = b''.join(b'\x00' + bytes(px(x, y) for x in range(w)) for y in range(h))
    else: rows = b''.join(b'\x00' + bytes(v for x in range(w) for v in (px(x, y),) * 3) for y in range(h))
    def ch(t, x): return struct.pack('>I', len(x)) + t + x + struct.pack('>I', zlib.crc32(t + x))
    open(sys.argv[2], 'wb').write(b'\x89PNG\r\n\x1a\n' + ch(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0 if s == 1 else 2, 0, 0, 0))
                                  + ch(b'IDAT', zlib.compress(rows)) + ch(b'IEND', b''))
