#!/usr/bin/env bash
# `make demo`: a demo data directory, its daemon, and the console on it.
# Creates .demo/ on first use; starts strongroomd on it unless one already runs there;
# opens the console logged in as the demo admin (credentials printed above); stops the daemon it started on exit.
set -euo pipefail
umask 077  # like everything else in the data directory, daemon.log is for its owner only
BIN=${BIN:-.venv/bin}
DEMO=${DEMO:-.demo}
sr() { "$BIN/strongroom" --data-dir "$DEMO" "$@"; }

[ -f "$DEMO/strongroom.toml" ] || sr init --demo --practice-name "Demo Practice"
sr demo overview
[ -f "$DEMO/demo-credentials.txt" ] && { echo; echo "Demo admin (for \`strongroom login\`):"; sed 's/^/  /' "$DEMO/demo-credentials.txt"; }

started=""
if ! STRONGROOM_TIMEOUT=2 sr status >/dev/null 2>&1; then
  "$BIN/strongroomd" --data-dir "$DEMO" 2>>"$DEMO/daemon.log" &
  started=$!
  trap 'kill "$started" 2>/dev/null; wait "$started" 2>/dev/null || true' EXIT INT TERM
  for _ in $(seq 1 50); do STRONGROOM_TIMEOUT=1 sr status >/dev/null 2>&1 && break; sleep 0.2; done
fi
sr status

if [ -t 0 ] && [ -t 1 ]; then
  if [ -f "$DEMO/demo-credentials.txt" ]; then sr console --demo-admin; else sr console --token-from-operator; fi
else
  echo "(no terminal here: run \`$BIN/strongroom --data-dir $DEMO console --demo-admin\` in one to open the console)"
fi
