"""Importing a whole export (issue 29): a synthetic Strava export of N runs (default 1,000
gzip'ed 1 Hz GPX runs of 30-60 min with HR, a ride every tenth activity, activities.csv with
Strava's repeated columns) written to benchmarks/scratch, then
1. `open_export` (the listing: the archive's directory and activities.csv) and every run read
   member by member (`RunSource.read`: gunzip + GPX parse + checks), timed, with the peak RSS;
2. with `--bundle`, `build_profile` over the first `--profile-runs` of them (the model's
   forward passes and personalisation on top of the reading), timed per run.

    python benchmarks/bench_import.py --runs 1000 [--bundle models/bundle --profile-runs 100]
"""

from __future__ import annotations

import argparse
import gzip
import math
import random
import resource
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from hrpred.io.exports import open_export

WORK = Path(__file__).resolve().parent / "scratch"
START = 1_600_000_000
HEADER = (
    "Activity ID,Activity Date,Activity Name,Activity Type,Activity Description,Elapsed Time,"
    "Distance,Max Heart Rate,Relative Effort,Commute,Filename,Elapsed Time,Moving Time,Distance"
)


def _gpx(rng: random.Random, start: int, seconds: int) -> bytes:
    """A 1 Hz GPX run: a wandering pace, a hilly profile and an HR following the pace."""
    pace = rng.uniform(9.0, 13.0)
    lat, lon, hr, out = 46.5, 7.0, 100.0, []
    for i in range(seconds):
        speed = pace * (1 + 0.05 * math.sin(i / 300.0)) + rng.gauss(0, 0.2)
        lat += speed / 3.6 / 111_000.0
        target = 60 + 8.5 * speed
        hr += (target - hr) * (1 - math.exp(-1 / 40.0))
        t = datetime.fromtimestamp(start + i, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ele = 300 + 20 * math.sin(i / 200.0)
        out.append(
            f'<trkpt lat="{lat:.7f}" lon="{lon:.7f}"><ele>{ele:.1f}</ele><time>{t}</time>'
            f"<extensions><gpxtpx:TrackPointExtension><gpxtpx:hr>{round(hr)}</gpxtpx:hr>"
            "</gpxtpx:TrackPointExtension></extensions></trkpt>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><gpx version="1.1" creator="bench" '
        'xmlns="http://www.topografix.com/GPX/1/1" '
        'xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v1">'
        "<trk><type>running</type><trkseg>" + "\n".join(out) + "</trkseg></trk></gpx>"
    ).encode()


def write_export(path: Path, runs: int, seed: int = 0) -> tuple[int, int]:
    """The synthetic export: (activities, bytes)."""
    rng = random.Random(seed)
    rows = [HEADER]
    n = runs + runs // 9  # a ride every tenth activity
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:  # Strava stores the .gz as is
        for k in range(n):
            ride = k % 10 == 9
            member = f"activities/{1000 + k}.gpx.gz"
            seconds = rng.randint(1800, 3600)
            kind = "Ride" if ride else "Run"
            rows.append(f'{1000 + k},"Oct 7, 2020, 2:43:11 PM",x,{kind},,{seconds},1,170,1,'
                        f"false,{member},{seconds},{seconds},1000")  # fmt: skip
            if not ride:
                data = _gpx(rng, START + k * 86400, seconds)
                z.writestr(member, gzip.compress(data, compresslevel=6, mtime=0))
        z.writestr("activities.csv", "\n".join(rows) + "\n")
    return n, path.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--bundle", type=Path, help="also time build_profile with this bundle")
    ap.add_argument("--profile-runs", type=int, default=100)
    args = ap.parse_args()
    WORK.mkdir(exist_ok=True)
    path = WORK / f"strava_{args.runs}.zip"
    t0 = time.perf_counter()
    if not path.exists():
        n, size = write_export(path, args.runs)
        print(f"wrote {path.name}: {n} activities, {size / 2**20:.0f} MB "
              f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip
    t0 = time.perf_counter()
    with open_export(path) as export:
        listed = time.perf_counter() - t0
        points = 0
        for s in export.sources:
            points += len(s.read())
        read = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"listing: {listed:.2f} s ({len(export.sources)} runs; notes: {export.notes})")
        print(f"listing + reading every run: {read:.1f} s ({read / len(export.sources) * 1000:.0f} "
              f"ms per run, {points:,} points), peak RSS {rss:.0f} MB")  # fmt: skip
        if args.bundle:
            from hrpred.bundle.runtime import load_bundle
            from hrpred.serve.profile import build_profile

            bundle = load_bundle(args.bundle, torch_threads=1)
            some = export.sources[: args.profile_runs]
            t0 = time.perf_counter()
            profile, _ = build_profile(bundle, some)
            took = time.perf_counter() - t0
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"build_profile over {len(some)} runs: {took:.1f} s ({took / len(some):.2f} s "
                  f"per run, {profile.content['n_runs']} kept), peak RSS {rss:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
