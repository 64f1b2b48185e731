#!/bin/sh
# dciodvfy_phantom.sh PHANTOM_BIN TMP_DIR: writes small phantoms in every
# transfer syntax dicom3tools reads and fails if dciodvfy reports any error
# or warning, for CT Image Storage slices and Enhanced CT multi-frame files.
set -u
bin=$1
tmp=$2
status=0
for ts in implicit explicit big rle jpegll jpegls j2k j2k-lossy; do
	for geometry in axial tilt enhanced; do
		dir=$tmp/dciodvfy_${ts}_$geometry
		rm -rf "$dir"
		if [ "$geometry" = enhanced ]; then
			opts="--enhanced --geometry oblique"
			file=$dir/enhanced.dcm
			iod=EnhancedCTImage
		else
			opts="--geometry $geometry"
			file=$dir/slice_0002.dcm
			iod=CTImage
		fi
		if ! "$bin" --out "$dir" --size 64 --slices 4 --ts "$ts" $opts; then
			echo "FAIL: recon3d-phantom --ts $ts $opts"
			status=1
			continue
		fi
		out=$(dciodvfy "$file" 2>&1)
		if [ -z "$out" ] || ! echo "$out" | grep -q "^$iod\$"; then
			echo "FAIL: dciodvfy did not recognise a CT Image ($ts, $geometry):"
			echo "$out"
			status=1
		fi
		if echo "$out" | grep -q -i 'error\|warning'; then
			echo "FAIL: dciodvfy on $ts/$geometry:"
			echo "$out"
			status=1
		else
			echo "ok: $ts $geometry"
		fi
	done
done
exit $status
