# Sourced by the install scripts. run_logged LABEL COMMAND...: runs COMMAND
# with its stdout and stderr captured; when it fails, prints "LABEL failed
# (exit N):" and the whole captured output to stderr and returns N, so that an
# install step is quiet when it works and never hides why it did not.
run_logged() {
  local label=$1
  shift
  local log
  log=$(mktemp)
  local status=0
  "$@" >"$log" 2>&1 || status=$?
  if [[ $status -ne 0 ]]; then
    echo "$label failed (exit $status):" >&2
    cat "$log" >&2
  fi
  rm -f "$log"
  return "$status"
}
