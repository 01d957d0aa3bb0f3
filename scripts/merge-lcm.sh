#!/usr/bin/env bash
# merge-lcm.sh BASE.dtb LCM.dts OUT.dtb: adds an LCM (a dts/ file) to a host DTB.
# The LCM is compiled together with the decompiled base rather than applied as an overlay,
# because libfdt's overlay code (fdtoverlay, U-Boot's `fdt apply`) inserts new nodes in
# reverse order, and the order of domain nodes is meaningful (console convention, domids).
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: merge-lcm.sh BASE.dtb LCM.dts OUT.dtb" >&2; exit 2; }
{
    dtc -q -I dtb -O dts "$1"
    sed -e '/^[[:space:]]*\/dts-v1\/;/d' -e '/^[[:space:]]*\/plugin\/;/d' "$2"
} | dtc -q -I dts -O dtb -o "$3" -
