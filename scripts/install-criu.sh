#!/usr/bin/env bash
# Install CRIU >= 4.2 into PREFIX, self-contained: criu 4.2.x and every library it loads are taken from
# Debian forky/sid (Debian's own archive) and unpacked with dpkg -x; PREFIX/bin/criu runs the binary through
# the unpacked ld.so with the unpacked libraries, so it works on any x86_64 glibc host (Debian 12's criu 3.17
# and trixie's 4.1.1 fail on kernels >= 6.16). Nothing is installed into the host's dpkg database.
#
#   scripts/install-criu.sh PREFIX        e.g.  scripts/install-criu.sh tools/criu
#
# PREFIX/licenses keeps what redistributing these binaries requires: each package's Debian copyright file
# (<package>.copyright), the common licences they refer to (common-licenses/, from base-files), and the exact
# versions and source packages (SOURCES), whose source Debian's archive keeps.
#
# Idempotent: does nothing when PREFIX/bin/criu exists, reports version >= 4.2 and PREFIX/licenses is complete.
# Needs: root (dpkg -x keeps ownership), apt-get, dpkg, network access to deb.debian.org (or the mirror in
# CRIU_DEBIAN_MIRROR). Env: CRIU_PACKAGE_VERSION pins the criu package version (default: newest of forky/sid).
set -euo pipefail

usage() { echo "usage: $0 PREFIX" >&2; exit 2; }
[ $# -eq 1 ] || usage
prefix=$1
case $prefix in /*) ;; *) prefix=$PWD/$prefix ;; esac
mirror=${CRIU_DEBIAN_MIRROR:-http://deb.debian.org/debian}
arch=$(dpkg --print-architecture)
[ "$arch" = amd64 ] || { echo "install-criu: only amd64 is supported (got $arch)" >&2; exit 1; }
multiarch=x86_64-linux-gnu

# version_ok BIN: true when BIN --version says >= 4.2
version_ok() {
  local v
  v=$("$1" --version 2>/dev/null | sed -n 's/^Version: *//p' | head -n1) || return 1
  [ -n "$v" ] || return 1
  local major=${v%%.*} rest=${v#*.}
  local minor=${rest%%.*}
  [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] || return 1
  (( major > 4 || (major == 4 && minor >= 2) ))
}

# licenses_ok DIR: true when DIR/licenses has a copyright file for every package in DIR/PACKAGES, and SOURCES
licenses_ok() {
  [ -f "$1/PACKAGES" ] && [ -f "$1/licenses/SOURCES" ] || return 1
  local p
  while read -r p; do [ -s "$1/licenses/${p%%=*}.copyright" ] || return 1; done < "$1/PACKAGES"
}

if [ -x "$prefix/bin/criu" ] && version_ok "$prefix/bin/criu" && licenses_ok "$prefix"; then
  echo "install-criu: $("$prefix/bin/criu" --version | head -n1) already in $prefix"
  exit 0
fi

for t in apt-get apt-cache dpkg dpkg-deb; do
  command -v "$t" >/dev/null || { echo "install-criu: '$t' not found (needs a Debian/Ubuntu host)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "install-criu: run as root" >&2; exit 1; }

# Refuse to clobber a PREFIX that is not ours.
if [ -e "$prefix" ] && [ -n "$(ls -A "$prefix" 2>/dev/null)" ] && [ ! -e "$prefix/usr/sbin/criu" ]; then
  echo "install-criu: $prefix exists, is not empty and holds no previous criu install; refusing to overwrite" >&2
  exit 1
fi

mkdir -p "$(dirname "$prefix")"
work=$(mktemp -d "${TMPDIR:-/tmp}/install-criu.XXXXXX")
stage=$(mktemp -d "$(dirname "$prefix")/.criu-stage.XXXXXX")
cleanup() { rm -rf "$work" "$stage"; }
trap cleanup EXIT

# A private apt configuration: its own sources, lists and an empty dpkg status, so the host's apt state is
# neither read nor changed, and the dependency closure is computed from scratch.
cat > "$work/sources.list" <<SRC
deb $mirror forky main
deb $mirror sid main
SRC
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
A=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
   -o Dir::State::Lists="$work/lists" -o Dir::State::Status=/dev/null -o Dir::Cache="$work/cache"
   -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
   -o APT::Architecture="$arch" -o APT::Architectures="$arch" -o APT::Sandbox::User=root)
echo "install-criu: reading package lists of forky/sid from $mirror"
apt-get "${A[@]}" update -qq

criu_pkg=criu${CRIU_PACKAGE_VERSION:+=$CRIU_PACKAGE_VERSION}
cand=$(apt-cache "${A[@]}" policy criu | sed -n 's/^ *Candidate: *//p')
echo "install-criu: criu candidate ${CRIU_PACKAGE_VERSION:-$cand}"

# criu + the run-time closure of its Depends/Pre-Depends (libraries only; Recommends iproute2 and
# python3-pycriu are not needed to dump/restore).
mapfile -t pkgs < <(apt-cache "${A[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances criu | grep -v '^ ' | grep -v '^<' | sort -u)
[ "${#pkgs[@]}" -gt 1 ] || { echo "install-criu: could not resolve criu's dependencies" >&2; exit 1; }
dl=()
for p in "${pkgs[@]}"; do [ "$p" = criu ] && dl+=("$criu_pkg") || dl+=("$p"); done
echo "install-criu: downloading ${#dl[@]} packages: ${dl[*]}"
(cd "$work/debs" && apt-get "${A[@]}" download -qq "${dl[@]}" >/dev/null)

for f in "$work"/debs/*.deb; do dpkg -x "$f" "$stage"; done

# The licences, taken before usr/share goes. A package's doc folder may be a link to another package's (libgcc-s1
# to gcc-16-base): it is followed, but only inside the stage, never into the host's own /usr/share/doc.
mkdir -p "$stage/licenses/common-licenses" "$work/base-files"
: > "$stage/licenses/SOURCES"
for f in "$work"/debs/*.deb; do
  pkg=$(dpkg-deb -f "$f" Package)
  copyright=$(realpath -m "$stage/usr/share/doc/$pkg/copyright")
  case $copyright in "$stage"/*) ;; *) echo "install-criu: $pkg's copyright file points outside the stage" >&2; exit 1 ;; esac
  [ -s "$copyright" ] || { echo "install-criu: $pkg has no copyright file" >&2; exit 1; }
  cp "$copyright" "$stage/licenses/$pkg.copyright"
  source=$(dpkg-deb -f "$f" Source)
  printf '%s %s %s\n' "$pkg" "$(dpkg-deb -f "$f" Version)" "${source:-$pkg}" >> "$stage/licenses/SOURCES"
done
# Debian's copyright files name the long licences (GPL-2, LGPL-2.1, ...) by their path in base-files.
(cd "$work/base-files" && apt-get "${A[@]}" download -qq base-files >/dev/null)
dpkg -x "$work"/base-files/base-files_*.deb "$work/base-files/root"
common=$work/base-files/root/usr/share/common-licenses
for name in $(cat "$stage"/licenses/*.copyright | grep -o '/usr/share/common-licenses/[A-Za-z0-9.+-]*[A-Za-z0-9+]' | sed 's|.*/||' | sort -u); do
  [ -f "$common/$name" ] || { echo "install-criu: base-files has no common licence $name" >&2; exit 1; }
  cp "$common/$name" "$stage/licenses/common-licenses/"
done
rm -rf "$stage/usr/share" "$stage/etc" "$stage/var"
# usrmerge layout: be safe if a package still ships /lib.
if [ -d "$stage/lib/$multiarch" ]; then
  cp -a "$stage/lib/$multiarch/." "$stage/usr/lib/$multiarch/"; rm -rf "$stage/lib"
fi
L=$stage/usr/lib/$multiarch
[ -e "$L/ld-linux-x86-64.so.2" ] || { echo "install-criu: unpacked libc6 has no ld-linux-x86-64.so.2" >&2; exit 1; }
[ -x "$stage/usr/sbin/criu" ] || { echo "install-criu: criu binary missing after unpack" >&2; exit 1; }
# An empty plugin dir: the wrapper passes --libdir so a host's /usr/lib/criu plugins (e.g. cuda_plugin.so
# of another CRIU build) are never loaded into this criu by accident.
mkdir -p "$stage/usr/lib/criu" "$stage/bin"

cat > "$stage/bin/criu" <<'WRAP'
#!/bin/sh
# CRIU runs on its own loader and libraries (Debian forky/sid), so it works on any glibc host.
# CRIU_LIBDIR overrides the plugin directory (default: the empty one of this install).
d=$(dirname "$(readlink -f "$0")")/..
L=$d/usr/lib/x86_64-linux-gnu
case " $* " in
  *" --libdir "*|*" -L "*) exec "$L/ld-linux-x86-64.so.2" --library-path "$L" "$d/usr/sbin/criu" "$@" ;;
esac
case "${1:-}" in
  dump|pre-dump|restore|lazy-pages|page-server|service|swrk)
    cmd=$1; shift
    exec "$L/ld-linux-x86-64.so.2" --library-path "$L" "$d/usr/sbin/criu" "$cmd" --libdir "${CRIU_LIBDIR:-$d/usr/lib/criu}" "$@" ;;
