#!/usr/bin/env python3
"""Chunking / compression-granularity measurement for lumina-backup (independent of the Rust code).

usage: chunking_experiment.py ITEMS [--work /tmp/lumina-bench] [--jobs 2] [--only NAME,...] [--json OUT]

Needs the states made by /work/shared/bench/baseline.sh naming: WORK/s{0,1,2}-ITEMS.db
(S0 = gen_db.py --items ITEMS; S1 = S0 + mutate 1000 updates/1000 inserts seed 11; S2 = S1 + 100 updates seed 12).
pip install zstandard blake3 numpy fastcdc   (fastcdc >= 1.7 ships a Cython build; pure-Python fallback is slow)

For each chunker, a chunk is "new" when its blake3 id was not seen in any earlier state (nor earlier in the same
state). Reported per state: number of chunk references, new chunks, raw new bytes, new bytes compressed
  (a) zstd-3 per chunk (raw kept when compression does not shrink it),
  (b) zstd-3 per ~256 KiB frame: the new chunks, in file order, packed into frames closed once >= 256 KiB raw
      (a chunk never straddles frames); raw kept when a frame does not shrink,
and chunk-list metadata: flat list = 36 B x references; content-defined Merkle tree over (32 B id + 4 B len)
entries, node cut after an entry whose id's first u32 (LE) & (fanout-1) == 0, max 4 x fanout entries,
upper levels the same over node ids, until a single root; new tree bytes = bytes of nodes whose id is new.
"""
import argparse, json, mmap, os, struct, sys, time
from multiprocessing import Pool

import blake3
import numpy as np
import zstandard

PAGE = 4096
FRAME = 256 * 1024
FRAMES = (FRAME, 1024 * 1024)  # 1 MiB frames: extra beyond the brief
FANOUTS = (8, 16, 32, 64)  # 8 is an extra beyond the brief (16, 32, 64)
ENTRY = 36


def chunkers():
    out = [("page", ("page", 1))]
    for avg in (2, 4, 8):
        out.append((f"page-cdc avg {avg}p", ("pagecdc", avg)))
    for avg in (4, 8, 16, 64):
        out.append((f"fastcdc avg {avg}K", ("fastcdc", avg * 1024)))
    return out


def load(path):
    f = open(path, "rb")
    return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def page_hash64(mv):
    n = len(mv) // PAGE
    h = np.empty(n, dtype=np.uint64)
    for i in range(n):
        h[i] = int.from_bytes(blake3.blake3(mv[i * PAGE:(i + 1) * PAGE]).digest(8), "little")
    return h


