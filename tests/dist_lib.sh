# tests/dist_lib.sh - what the tests of `sluice distributed` share
# (it_distributed.sh, it_dist_pipeline.sh); source it after lib.sh.
#  - URL[i]: worker i's REST base URL (the test fills it);
#  - req WORKER METHOD PATH [BODY]: sets CODE, the body in $T/body; the
#    curl arguments in REQ_ARGS (e.g. an Authorization header) are added;
#  - running_on CONNECTOR [WORKER]: its worker_id when it and all its tasks
#    are RUNNING (status read on WORKER, default 1), else nothing;
#  - stop_survivors: SIGTERM to each worker of PID[] but $victim, checked;
#  - jqt ARGS...: jq -e, quiet (a check of a JSON file).
declare -A URL
REQ_ARGS=()
req() {
  local args=(-s -o "$T/body" -w '%{http_code}' -X "$2" "${REQ_ARGS[@]}" "${URL[$1]}$3")
  [ $# -ge 4 ] && args+=(-H "Content-Type: application/json" --data-binary "$4")
  CODE=$(curl "${args[@]}")
}
running_on() {
  req "${2:-1}" GET "/connectors/$1/status"
  [ "$CODE" = 200 ] && jq -r 'select(.connector.state == "RUNNING" and (.tasks | length) > 0 and
                all(.tasks[]; .state == "RUNNING")) | .connector.worker_id' "$T/body"
}
# stop_survivors: SIGTERM to every worker in PID[] but $victim (killed),
# each checked to exit 0.
stop_survivors() {
  local i
  for i in "${!PID[@]}"; do
    [ "$i" = "$victim" ] && continue
    stop_worker "${PID[$i]}"
    check_eq "worker $i stops cleanly" 0 "$STOP_RC"
  done
}
# jqt ARGS...: jq -e without its output, for check (whose own line must show).
jqt() { jq -e "$@" >/dev/null; }