esac
exec "$L/ld-linux-x86-64.so.2" --library-path "$L" "$d/usr/sbin/criu" "$@"
WRAP
chmod 755 "$stage/bin/criu"

# Every shared object criu needs must resolve inside the stage.
if "$L/ld-linux-x86-64.so.2" --library-path "$L" --list "$stage/usr/sbin/criu" | grep -q 'not found'; then
  "$L/ld-linux-x86-64.so.2" --library-path "$L" --list "$stage/usr/sbin/criu" >&2
  echo "install-criu: unresolved libraries (above)" >&2; exit 1
fi
if "$L/ld-linux-x86-64.so.2" --library-path "$L" --list "$stage/usr/sbin/criu" | grep -v "$stage" | grep -q '=>'; then
  echo "install-criu: warning: some libraries resolve outside $prefix:" >&2
  "$L/ld-linux-x86-64.so.2" --library-path "$L" --list "$stage/usr/sbin/criu" | grep -v "$stage" | grep '=>' >&2
fi
version_ok "$stage/bin/criu" || { echo "install-criu: unpacked criu does not report version >= 4.2:" >&2; "$stage/bin/criu" --version >&2 || true; exit 1; }
printf '%s\n' "${dl[@]}" > "$stage/PACKAGES"
chmod 755 "$stage"

# Swap into place (a previous broken/old install in PREFIX is replaced).
if [ -e "$prefix" ]; then
  old=$(mktemp -d "$(dirname "$prefix")/.criu-old.XXXXXX")
  mv "$prefix" "$old/"
  mv "$stage" "$prefix"
  rm -rf "$old"
else
  mv "$stage" "$prefix"
fi
echo "install-criu: installed $("$prefix/bin/criu" --version | head -n1) into $prefix ($(du -sh "$prefix" | cut -f1))"
