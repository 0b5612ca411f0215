#!/usr/bin/env bash
# Install CRIU >= 4.2 into PREFIX, self-contained: criu and every library it loads are taken from Debian's own
# archive and unpacked with dpkg -x; PREFIX/bin/criu runs the binary through the unpacked ld.so with the unpacked
# libraries, so it works on any x86_64 glibc host (Debian 12's criu 3.17 and trixie's 4.1.1 fail on kernels
# >= 6.16). Nothing is installed into the host's dpkg database.
#
#   scripts/install-criu.sh PREFIX        e.g.  scripts/install-criu.sh tools/criu
#
# Which criu: by default the newest of experimental, forky and sid for criu and libcompel1 (criu 4.3 is in
# experimental only: it fills memfds on worker threads, and reads pages with native AIO under --image-io-mode
# direct), every other package from forky/sid. The unpacked criu must pass 'criu check' on this host; where it fails it (or does not run), the
# newest of forky/sid (criu 4.2.1) is installed instead and the script says so. The environment pins the choice:
#   CRIU_CHANNEL=experimental    criu from experimental (or a newer forky/sid), no fallback
#   CRIU_CHANNEL=sid             criu from forky/sid only
#   CRIU_PACKAGE_VERSION=V       exactly criu V and libcompel1 V from whichever suite has it, no fallback; e.g.
#                                CRIU_PACKAGE_VERSION=4.2.1-1 scripts/install-criu.sh out/criu-4.2.1 installs 4.2.1
#                                beside tools/criu for comparisons
# A pinned criu that fails 'criu check' is installed with a warning (it was asked for by name).
#
# PREFIX/licenses keeps what redistributing these binaries requires: each package's Debian copyright file
# (<package>.copyright), the common licences they refer to (common-licenses/, from base-files), and the exact
# versions and source packages (SOURCES), whose source Debian's archive keeps. PREFIX/PACKAGES lists the packages
# as name=version; PREFIX/REQUESTED records what was asked (auto, experimental, sid, or version V).
#
# Idempotent: does nothing when PREFIX/bin/criu exists and reports version >= 4.2, PREFIX/licenses is complete,
# and PREFIX holds what is asked now (the same REQUESTED, and criu V itself when a version is pinned); otherwise
# PREFIX is replaced. An auto install that fell back to forky/sid stays as it is; remove PREFIX to try again.
# Refuses a non-empty PREFIX that holds no previous install of this script.
# Needs: root (dpkg -x keeps ownership; criu check), apt-get, dpkg, network access to deb.debian.org (or the
# mirror in CRIU_DEBIAN_MIRROR).
set -euo pipefail

usage() { echo "usage: $0 PREFIX" >&2; exit 2; }
[ $# -eq 1 ] || usage
prefix=$1
# Normalised: the stage beside it is compared with realpath results, which have no "..".
prefix=$(realpath -m -- "$prefix")
mirror=${CRIU_DEBIAN_MIRROR:-http://deb.debian.org/debian}
arch=$(dpkg --print-architecture)
[ "$arch" = amd64 ] || { echo "install-criu: only amd64 is supported (got $arch)" >&2; exit 1; }
multiarch=x86_64-linux-gnu

if [ -n "${CRIU_PACKAGE_VERSION:-}" ]; then
  requested="version $CRIU_PACKAGE_VERSION"
else
  case ${CRIU_CHANNEL:-auto} in
    auto|experimental|sid) requested=${CRIU_CHANNEL:-auto} ;;
    *) echo "install-criu: CRIU_CHANNEL must be experimental or sid (got '$CRIU_CHANNEL')" >&2; exit 2 ;;
  esac
fi

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

# installed_criu_version DIR: the criu package version SOURCES records
installed_criu_version() { awk '$1 == "criu" { print $2 }' "$1/licenses/SOURCES" 2>/dev/null; }

# holds_request DIR: true when DIR was installed for what is asked now
holds_request() {
  [ "$(cat "$1/REQUESTED" 2>/dev/null)" = "$requested" ] || return 1
  [ -z "${CRIU_PACKAGE_VERSION:-}" ] || [ "$(installed_criu_version "$1")" = "$CRIU_PACKAGE_VERSION" ]
}

if [ -x "$prefix/bin/criu" ] && version_ok "$prefix/bin/criu" && licenses_ok "$prefix" && holds_request "$prefix"; then
  echo "install-criu: $("$prefix/bin/criu" --version | head -n1) (package $(installed_criu_version "$prefix"), asked: $requested) already in $prefix"
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
if [ -e "$prefix/bin/criu" ]; then
  echo "install-criu: $prefix holds criu package $(installed_criu_version "$prefix" || true) installed for '$(cat "$prefix/REQUESTED" 2>/dev/null || echo unrecorded)'; replacing it (asked: $requested)"
fi

