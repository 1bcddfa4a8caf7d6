#!/usr/bin/env bash
# Runs every fuzz target of the given packages for FUZZTIME each.
# Go's fuzzing engine sometimes ends a run with "context deadline exceeded"
# when the time is up while a worker is still executing an input (it has no
# failing input then); such a run is retried once. A real failure — one that
# writes a failing input — fails at once.
# Fuzz targets are found in the test sources, not with `go test -list`: that
# runs each package's TestMain, and test/realnode's starts (and tears down) a
# whole node only to list nothing.
set -uo pipefail
FUZZTIME=${FUZZTIME:-10s}
for pkg in "$@"; do
  dir=$(go list -f '{{.Dir}}' "$pkg") || exit 1
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    for attempt in 1 2; do
      echo "fuzz $pkg $f ($FUZZTIME, attempt $attempt)"
      out=$(go test -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 0 "$pkg" 2>&1)
      rc=$?
      echo "$out" | tail -3
      [[ $rc == 0 ]] && break
      if [[ $attempt == 1 ]] && grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
        echo "fuzz engine ran out of time on a worker, not a failure: retrying once"
        continue
      fi
      echo "$out"
      exit 1
    done
  done
done
