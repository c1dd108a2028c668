#!/bin/bash
# Check the systemd units as systemd itself reads them: systemd-analyze verify on every unit, and the
# worker's exposure score against its ceiling. Runs on the host; no service manager is needed.
# Usage: check-units.sh UNIT_BUILD_DIR SOURCE_UNIT_DIR WORKER_BINARY MAX_WORKER_EXPOSURE
set -euo pipefail
built=$1 source=$2 worker=$3 max=$4

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$built"/*.service "$built"/*.socket "$source"/*.slice "$dir"/
# Point ExecStart= at the binary just built, so verify can check that it exists and runs.
sed -i "s|^ExecStart=[^ ]*helios-worker|ExecStart=$worker|" "$dir"/helios-worker@.service
# Instances: verify needs a concrete name to expand %i.
cp "$dir"/helios-worker@.service "$dir"/helios-worker@alice.service
cp "$dir"/helios-worker@.socket "$dir"/helios-worker@alice.socket
sed -i 's/helios-worker@%i/helios-worker@alice/g' "$dir"/helios-worker@alice.*

status=0
for u in "$dir"/helios-worker@alice.service "$dir"/helios-worker@alice.socket "$dir"/helios.slice; do
        # Ignore only the complaints about the host not being set up for Helios (its group, its slice).
        out=$(systemd-analyze verify --man=no "$u" 2>&1 | grep -v -e "helios.slice" -e "helios-gateway" || true)
        if [ -n "$out" ]; then
                echo "verify $(basename "$u"):"
                echo "$out"
                status=1
        else
                echo "verify $(basename "$u"): ok"
        fi
done

# Exposure is shown as 0.0-10.0 and compared by --threshold on a 0-100 scale.
if ! systemd-analyze security --offline=true --threshold="$max" "$dir"/helios-worker@alice.service >"$dir"/security.txt 2>&1; then
        tail -n 30 "$dir"/security.txt
        echo "helios-worker@.service exposure above $max/100"
        status=1
fi
grep -a "Overall exposure" "$dir"/security.txt
exit $status
