"""Summary of the tests ctest skipped, from its JUnit file: how many and why (the test's own
"skipped: ..." line, or GoogleTest's skip message). Under CI=true any skip that is not for want of
a GPU fails the run (exit 1): CI must never pass by running nothing.
Usage: python3 tests/skip_summary.py ctest-results.xml   (run by launch/test.sh)
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

GPU = re.compile(r"CUDA|GPU", re.I)


def reason(out):
    lines = [l.strip() for l in (out or "").splitlines()]
    for i, l in enumerate(lines):
        if l.lower().startswith("skipped:") or l.lower().startswith("skip:"):
            return l.split(":", 1)[1].strip()
        if l.endswith(": Skipped") and i + 1 < len(lines) and lines[i + 1]:  # GoogleTest
            return lines[i + 1]
    return "no reason printed"


def main():
    root = ET.parse(sys.argv[1]).getroot()
    skipped = []
    for tc in root.iter("testcase"):
        if tc.get("status") == "skipped" or tc.find("skipped") is not None:
            out = "".join((e.text or "") for e in tc.iter("system-out"))
            skipped.append((tc.get("name"), reason(out)))
    ci = os.environ.get("CI") == "true"
    print(f"[test] {len(skipped)} test(s) skipped" + (":" if skipped else ""))
    bad = 0
    for name, why in skipped:
        allowed = bool(GPU.search(why))
        bad += ci and not allowed
        print(f"  {name}: {why}" + ("" if allowed or not ci else "   <- not allowed under CI=true"))
    if bad:
        print(f"[test] FAIL: {bad} skip(s) under CI=true that are not for want of a GPU")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
