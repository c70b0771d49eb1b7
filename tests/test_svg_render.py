#!/usr/bin/env python3
"""test_svg_render.py PPCC [PPRUN] — the pictures open in a browser: headless
Chromium (Debian's `chromium` package) renders `ppcc --svg` and `--html` of
a shipped schedule to PNG; the PNG is not blank (many colours, much of it
drawn) and shows one lane per device where the SVG puts them (inside each
lane drawn, between two lanes the white background); with PPRUN, the same
for `ppcc --svg --measured` of a pprun run: two panels, each with its lanes.

Skips (77) where no Chromium is installed or it cannot start.
Run from the build tree's test harness with PP_SOURCE_ROOT set.
"""
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zlib

PPCC = sys.argv[1]
PPRUN = sys.argv[2] if len(sys.argv) > 2 else None
SRC = os.environ["PP_SOURCE_ROOT"]
SVG = "{http://www.w3.org/2000/svg}"

browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
if not browser:
    print("no chromium: skipped (apt-get install chromium)")
    sys.exit(77)


def read_png(path):
    """(width, height, rows of (r, g, b)) of an 8-bit RGB/RGBA PNG."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, head = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, color, _, _, interlace = head
    assert depth == 8 and color in (2, 6) and not interlace, "unexpected PNG format %s" % (head,)
    bpp = 3 if color == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), w * bpp, [], bytearray(w * bpp)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(w)])
        prev = line
    return w, h, rows


fails = checks = 0


def fail(msg):
    global fails
    fails += 1
    print("FAIL: " + msg, file=sys.stderr)


def lanes_of(root):
    """(x, y, height) of every lane's background, panels' offsets added."""
    out = []

    def walk(g, dy):
        m = re.match(r"translate\(0,([\d.]+)\)", g.get("transform") or "")
        dy += float(m.group(1)) if m else 0
        if g.get("class") == "lane":
            bg = g.find(SVG + "rect")
            out.append((float(bg.get("x")), float(bg.get("y")) + dy, float(bg.get("height"))))
        for child in g.findall(SVG + "g"):
            walk(child, dy)

    walk(root, 0)
    return out


with tempfile.TemporaryDirectory() as tmp:
    sched = os.path.join(SRC, "schedules", "interleaved.pp")
    svg, page = os.path.join(tmp, "t.svg"), os.path.join(tmp, "t.html")
    r = subprocess.run([PPCC, sched, "--svg", svg, "--html", page], capture_output=True, text=True)
    if r.returncode:
        print(r.stderr)
        sys.exit(1)
    pictures = [(svg, 1), (page, 1)]
    if PPRUN:
        # the prediction and pprun's run in one picture (ppcc --measured): two panels
        plan, trace, both = (os.path.join(tmp, n) for n in ("plan.json", "run.json", "both.svg"))
        r = subprocess.run([PPCC, sched, "-o", plan], capture_output=True, text=True)
        r = r.returncode and r or subprocess.run([PPRUN, plan, "--backend", "cpu", "--trace", trace],
                                                 capture_output=True, text=True)
        r = r.returncode and r or subprocess.run([PPCC, sched, "--svg", both, "--measured", trace],
                                                 capture_output=True, text=True)
        if r.returncode:
            print(r.stderr)
            sys.exit(1)
        pictures.append((both, 2))
    for src, panels in pictures:
        root = ET.parse(svg if src == page else src).getroot()
        W, H = int(root.get("width")), int(root.get("height"))
        lanes = lanes_of(root)
        checks += 1
        if len(lanes) != panels * 4:
            fail("%s: %d lanes in the SVG, want %d panels of 4 devices" % (src, len(lanes), panels))
        png = os.path.join(tmp, "t.png")
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--window-size=%d,%d" % (W + 40, H + 40), "--screenshot=" + png, "file://" + src]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp)
        except subprocess.TimeoutExpired:
            run = None
        if run is None or run.returncode or not os.path.exists(png):
            print("%s cannot start here: skipped\n%s" % (browser, run.stderr[-2000:] if run else "timed out"))
            sys.exit(77)
        w, h, px = read_png(png)
        off = 16 if src == page else 0  # the page's body margin
        checks += 2
        colours = {c for row in px for c in row[::4]}
        drawn = sum(1 for row in px for c in row if c != (255, 255, 255))
        if len(colours) < 20 or drawn < w * h // 10:
            fail("%s: the render looks blank (%d colours, %d of %d pixels drawn)" % (src, len(colours), drawn, w * h))
        # Every lane drawn, and white between two lanes: one band per device.
        x = int(lanes[0][0]) + 3 + off
        for d, (_, y, hgt) in enumerate(lanes):
            inside = px[int(y + hgt / 2) + off][x]
            gap = px[int(y + hgt) + 3 + off][x] if d + 1 < len(lanes) else (255, 255, 255)
            if inside == (255, 255, 255) or gap != (255, 255, 255):
                fail("%s: lane %d not drawn as its own band (inside %s, below %s)" % (src, d, inside, gap))
        bands, last = 0, False
        first = lanes[:len(lanes) // panels]
        for yy in range(int(first[0][1]) - 2 + off, int(first[-1][1] + first[-1][2]) + 2 + off):
            on = px[yy][x] != (255, 255, 255)
            bands += on and not last
            last = on
        if bands != len(lanes) // panels:
            fail("%s: %d bands in the render, %d devices" % (src, bands, len(lanes) // panels))
        if panels > 1:  # the second panel's lanes, drawn too, one band each
            for d, (_, y, hgt) in enumerate(lanes[len(lanes) // 2:]):
                checks += 1
                if px[int(y + hgt / 2) + off][x] == (255, 255, 255) or px[int(y + hgt) + 3 + off][x] != (255, 255, 255):
                    fail("%s: the measured panel's lane %d is not drawn as its own band" % (src, d))

print("test_svg_render: %d checks, %d failed" % (checks, fails))
sys.exit(1 if fails else 0)