mkdir -p "$(dirname "$prefix")"
work=$(mktemp -d "${TMPDIR:-/tmp}/install-criu.XXXXXX")
stage=
cleanup() { rm -rf "$work" ${stage:+"$stage"}; }
trap cleanup EXIT

# A private apt configuration: its own sources, preferences, lists and an empty dpkg status, so the host's apt
# state is neither read nor changed, and the dependency closure is computed from scratch. experimental is
# NotAutomatic (priority 1): nothing comes from it unless the preferences raise criu and libcompel1.
cat > "$work/sources.list" <<SRC
deb $mirror forky main
deb $mirror sid main
deb $mirror experimental main
SRC
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
A=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
   -o Dir::State::Lists="$work/lists" -o Dir::State::Status=/dev/null -o Dir::Cache="$work/cache"
   -o Dir::Etc::Preferences="$work/preferences" -o Dir::Etc::PreferencesParts=/dev/null
   -o APT::Architecture="$arch" -o APT::Architectures="$arch" -o APT::Sandbox::User=root)
: > "$work/preferences"
echo "install-criu: reading package lists of forky, sid and experimental from $mirror"
apt-get "${A[@]}" update -qq

# write_preferences CHANNEL: criu and libcompel1 (one source package, always the same version) from CHANNEL
# (experimental: at sid's priority, so the newest of the three suites wins), or exactly CRIU_PACKAGE_VERSION.
write_preferences() {
  case $1 in
    version) printf 'Package: criu libcompel1\nPin: version %s\nPin-Priority: 990\n' "$CRIU_PACKAGE_VERSION" ;;
    experimental) printf 'Package: criu libcompel1\nPin: release a=experimental\nPin-Priority: 500\n' ;;
    sid) ;;
  esac > "$work/preferences"
}

# stage_criu CHANNEL: downloads criu's closure for CHANNEL and unpacks it, with its licences and the wrapper,
# into a new $stage beside PREFIX; sets stage_runs=false when the unpacked criu does not run. Called outside any
# condition, so that set -e still ends the script on every other failure.
stage_criu() {
  stage_runs=false
  write_preferences "$1"
  local cand debs=$work/debs-$1
  cand=$(apt-cache "${A[@]}" policy criu | sed -n 's/^ *Candidate: *//p')
  if [ "$1" = version ] && [ "$cand" != "$CRIU_PACKAGE_VERSION" ]; then
    echo "install-criu: no suite of $mirror has criu $CRIU_PACKAGE_VERSION:" >&2
    apt-cache "${A[@]}" policy criu >&2; exit 1
  fi
  echo "install-criu: criu candidate $cand ($1)"

  # criu + the run-time closure of its Depends/Pre-Depends (libraries only; Recommends iproute2 and
  # python3-pycriu are not needed to dump/restore). Each is downloaded at its candidate version.
  local pkgs
  mapfile -t pkgs < <(apt-cache "${A[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
      --no-breaks --no-replaces --no-enhances criu | grep -v '^ ' | grep -v '^<' | sort -u)
  [ "${#pkgs[@]}" -gt 1 ] || { echo "install-criu: could not resolve criu's dependencies" >&2; exit 1; }
  echo "install-criu: downloading ${#pkgs[@]} packages: ${pkgs[*]}"
  mkdir -p "$debs"
  (cd "$debs" && apt-get "${A[@]}" download -qq "${pkgs[@]}" >/dev/null)

  stage=$(mktemp -d "$(dirname "$prefix")/.criu-stage.XXXXXX")
  local f pkg copyright source
  for f in "$debs"/*.deb; do dpkg -x "$f" "$stage"; done
  [ "$(dpkg-deb -f "$debs"/criu_*.deb Version)" = "$(dpkg-deb -f "$debs"/libcompel1_*.deb Version)" ] || {
    echo "install-criu: criu and libcompel1 versions differ; the archive is inconsistent" >&2; exit 1; }

  # The licences, taken before usr/share goes. A package's doc folder may be a link to another package's
  # (libgcc-s1 to gcc-16-base): it is followed, but only inside the stage, never into the host's /usr/share/doc.
  mkdir -p "$stage/licenses/common-licenses"
  : > "$stage/licenses/SOURCES"
  : > "$stage/PACKAGES"
  for f in "$debs"/*.deb; do
    pkg=$(dpkg-deb -f "$f" Package)
    copyright=$(realpath -m "$stage/usr/share/doc/$pkg/copyright")
    case $copyright in "$stage"/*) ;; *) echo "install-criu: $pkg's copyright file points outside the stage" >&2; exit 1 ;; esac
    [ -s "$copyright" ] || { echo "install-criu: $pkg has no copyright file" >&2; exit 1; }
    cp "$copyright" "$stage/licenses/$pkg.copyright"
    source=$(dpkg-deb -f "$f" Source)
    printf '%s %s %s\n' "$pkg" "$(dpkg-deb -f "$f" Version)" "${source:-$pkg}" >> "$stage/licenses/SOURCES"
    printf '%s=%s\n' "$pkg" "$(dpkg-deb -f "$f" Version)" >> "$stage/PACKAGES"
  done
  # Debian's copyright files name the long licences (GPL-2, LGPL-2.1, ...) by their path in base-files.
  if [ ! -d "$work/base-files/root" ]; then
    mkdir -p "$work/base-files"
    (cd "$work/base-files" && apt-get "${A[@]}" download -qq base-files >/dev/null)
    dpkg -x "$work"/base-files/base-files_*.deb "$work/base-files/root"
  fi
  local common=$work/base-files/root/usr/share/common-licenses name
  for name in $(cat "$stage"/licenses/*.copyright | grep -o '/usr/share/common-licenses/[A-Za-z0-9.+-]*[A-Za-z0-9+]' | sed 's|.*/||' | sort -u); do
    [ -f "$common/$name" ] || { echo "install-criu: base-files has no common licence $name" >&2; exit 1; }
    cp "$common/$name" "$stage/licenses/common-licenses/"
  done
  rm -rf "$stage/usr/share" "$stage/etc" "$stage/var"
  # usrmerge layout: be safe if a package still ships /lib.
  if [ -d "$stage/lib/$multiarch" ]; then
    cp -a "$stage/lib/$multiarch/." "$stage/usr/lib/$multiarch/"; rm -rf "$stage/lib"
  fi
  local L=$stage/usr/lib/$multiarch
  [ -e "$L/ld-linux-x86-64.so.2" ] || { echo "install-criu: unpacked libc6 has no ld-linux-x86-64.so.2" >&2; exit 1; }
  [ -x "$stage/usr/sbin/criu" ] || { echo "install-criu: criu binary missing after unpack" >&2; exit 1; }
  # An empty plugin dir: the wrapper passes --libdir so a host's /usr/lib/criu plugins (e.g. cuda_plugin.so
  # of another CRIU build) are never loaded into this criu by accident.
  mkdir -p "$stage/usr/lib/criu" "$stage/bin"

  cat > "$stage/bin/criu" <<'WRAP'
#!/bin/sh
# CRIU runs on its own loader and libraries (Debian's), so it works on any glibc host.
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
  local libs
  libs=$("$L/ld-linux-x86-64.so.2" --library-path "$L" --list "$stage/usr/sbin/criu" 2>&1) || true
  if grep -q 'not found' <<<"$libs"; then
    echo "$libs" >&2
    echo "install-criu: unresolved libraries (above)" >&2; return 0
  fi
  if grep -v "$stage" <<<"$libs" | grep -q '=>'; then
    echo "install-criu: warning: some libraries resolve outside $prefix:" >&2
    grep -v "$stage" <<<"$libs" | grep '=>' >&2
  fi
  if ! version_ok "$stage/bin/criu"; then
    echo "install-criu: unpacked criu does not report version >= 4.2:" >&2; "$stage/bin/criu" --version >&2 || true; return 0
  fi
  echo "$requested" > "$stage/REQUESTED"
  chmod 755 "$stage"
  stage_runs=true
}

