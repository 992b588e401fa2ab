"""Benchmark the case page in Chromium: submit to next case painted, for cases of 3 photos.

Run: .venv/bin/python bench/cases.py [--cases 40] [--photos 3] [--size 1024x768] [--unit case|image]
[--pg URL]

The app is served on loopback from a thread (the browser tests' live server, tests/browser_support),
on a fresh SQLite database (or a scratch PostgreSQL database next to --pg). A severity project
(--unit case: one answer per case) or a quality project (--unit image: an answer per photo) gets
``--cases`` cases of ``--photos`` generated JPEGs each, all allocated to one rater. Debian's headless
Chromium (never `playwright install`) signs in as that rater, opens the first case and answers every
case by keyboard (a grade and Enter; per image: an answer and Enter per photo), looking at each
case for ``--think`` seconds first (a rater's seconds: the next case is prefetched meanwhile). The page records,
for each save, the time from the key that saves to the next case painted: the save's PUT, then the
prefetched next case (its JSON and photo bytes fetched while the rater looked at the previous case)
drawn and fitted, one frame later (static/js/cases.js, window.caseTimings).

Printed: p50, p95 and max of those times over every case after the first three (warm-up), and the
goal: p95 under 80 ms on loopback.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "cases")]

from browser_support.fixtures import CHROMIUM, CHROMIUM_ARGS
from browser_support.live import serve
from case_fixtures import seed_cases

RATER = "rater@cases.test"
GOAL_P95_MS = 80.0
WARM_UP = 3


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def run(args: argparse.Namespace) -> int:
    from playwright.sync_api import sync_playwright

    width, height = (int(x) for x in args.size.split("x"))
    protocol = "severity" if args.unit == "case" else "quality"
    with tempfile.TemporaryDirectory() as tmp, serve(Path(tmp), args.pg) as server:
        with server.session() as s:
            project_id = seed_cases(
                s,
                server.app.extensions["labeler_storage"],
                protocol=protocol,
                settings={"cases": {"view": True, "unit": args.unit}},
                cases={f"case-{k:03d}": args.photos for k in range(args.cases)},
                rater_email=RATER,
                size=(width, height),
            )
        pw = sync_playwright().start()
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport={"width": 1600, "height": 900}).new_page()
            page.set_default_timeout(20_000)
            page.goto(f"{server.url}/auth/login")
            page.select_option("#email", RATER)
            page.click("#dev-signin")
            page.wait_for_load_state()
            page.goto(f"{server.url}/projects/{project_id}/next-case")
            page.wait_for_selector('#case-page[data-ready="true"]', state="attached")
            started = time.perf_counter()
            for k in range(args.cases - 1):  # the last save has no next case to paint
                if args.unit == "case":
                    page.keyboard.press("3")
                    page.keyboard.press("Enter")
                else:
                    for _ in range(args.photos):
                        page.keyboard.press("N")
                        page.keyboard.press("Enter")
                page.wait_for_function(f"() => window.caseTimings.length > {k}")
                time.sleep(args.think)  # the rater looks at the case: the next one is prefetched
            elapsed = time.perf_counter() - started
            timings = page.evaluate("() => window.caseTimings.map(t => t.painted)")
            saves = page.evaluate("() => window.caseTimings.map(t => t.saved)")
        finally:
            browser.close()
            pw.stop()
    measured = timings[WARM_UP:]
    saved = saves[WARM_UP:]
    db = "PostgreSQL" if args.pg else "SQLite"
    print(
        f"case page, {args.photos} photos of {width}x{height} per case, one answer per "
        f"{args.unit}, {db}, loopback, headless Chromium"
    )
    print(f"  cases saved: {len(timings)} ({len(measured)} measured after {WARM_UP} warm-up)")
    print(
        f"  submit -> next case painted: p50 {statistics.median(measured):.1f} ms, "
        f"p95 {pct(measured, 95):.1f} ms, max {max(measured):.1f} ms"
    )
    print(
        f"  of which the save (PUT, answer received): p50 {statistics.median(saved):.1f} ms, "
        f"p95 {pct(saved, 95):.1f} ms"
    )
    paint = [p - s for p, s in zip(measured, saved, strict=True)]
    print(
        f"  and the paint after the answer (prefetched case drawn and fitted, one frame): "
        f"p50 {statistics.median(paint):.1f} ms, p95 {pct(paint, 95):.1f} ms"
    )
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    if load:
        print(f"  machine load average (1, 5, 15 min): {', '.join(load)}")
    per_case = elapsed / max(1, len(timings)) * 1000
    print(f"  whole run: {elapsed:.1f} s ({per_case:.0f} ms per case, think time included)")
    ok = pct(measured, 95) < GOAL_P95_MS
    print(f"  goal p95 < {GOAL_P95_MS:.0f} ms: {'met' if ok else 'NOT met'}")
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--photos", type=int, default=3)
    ap.add_argument("--size", default="1024x768", help="photo size WxH (default 1024x768)")
    ap.add_argument("--unit", choices=("case", "image"), default="case")
    ap.add_argument(
        "--think",
        type=float,
        default=1.0,
        help="seconds the rater looks at each case before answering (default 1)",
    )
    ap.add_argument("--pg", help="PostgreSQL admin URL: a scratch database is made next to it")
    args = ap.parse_args()
    if args.cases < WARM_UP + 3:
        ap.error(f"--cases must be at least {WARM_UP + 3}")
    sys.exit(run(args))


if __name__ == "__main__":
    main()
