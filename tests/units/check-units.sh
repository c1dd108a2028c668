#!/bin/bash
# Check every systemd unit of Helios as systemd itself reads it: systemd-analyze verify on each unit
# (template units as instances, one of them a user name with a '-'), and each service's exposure
# score (systemd-analyze security --offline) against its ceiling. Runs on the host; no service
# manager is needed.
#
# Usage: check-units.sh UNIT_BUILD_DIR SOURCE_UNIT_DIR [BINARY=PATH]... [UNIT=MAX]...
#   BINARY=PATH  point ExecStart= of the units running BINARY (helios-worker, ...) at PATH, so that
#                verify checks the binary just built; a PATH that is not an executable fails.
#   UNIT=MAX     the highest exposure accepted for UNIT, on systemd's 0-100 scale (2.0 shows as 20).
# Every service must have a ceiling: one without fails the check.
set -euo pipefail
built=$1 source=$2
shift 2

declare -A binaries=() ceilings=()
for a in "$@"; do
        case $a in
        *.service=*) ceilings[${a%%=*}]=${a#*=} ;;
        *=*) binaries[${a%%=*}]=${a#*=} ;;
        *)
                echo "check-units.sh: unexpected argument '$a'" >&2
                exit 2
                ;;
        esac
done

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$built"/*.service "$built"/*.socket "$source"/*.socket "$source"/*.slice "$dir"/

for name in "${!binaries[@]}"; do
        path=${binaries[$name]}
        if [ ! -x "$path" ]; then
                echo "check-units.sh: $name is not an executable at $path" >&2
                exit 1
        fi
        sed -i "s|^ExecStart=[^ ]*/$name\b|ExecStart=$path|" "$dir"/*.service
done

# verify needs concrete instances to expand %i and %I. 'mary-jane' is there because its instance is
# escaped (mary\x2djane): %i is that, %I the user name.
for t in "$dir"/*@.*; do
        for user in alice mary-jane; do
                instance=$(systemd-escape "$user")
                i=${t/@./@$instance.}
                sed -e "s/%i/${instance//\\/\\\\}/g" -e "s/%I/$user/g" "$t" >"$i"
        done
        rm "$t"
done

status=0
for u in "$dir"/*; do
        name=$(basename "$u")
        if out=$(systemd-analyze verify --man=no "$u" 2>&1) && [ -z "$out" ]; then
                echo "verify $name: ok"
        else
                echo "verify $name:"
                echo "$out"
                status=1
        fi
done

for u in "$dir"/*.service; do
        name=$(basename "$u")
        # The ceiling of a template applies to each of its instances.
        key=${name/@*./@.}
        max=${ceilings[$key]:-}
        if [ -z "$max" ]; then
                echo "security $name: no ceiling given for $key"
                status=1
                continue
        fi
        # --threshold fails above the given exposure, on the 0-100 scale.
        if systemd-analyze security --offline=true --threshold="$max" "$u" >"$dir/security.txt" 2>&1; then
                echo "security $name: $(grep -a -o 'exposure level.*' "$dir/security.txt"), ceiling $max/100"
        else
                grep -a -e '✗' -e 'Overall' "$dir/security.txt" || cat "$dir/security.txt"
                echo "security $name: exposure above $max/100"
                status=1
        fi
        rm -f "$dir/security.txt"
done
exit $status