# check_stage: true when the staged criu runs and passes 'criu check' on this host (its output shown either way).
check_stage() {
  $stage_runs || return 1
  echo "install-criu: $("$stage/bin/criu" --version | head -n1): criu check"
  "$stage/bin/criu" check 2>&1 | sed 's/^/  /'
  return "${PIPESTATUS[0]}"
}

if [ "$requested" = auto ]; then
  stage_criu experimental
  if ! check_stage; then
    echo "install-criu: criu $(installed_criu_version "$stage") from experimental does not run or does not pass 'criu check' on this host (above); installing criu from forky/sid instead" >&2
    rm -rf "$stage"; stage=
    stage_criu sid
    $stage_runs || { echo "install-criu: criu from forky/sid does not run here either" >&2; exit 1; }
    check_stage || echo "install-criu: warning: criu from forky/sid fails 'criu check' on this host too; dump and restore may fail" >&2
  fi
else
  if [ -n "${CRIU_PACKAGE_VERSION:-}" ]; then stage_criu version; else stage_criu "$requested"; fi
  $stage_runs || exit 1
  check_stage || echo "install-criu: warning: the criu asked for ($requested) fails 'criu check' on this host" >&2
fi

# Swap into place (a previous broken/old/other install in PREFIX is replaced).
if [ -e "$prefix" ]; then
  old=$(mktemp -d "$(dirname "$prefix")/.criu-old.XXXXXX")
  mv "$prefix" "$old/"
  mv "$stage" "$prefix"
  rm -rf "$old"
else
  mv "$stage" "$prefix"
fi
stage=
echo "install-criu: installed $("$prefix/bin/criu" --version | head -n1) (package $(installed_criu_version "$prefix"), asked: $requested) into $prefix ($(du -sh "$prefix" | cut -f1))"
