#!/usr/bin/env bash
# The test suite on an arm64 JVM, from an x86-64 Linux machine: Debian's OpenJDK 25 for arm64 runs under qemu-user,
# so C2's AArch64 backend compiles every kernel (NEON, as on Apple Silicon; or SVE, as on Graviton 3) and the tests
# check its results against the same float64 references as on x86. Nothing here is timed: emulated speed means
# nothing. On a real arm64 machine run scripts/test.sh instead.
#
#   scripts/arm64-checks.sh [neon|sve256] [maven args...]     e.g. scripts/arm64-checks.sh neon -pl tensor -am
#
# neon (default): QEMU_CPU=neoverse-n1, 128-bit NEON and no SVE — the JVM picks 128-bit vectors and the 32-register
# tiles, Apple Silicon's path. sve256: QEMU_CPU=max with 256-bit SVE — 8 lanes and the 32-register tiles, a pairing no
# x86 run of the suite has (AVX2 has 16 registers, AVX-512 16 lanes).
# Needs root (or sudo) once: it installs qemu-user-static and registers it for arm64 ELF files with binfmt_misc, so
# that the JVM's own helpers and the child JVMs some tests start run too. The JDK (Debian unstable's
# openjdk-25-jdk-headless and the libraries it and AWT's text need, ~380 MB of .debs, checked against the archive's
# SHA-256) is unpacked once into $NANOCHAT4J_ARM64_CACHE (default ~/.cache/nanochat4j/arm64). The CUDA kernels'
# cudasim stage is x86-only and not run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/jdk.sh
nanochat4j_find_jdk # Maven itself runs on the host's JDK; only the forked test JVMs are arm64

mode=neon
case "${1:-}" in
  neon | sve256) mode=$1; shift ;;
esac
case "$mode" in
  neon) cpu=neoverse-n1 ;;
  sve256) cpu=max,sve-default-vector-length=32 ;;
esac

[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || { echo "arm64-checks: for Linux x86-64 hosts (on arm64, run scripts/test.sh)" >&2; exit 2; }
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo

if ! command -v qemu-aarch64-static > /dev/null; then
  echo "arm64-checks: installing qemu-user-static ..." >&2
  $sudo apt-get install -y -q qemu-user-static >&2
fi

cache="${NANOCHAT4J_ARM64_CACHE:-$HOME/.cache/nanochat4j/arm64}"
root="$cache/root"
jdk="$root/usr/lib/jvm/java-25-openjdk-arm64"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
if [ ! -x "$jdk/bin/java" ]; then
  mkdir -p "$cache/debs"
  echo "arm64-checks: fetching Debian unstable's arm64 package index ..." >&2
  curl -fsS --retry 3 "$mirror/dists/sid/main/binary-arm64/Packages.xz" -o "$cache/Packages.xz.tmp"
  mv "$cache/Packages.xz.tmp" "$cache/Packages.xz"
  # name → file and SHA-256: the JDK, the libraries its launcher and libjvm load, and those AWT draws text with
  # (the training charts: harfbuzz, freetype, fontconfig and a font) with what they load in turn
  want="openjdk-25-jdk-headless openjdk-25-jre-headless libc6 libgcc-s1 libstdc++6 zlib1g libzstd1 libatomic1 liblcms2-2 libjpeg62-turbo
    libharfbuzz0b libfreetype6 libfontconfig1 fontconfig-config fonts-dejavu-core fonts-dejavu-mono libbrotli1 libbz2-1.0 libpng16-16t64
    libglib2.0-0t64 libffi8 libmount1 libblkid1 libselinux1 libpcre2-8-0 libgraphite2-3 libexpat1"
  xz -dc "$cache/Packages.xz" | awk -v want="$want" '
    BEGIN { n = split(want, w, /[ \n]+/); for (i = 1; i <= n; i++) if (w[i] != "") wanted[w[i]] = 1 }
    /^Package: / { pkg = $2 } /^Filename: / { file = $2 } /^SHA256: / { sha = $2 }
    /^$/ { if (pkg in wanted && !(pkg in seen)) { print pkg, file, sha; seen[pkg] = 1 } pkg = file = sha = "" }
  ' > "$cache/wanted.txt"
  for p in $want; do
    grep -q "^$p " "$cache/wanted.txt" || { echo "arm64-checks: Debian unstable's arm64 index has no package $p (renamed?)" >&2; exit 1; }
  done
  rm -rf "$root.tmp"
  mkdir -p "$root.tmp"
  while read -r pkg file sha; do
    deb="$cache/debs/$(basename "$file")"
    if [ ! -f "$deb" ]; then
      echo "arm64-checks: downloading $pkg ..." >&2
      curl -fsS --retry 3 "$mirror/$file" -o "$deb.tmp"
      mv "$deb.tmp" "$deb"
    fi
    echo "$sha  $deb" | sha256sum -c --quiet - || { rm -f "$deb"; echo "arm64-checks: $deb: SHA-256 mismatch (removed; run again)" >&2; exit 1; }
    dpkg-deb -x "$deb" "$root.tmp"
  done < "$cache/wanted.txt"
  # merged /usr: the loader is asked for as /lib/ld-linux-aarch64.so.1; Debian links the JDK's configuration to
  # /etc/java-25-openjdk, which must resolve inside the root, so those links become copies
  ln -sfn usr/lib "$root.tmp/lib"
  find "$root.tmp/usr/lib/jvm" -type l -lname '/*' | while read -r l; do
    t="$root.tmp$(readlink "$l")"
    if [ -e "$t" ]; then rm "$l" && cp "$t" "$l"; else rm "$l"; fi # the CA store is not needed: nothing goes online
  done
  rm -rf "$root"
  mv "$root.tmp" "$root"
fi

# Run arm64 ELF files through qemu wherever they are started (F: qemu is opened now, so it works in containers too).
binfmt=/proc/sys/fs/binfmt_misc
[ -f "$binfmt/register" ] || $sudo mount -t binfmt_misc binfmt_misc "$binfmt"
if [ ! -f "$binfmt/qemu-aarch64" ]; then
  magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
  mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
  echo ":qemu-aarch64:M::$magic:$mask:$(command -v qemu-aarch64-static):F" | $sudo tee "$binfmt/register" > /dev/null
fi

export QEMU_LD_PREFIX="$root" QEMU_CPU="$cpu"
echo "arm64-checks: $("$jdk/bin/java" -version 2>&1 | head -n 1), QEMU_CPU=$cpu" >&2
"$jdk/bin/java" -XX:+PrintFlagsFinal -version 2> /dev/null | awk '$2 == "UseSVE" || $2 == "MaxVectorSize" { print "  " $2 " = " $4 }' >&2
# JUnit's @Timeout limits are sized for native speed; emulated JVMs run several times slower (the multi-process
# training tests' child JVMs above all), so they are off here: the child processes keep their own deadlines.
./mvnw -B -ntp test -Djvm="$jdk/bin/java" -Dtest.jvm.extra=-Djunit.jupiter.execution.timeout.mode=disabled "$@"
