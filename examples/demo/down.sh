#!/usr/bin/env bash
# Stops the demo's daemon and removes its pods, cgroups, mounts and files.
set -euo pipefail
cd "$(dirname "$0")/../.."

DEMO_DIR=${DEMO_DIR:-/tmp/shoal-demo}
SHOAL=${SHOAL:-$PWD/bin/shoal}

if [ -f "$DEMO_DIR/daemon.pid" ]; then
	pid=$(cat "$DEMO_DIR/daemon.pid")
	if kill "$pid" 2>/dev/null; then
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
fi
if [ -d "$DEMO_DIR/data" ]; then
	"$SHOAL" node reset --node-name demo --data-dir "$DEMO_DIR/data" --grace 2s
fi
rm -rf "$DEMO_DIR"
echo "demo removed"
