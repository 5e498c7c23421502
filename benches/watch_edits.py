#!/usr/bin/env python3
"""The app editing photos at a steady rate, for `benches/watch.rs` (issue #12).

usage: watch_edits.py SHARED DB OUT_JSON --per-minute N --seconds T [--seed S]

SHARED is the folder of gen_realapp.py: each edit is its `_edit_one` (the app's own
pattern: INSERT OR REPLACE of the photo's metadata row, DELETE and INSERT of its tag
links), one transaction, through `_connect` with the app's 5 s busy timeout, on a
database in rollback-journal mode (checked). Edit k sets the photo's `lastModified` to
MARKER_BASE + k (the report's marker_base), above every value the generator writes, so
the newest edit a snapshot holds is `SELECT max(lastModified) - MARKER_BASE FROM metadata`.

Edit k starts at start + k * 60 / N seconds. OUT_JSON gets, per edit: k, photo,
marker, start and commit wall times (time.time(), unix seconds), latency and error;
and a summary. Exit 0 if no edit failed.
"""
import argparse
import contextlib
import json
import os
import random
import signal
import sqlite3
import sys
import time

MARKER_OFFSET = 5 * 10**8   # MARKER_BASE = gen_realapp's EDIT_TIME_MS + this

_stop = False


def _on_signal(signum, frame):
    global _stop
    _stop = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shared")
    ap.add_argument("db")
    ap.add_argument("out_json")
    ap.add_argument("--per-minute", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--seed", type=int, default=21)
    a = ap.parse_args()
    sys.path.insert(0, a.shared)
    import gen_realapp as g

    marker_base = g.EDIT_TIME_MS + MARKER_OFFSET
    mode = g.journal_mode(a.db)
    if mode != "rollback":
        sys.exit(f"{a.db}: journal mode {mode}, the app's is the rollback journal")
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    rng = random.Random(f"watch-edits-{a.seed}")
    db = g._connect(a.db, g.APP_BUSY_TIMEOUT_MS)
    ids = [r[0] for r in db.execute("SELECT id FROM metadata ORDER BY id")]
    tag_info = g._load_tags(db)
    period = 60.0 / a.per_minute
    start = time.time()
    edits = []
    k = 0
    while not _stop:
        due = start + k * period
        if due - start >= a.seconds:
            break
        while not _stop and time.time() < due:
            time.sleep(min(0.2, max(0.0, due - time.time())))
        if _stop:
            break
        ident = rng.choice(ids)
        marker = marker_base + k
        t0 = time.time()
        error = None
        try:
            db.execute("BEGIN")                    # sqlx's begin(): deferred
            g._edit_one(db, ident, rng, tag_info, marker)
            db.execute("COMMIT")
        except sqlite3.Error as e:
            error = f"{type(e).__name__}: {e}"
            with contextlib.suppress(sqlite3.Error):
                if db.in_transaction:
                    db.execute("ROLLBACK")
        t1 = time.time()
        edits.append({"k": k, "photo": ident, "marker": marker, "start": t0, "commit": t1,
                      "latency_s": round(t1 - t0, 6), "error": error})
        k += 1
    db.close()
    lat = sorted(e["latency_s"] for e in edits)
    report = {
        "db": os.path.abspath(a.db), "marker_base": marker_base, "per_minute": a.per_minute,
        "busy_timeout_ms": g.APP_BUSY_TIMEOUT_MS, "edits": edits,
        "summary": {
            "edits": len(edits),
            "failed": sum(1 for e in edits if e["error"]),
            "errors": sorted({e["error"] for e in edits if e["error"]})[:10],
            "max_latency_s": lat[-1] if lat else 0.0,
            "p50_latency_s": lat[len(lat) // 2] if lat else 0.0,
        },
    }
    tmp = a.out_json + ".part"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f)
    os.replace(tmp, a.out_json)
    return 0 if not report["summary"]["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
