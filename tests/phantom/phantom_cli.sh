#!/bin/sh
# phantom_cli.sh PHANTOM_BIN TMP_DIR: the recon3d-phantom command line: help,
# refused options with a message and a non-zero status, files written, and a
# truth.json that parses and agrees with the closed-form volumes.
set -u
bin=$1
tmp=$2
status=0
fail() { echo "FAIL: $*"; status=1; }

"$bin" --help >/dev/null || fail "--help"
for bad in "--ts jpeg2001" "--size 4" "--slices 1" "--spacing 1,1" "--geometry sideways" \
	   "--angle 60" "--threads 0" "--bogus" "--skip -1" "--center 1,2"; do
	msg=$("$bin" --out "$tmp/cli_bad" $bad 2>&1 >/dev/null)
	if "$bin" --out "$tmp/cli_bad" $bad >/dev/null 2>&1; then
		fail "accepted: $bad"
	fi
	case "$msg" in
	recon3d-phantom:*) ;;
	*) fail "no message for '$bad': $msg" ;;
	esac
done
"$bin" >/dev/null 2>&1 && fail "accepted a missing --out"

dir=$tmp/cli_ok
rm -rf "$dir"
"$bin" --out "$dir" --size 32 --rows 40 --slices 10 --skip 3 --skip 7 --geometry tilt \
	--angle 10 --ts rle || fail "generate"
n=$(ls "$dir"/slice_*.dcm 2>/dev/null | wc -l)
[ "$n" -eq 8 ] || fail "expected 8 slices, found $n"
[ -f "$dir/slice_0004.dcm" ] && fail "--skip 3 wrote slice_0004.dcm"
/usr/bin/python3 - "$dir/truth.json" <<'PY' || status=1
import json, math, sys
t = json.load(open(sys.argv[1]))
g = t["geometry"]
assert g["kind"] == "tilt" and g["columns"] == 32 and g["rows"] == 40 and g["slices"] == 10, g
assert abs(g["gantry_tilt_deg"] - 10) < 1e-9
shapes = {s["name"]: s for s in t["shapes"]}
assert len(shapes) >= 10, shapes.keys()
b = shapes["bone_sphere"]
r = b["radii_mm"][0]
assert abs(b["volume_mm3"] - 4 / 3 * math.pi * r ** 3) < 1e-6 * b["volume_mm3"]
sh, ins = shapes["bone_shell"], shapes["shell_inside"]
v = 4 / 3 * math.pi * (math.prod(sh["radii_mm"]) - math.prod(ins["radii_mm"]))
assert abs(sh["volume_mm3"] - v) < 1e-6 * v, (sh["volume_mm3"], v)
c = shapes["vessel_oblique"]
v = math.pi * c["radii_mm"][0] ** 2 * 2 * c["half_length_mm"]
assert abs(c["volume_mm3"] - v) < 1e-6 * v
bone = t["structures"]["bone"]["volume_mm3"]
parts = sum(shapes[n]["volume_mm3"] for n in ("bone_sphere", "small_bone_sphere", "bone_shell"))
assert abs(bone - parts) < 1e-6 * parts
print("truth.json ok:", len(shapes), "shapes")
PY
exit $status
