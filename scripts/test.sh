#!/bin/sh
# Runs the tap suite inside a fresh network namespace that has only loopback,
# so not even a buggy proxy under test can reach anything beyond 127.0.0.0/8
# and ::1 (the team's rule: tests talk to loopback only). Falls back to a plain run, loudly,
# where namespaces are not permitted.
set -eu
# The suite drives real programs; say what is missing instead of failing halfway with a stack trace.
missing=""
for need in redis-server:redis-server git:git curl:curl ip:iproute2 unshare:util-linux; do
  command -v "${need%%:*}" >/dev/null 2>&1 || missing="$missing ${need#*:}"
done
[ -x /usr/bin/chromium ] || missing="$missing chromium"
if [ -n "$missing" ]; then
  echo "tests: missing system packages:$missing" >&2
  echo "tests: install them (Debian/Ubuntu: sudo apt-get install -y$missing), or run .ci/run, which does" >&2
  exit 1
fi
# tap, and on failure a digest of what failed printed last (CI shows only the tail of the output).
run_tap() {
  rc=0
  started=$(date +%s)
  npx tap "$@" || rc=$?
  if [ "$rc" -ne 0 ]; then
    node scripts/failure-digest.mjs "$started"
    exit "$rc"
  fi
}
if [ "${PORTCULLIS_NETNS:-}" = "1" ]; then
  ip link set lo up
  run_tap "$@"
  # The whole suite (no file arguments) also answers to the coverage floors.
  [ "$#" -gt 0 ] || exec node scripts/coverage-gate.mjs
  exit 0
fi
if [ "$(id -u)" = "0" ]; then ns="unshare --net"; else ns="unshare --net --map-root-user"; fi
if command -v ip >/dev/null 2>&1 && $ns true 2>/dev/null; then
  echo "tests: running in an isolated network namespace (loopback only)"
  exec $ns env PORTCULLIS_NETNS=1 sh "$0" "$@"
fi
echo "tests: WARNING: network namespaces unavailable; running without isolation" >&2
run_tap "$@"
[ "$#" -gt 0 ] || exec node scripts/coverage-gate.mjs