def cut_ends(kind, arg, mv):
    """Return chunk end offsets (list of ints) covering the whole buffer."""
    size = len(mv)
    if kind == "page":
        ends = list(range(PAGE, size + 1, PAGE))
    elif kind == "pagecdc":
        h = page_hash64(mv)
        mask = np.uint64(arg - 1)
        cut = (h & mask) == 0
        ends = []
        run = 0
        for i, c in enumerate(cut.tolist()):
            run += 1
            if c or run >= 64:
                ends.append((i + 1) * PAGE)
                run = 0
    elif kind == "fastcdc":
        from fastcdc import fastcdc
        ends = [c.offset + c.length for c in fastcdc(mv, min_size=arg // 4, avg_size=arg, max_size=arg * 4)]
    else:
        raise ValueError(kind)
    if not ends or ends[-1] != size:
        ends.append(size)  # trailing partial page / tail
    return ends


def tree_nodes(entries, fanout):
    """entries: list of (id32, length). Yield (node_id, node_bytes_len) for every node in the tree."""
    mask = fanout - 1
    maxn = 4 * fanout
    level = entries
    nodes = []
    while True:
        nxt = []
        cur = []
        for e in level:
            cur.append(e)
            if (int.from_bytes(e[0][:4], "little") & mask) == 0 or len(cur) >= maxn:
                nxt.append(cur)
                cur = []
        if cur:
            nxt.append(cur)
        parent = []
        for grp in nxt:
            body = b"".join(i + struct.pack("<I", min(l, 0xFFFFFFFF)) for i, l in grp)
            nid = blake3.blake3(body).digest()
            nodes.append((nid, len(body)))
            parent.append((nid, sum(l for _, l in grp)))
        if len(parent) <= 1:
            return nodes
        level = parent


def run_chunker(job):
    name, (kind, arg), paths = job
    c1 = zstandard.ZstdCompressor(level=3)
    seen = set()
    seen_nodes = {f: set() for f in FANOUTS}
    rows = []
    for si, path in enumerate(paths):
        t0 = time.time()
        mv = memoryview(load(path))
        ends = cut_ends(kind, arg, mv)
        t_cut = time.time() - t0
        refs = []
        n_new = raw_new = comp_a = 0
        new_spans = []
        start = 0
        for e in ends:
            chunk = mv[start:e]
            cid = blake3.blake3(chunk).digest()
            refs.append((cid, e - start))
            if cid not in seen:
                seen.add(cid)
                n_new += 1
                raw_new += e - start
                comp_a += min(len(c1.compress(chunk)), e - start)
                new_spans.append((start, e))
            start = e
        # (b) new chunks in file order packed into frames closed once >= frame size raw
        comp_frames = {}
        for fsz in FRAMES:
            tot = nfr = 0
            buf, blen = [], 0
            for i, (s0, e0) in enumerate(new_spans):
                buf.append(mv[s0:e0]); blen += e0 - s0
                if blen >= fsz or i == len(new_spans) - 1:
                    blob = b"".join(buf)
                    tot += min(len(c1.compress(blob)), len(blob)); nfr += 1
                    buf, blen = [], 0
            comp_frames[fsz >> 10] = {"bytes": tot, "frames": nfr}
        comp_b = comp_frames[FRAME >> 10]["bytes"]
        frames = comp_frames[FRAME >> 10]["frames"]
        tree = {}
        for f in FANOUTS:
            nodes = tree_nodes(refs, f)
            new_b = 0
            new_n = 0
            for nid, ln in nodes:
                if nid not in seen_nodes[f]:
                    seen_nodes[f].add(nid)
                    new_b += ln
                    new_n += 1
            tree[f] = {"nodes": len(nodes), "new_nodes": new_n, "new_bytes": new_b,
                       "total_bytes": sum(ln for _, ln in nodes)}
        sizes = np.diff(np.array([0] + ends, dtype=np.int64))
        rows.append({"state": f"S{si}", "file_bytes": len(mv), "refs": len(refs), "new_chunks": n_new,
                     "raw_new": raw_new, "comp_chunk": comp_a, "comp_frame": comp_b, "frames": frames,
                     "comp_frames": comp_frames,
                     "flat_list": ENTRY * len(refs), "tree": tree, "mean_chunk": float(sizes.mean()),
                     "secs": round(time.time() - t0, 1), "cut_secs": round(t_cut, 1)})
        mv.release()
        print(f"  {name} S{si}: {rows[-1]['secs']}s", file=sys.stderr, flush=True)
    return name, rows


def zstd_speed(path, limit=512 << 20):
    mv = memoryview(load(path))[:limit]
    out = {}
    for lvl in (1, 3):
        c = zstandard.ZstdCompressor(level=lvl)
        for gran, label in ((FRAME, "256 KiB frame"), (PAGE, "4 KiB chunk")):
            n = len(mv) if gran == FRAME else min(len(mv), 128 << 20)
            t0 = time.perf_counter(); tot = 0
            for o in range(0, n, gran):
                tot += len(c.compress(mv[o:o + gran]))
            dt = time.perf_counter() - t0
            out[f"zstd-{lvl} {label}"] = {"MB/s": round(n / dt / 1e6), "ratio": round(n / tot, 3), "bytes": n}
    return out


def frame_size_sweep(path):
    """Full S0 under page-aligned chunks (all pages new) packed into frames of various sizes, zstd-3."""
    mv = memoryview(load(path))
    out = {}
    for lvl in (1, 3):
        c = zstandard.ZstdCompressor(level=lvl)
        for fs in (64 << 10, 256 << 10, 1 << 20, 4 << 20):
            tot = 0
            for o in range(0, len(mv), fs):
                blob = mv[o:o + fs]
                tot += min(len(c.compress(blob)), len(blob))
            out[f"{lvl}:{fs}"] = tot
    return out


def page_diff(a, b):
    import subprocess
    return subprocess.run([sys.executable, "/work/shared/bench/page_diff.py", a, b],
                          capture_output=True, text=True, check=True).stdout.strip()


RESTIC_FULL_500K = 219_897_934  # /work/shared/bench/baseline-2026-11-23-500k.md


def fmt(n):
    return f"{n:,}"


def report(res):
    ch = res["chunkers"]
    fans = [str(f) for f in FANOUTS]
    L = [f"Database: {res['items']} items; S0 file {fmt(next(iter(ch.values()))[0]['file_bytes'])} bytes.", ""]
    for si, pair in ((1, "S0->S1 (1,000 updates + 1,000 inserts)"), (2, "S1->S2 (100 updates)")):
        pd = res["page_diff"][f"S{si-1}->S{si}"]
        L += [f"### {pair}", "", f"page_diff.py reference: `{pd}`", "",
              "| chunker | refs | new chunks | raw new | (a) zstd-3/chunk | (b) zstd-3/256K frame | 1M frame | "
              + " | ".join(f"tree f={f}" for f in fans) + " | flat list | **(b) + best tree** |",
              "|---|" + "---:|" * (8 + len(fans))]
        best = None
        for name, rows in ch.items():
            r = rows[si]
            tb = {f: r["tree"][f]["new_bytes"] for f in fans}
            bf = min(tb, key=tb.get)
            tot = r["comp_frame"] + tb[bf]
            best = min(best or (tot, name, bf), (tot, name, bf))
            L.append(f"| {name} | {fmt(r['refs'])} | {fmt(r['new_chunks'])} | {fmt(r['raw_new'])} | {fmt(r['comp_chunk'])} | "
                     f"{fmt(r['comp_frame'])} | {fmt(r['comp_frames']['1024']['bytes'])} | " + " | ".join(f"{fmt(tb[f])} ({r['tree'][f]['new_nodes']})" for f in fans)
                     + f" | {fmt(r['flat_list'])} | **{fmt(tot)}** (f={bf}) |")
        L += ["", f"Minimum: **{best[1]}**, frames, tree fan-out {best[2]}: {fmt(best[0])} bytes.", ""]
    L += ["### Full snapshot S0", "",
          "| chunker | chunks | mean chunk | (a) zstd-3/chunk | (b) zstd-3/256K frame | 1M frame | tree f=8 | tree f=64 | flat list | (b) + tree f=8 | vs restic full |",
          "|---|" + "---:|" * 10]
    for name, rows in ch.items():
        r = rows[0]
        t = r["tree"][str(FANOUTS[0])]["new_bytes"]
        tot = r["comp_frame"] + t
        L.append(f"| {name} | {fmt(r['refs'])} | {r['mean_chunk']:.0f} | {fmt(r['comp_chunk'])} | {fmt(r['comp_frame'])} | "
                 f"{fmt(r['comp_frames']['1024']['bytes'])} | {fmt(t)} | "
                 f"{fmt(r['tree'][str(FANOUTS[-1])]['new_bytes'])} | "
                 f"{fmt(r['flat_list'])} | {fmt(tot)} | {tot / RESTIC_FULL_500K:.3f}x |")
    L += ["", f"restic full (500k): {fmt(RESTIC_FULL_500K)} bytes.", ""]
    if "frame_sweep" in res:
        L += ["Frame-size sweep, S0 as consecutive pages, each frame compressed alone (data only, no tree):", "",
              "| zstd level | frame | compressed | vs restic full |", "|---|---|---:|---:|"]
        for k, b in res["frame_sweep"].items():
            lvl, fs = k.split(":")
            L.append(f"| {lvl} | {int(fs) >> 10} KiB | {fmt(b)} | {b / RESTIC_FULL_500K:.3f}x |")
        L.append("")
    L += ["zstd speed in Python (python-zstandard, one thread, S0 data):", "", "| setting | MB/s | ratio |", "|---|---:|---:|"]
    for k, v in res["zstd_speed"].items():
        L.append(f"| {k} | {v['MB/s']} | {v['ratio']} |")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("items", type=int)
    ap.add_argument("--work", default="/tmp/lumina-bench")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="")
    ap.add_argument("--json", default="")
    ap.add_argument("--report", default="", help="only render markdown from a saved --json file")
    a = ap.parse_args()
    if a.report:
        print(report(json.load(open(a.report))), end="")
        return
    paths = [os.path.join(a.work, f"s{i}-{a.items}.db") for i in range(3)]
    for p in paths:
        assert os.path.exists(p), p
    res = {"items": a.items, "paths": paths}
    res["page_diff"] = {"S0->S1": page_diff(paths[0], paths[1]), "S1->S2": page_diff(paths[1], paths[2])}
    res["zstd_speed"] = zstd_speed(paths[0])
    print(json.dumps(res["zstd_speed"]), file=sys.stderr)
    res["frame_sweep"] = frame_size_sweep(paths[0])
    sel = [c for c in chunkers() if not a.only or any(o in c[0] for o in a.only.split(","))]
    jobs = [(n, k, paths) for n, k in sel]
    with Pool(a.jobs) as pool:
        res["chunkers"] = dict(pool.map(run_chunker, jobs, chunksize=1))
    res = json.loads(json.dumps(res))  # normalise int keys to str, as when re-reading --json
    if a.json:
        open(a.json, "w").write(json.dumps(res, indent=1))
    print(report(res), end="")


if __name__ == "__main__":
    main()
