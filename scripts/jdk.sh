# Sourced by ./nanochat4j, scripts/test.sh and .ci/run: exports JAVA_HOME pointing at a JDK >= 25.
# Search order: $JAVA_HOME (an explicit choice is never overridden), then /usr/lib/jvm/* and macOS's
# /Library/Java/JavaVirtualMachines/*, then `java` on the PATH. The machine's default java may be older
# (17 on Debian 12), so the search does not stop at the first java it sees.
NANOCHAT4J_MIN_JAVA=25

_nc4j_java_major() { # $1 = a java executable; prints its feature version, nothing if it does not run
  "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n 1
}

_nc4j_is_jdk() { # $1 = a candidate JAVA_HOME; true when it has java and javac of the minimum version
  local v
  [ -x "$1/bin/java" ] && [ -x "$1/bin/javac" ] || return 1
  v=$(_nc4j_java_major "$1/bin/java")
  [ -n "$v" ] && [ "$v" -ge "$NANOCHAT4J_MIN_JAVA" ]
}

nanochat4j_find_jdk() {
  local c v
  if [ -n "${JAVA_HOME:-}" ]; then
    if _nc4j_is_jdk "$JAVA_HOME"; then export JAVA_HOME; return 0; fi
    v=$( [ -x "$JAVA_HOME/bin/java" ] && _nc4j_java_major "$JAVA_HOME/bin/java")
    echo "nanochat4j: JAVA_HOME=$JAVA_HOME is ${v:+JDK $v, }not a JDK >= $NANOCHAT4J_MIN_JAVA; unset JAVA_HOME or point it at JDK $NANOCHAT4J_MIN_JAVA+ (e.g. apt-get install temurin-25-jdk)." >&2
    return 1
  fi
  for c in /usr/lib/jvm/* /Library/Java/JavaVirtualMachines/*/Contents/Home; do
    if _nc4j_is_jdk "$c"; then export JAVA_HOME="$c"; return 0; fi
  done
  if command -v java >/dev/null 2>&1; then
    c=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
    if _nc4j_is_jdk "$c"; then export JAVA_HOME="$c"; return 0; fi
  fi
  echo "nanochat4j: no JDK >= $NANOCHAT4J_MIN_JAVA found (looked at \$JAVA_HOME, /usr/lib/jvm/*, java on the PATH). Install one (e.g. apt-get install temurin-25-jdk, or https://adoptium.net) and set JAVA_HOME." >&2
  return 1
}
