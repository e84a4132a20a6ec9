# Sourced by the benchmarks that run `vmctl standalone` (the caller has set vmctl=(...) and WORK):
#   start_standalone WORK [vmctl standalone options...]
# starts it with its data in WORK/standalone ($data) and datastores in WORK/datastores, waits until it serves,
# exports KUBECONFIG and keeps its pid in $server. standalone_cleanup (the caller's EXIT trap) stops it, kills
# any QEMU left under WORK and the caller's background jobs, and removes WORK.
server=
data=
standalone_work=

standalone_cleanup() {
  if [[ -n $server ]]; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  if [[ -n $standalone_work ]]; then
    for pid in $(pgrep -f "qemu-system.*$standalone_work" || true); do kill -9 "$pid" 2>/dev/null || true; done
  fi
  jobs -p | xargs -r kill 2>/dev/null || true
  [[ -z $standalone_work ]] || rm -rf "$standalone_work"
}

start_standalone() {
  standalone_work=$1
  shift
  data=$standalone_work/standalone
  mkdir -p "$data"
  "${vmctl[@]}" standalone --data-dir "$data" --port 0 --datastore-dir "$standalone_work/datastores" "$@" >"$standalone_work/standalone.log" 2>&1 &
  server=$!
  until grep -q "Press Ctrl-C" "$standalone_work/standalone.log" 2>/dev/null; do
    kill -0 "$server" 2>/dev/null || { cat "$standalone_work/standalone.log" >&2; return 1; }
    sleep 0.2
  done
  export KUBECONFIG=$data/kubeconfig
}
