#!/usr/bin/env bash
# Starts a one-node Shoal cluster following a Git repository made from examples/hello.
# Run through `make demo`; `make demo-down` removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/../.."

DEMO_DIR=${DEMO_DIR:-/tmp/shoal-demo}
SHOAL=${SHOAL:-$PWD/bin/shoal}
NODE=demo
export SHOAL_SOCKET=$DEMO_DIR/shoal.sock

if [ "$(id -u)" != 0 ]; then
	echo "the demo runs containers: run it as root" >&2
	exit 1
fi
if [ -f "$DEMO_DIR/daemon.pid" ] && kill -0 "$(cat "$DEMO_DIR/daemon.pid")" 2>/dev/null; then
	echo "the demo already runs (make demo-down stops it)"
	"$SHOAL" status
	exit 0
fi
mkdir -p "$DEMO_DIR/data/images/import"

echo "== building the example app and packing it as an OCI image"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$DEMO_DIR/hello-app" ./examples/app
"$SHOAL" image pack "$DEMO_DIR/hello-app" --tag localhost/shoal/hello:v1 -o "$DEMO_DIR/data/images/import/hello.tar"

echo "== creating the desired-state repository $DEMO_DIR/repo"
if [ ! -d "$DEMO_DIR/repo/.git" ]; then
	mkdir -p "$DEMO_DIR/repo"
	cp examples/hello/*.yaml "$DEMO_DIR/repo/"
	git -C "$DEMO_DIR/repo" init -q -b main
	git -C "$DEMO_DIR/repo" add .
	git -C "$DEMO_DIR/repo" -c user.name="Shoal demo" -c user.email=demo@shoal.invalid commit -q -m "hello: 3 replicas"
fi

echo "== starting the daemon (log: $DEMO_DIR/daemon.log)"
setsid nohup "$SHOAL" daemon --node-name "$NODE" --data-dir "$DEMO_DIR/data" \
	--repo "file://$DEMO_DIR/repo" --socket "$SHOAL_SOCKET" --crash-loop-base 2s \
	>"$DEMO_DIR/daemon.log" 2>&1 </dev/null &
echo $! >"$DEMO_DIR/daemon.pid"

echo "== waiting for the node to converge"
head=$(git -C "$DEMO_DIR/repo" rev-parse HEAD)
for _ in $(seq 1 240); do
	if "$SHOAL" status -o json 2>/dev/null | grep -q "\"converged\": \"$head\""; then
		break
	fi
	if ! kill -0 "$(cat "$DEMO_DIR/daemon.pid")" 2>/dev/null; then
		echo "the daemon stopped; its log:" >&2
		tail -30 "$DEMO_DIR/daemon.log" >&2
		exit 1
	fi
	sleep 0.5
done
if ! "$SHOAL" status -o json | grep -q "\"converged\": \"$head\""; then
	echo "the node did not converge in 2 minutes; its log:" >&2
	tail -30 "$DEMO_DIR/daemon.log" >&2
	exit 1
fi
echo
"$SHOAL" status
echo
"$SHOAL" get pods -o wide
echo
"$SHOAL" get services -o wide
vip=$("$SHOAL" get services hello -o json | sed -n 's/.*"clusterIP": "\([0-9.]*\)".*/\1/p' | head -1)
cat <<EOT

The cluster runs and follows $DEMO_DIR/repo. Try:

  export SHOAL_SOCKET=$SHOAL_SOCKET PATH=$(dirname "$SHOAL"):\$PATH
  cd $DEMO_DIR/repo
  sed -i 's/replicas: 3/replicas: 5/' deployment.yaml && git commit -qam "hello: 5 replicas"
  shoal status --watch              # the node converges to the new commit (Ctrl-C to stop)
  git revert --no-edit HEAD         # roll back: a new commit like any other
  shoal history                     # every commit seen, applied or rejected, and how long it took
  shoal get pods -o wide; shoal logs <pod>; shoal describe deployment hello
  curl http://${vip:-<cluster IP>}/                  # the hello Service: each request to the next replica
  shoal exec <pod> -- /app lookup hello   # the cluster DNS from inside a pod
  shoal netplane dump                     # what the node's eBPF load balancer holds

make demo-down stops the daemon and removes everything the demo made.
EOT
