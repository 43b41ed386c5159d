#!/usr/bin/env bash
# The compose topology as local processes, for machines without Docker:
# MLflow (sqlite + proxied artifacts), a one-shot trainer, N serve replicas
# behind HAProxy (Debian's haproxy, configured from stack/haproxy.cfg),
# Prometheus and the legacy web form. Every process runs in its own process
# group; its PID file and log are under $STACK_DIR.
#
#   stack/stack.sh up                 start everything, wait until it is ready, print the URLs
#   stack/stack.sh down               stop everything `up` started (state stays for the next `up`)
#   stack/stack.sh status             what runs
#   stack/stack.sh restart serve-N    SIGTERM one replica (it drains), start it again, wait
#                                     until HAProxy has it back in rotation
#   stack/stack.sh rolling-restart    the same for every replica, one at a time
#   stack/stack.sh haproxy-config     print the HAProxy configuration `up` writes
#
# Settings (environment; defaults in brackets). Everything listens on
# $STACK_HOST [127.0.0.1].
#   STACK_DIR [.cache/stack]          PIDs, logs, binaries, MLflow's database and artifacts
#   STACK_REPLICAS [3]                serve replicas, on STACK_SERVE_PORT, +1, +2, ...
#   STACK_LB_PORT [8000]  STACK_SERVE_PORT [8001]  STACK_MLFLOW_PORT [5000]
#   STACK_LB_STATS_PORT [8404]        HAProxy's Prometheus exporter (/metrics), scraped by Prometheus
#   STACK_PROMETHEUS_PORT [9090]  STACK_LEGACY_PORT [8080]
#   STACK_TRAIN [notebook]            notebook: train.ipynb on $LOAN_DATA; artifacts: register
#                                     the shipped artifacts/ versions (seconds); none: skip
#   STACK_PROMETHEUS [auto]           1, 0, or auto (when `prometheus` is installed)
#   STACK_LEGACY [1]                  the loan officer's form
#   STACK_RECORD [postgres]           the decision record: postgres (Debian's PostgreSQL on
#                                     STACK_POSTGRES_PORT [5432], data in $STACK_DIR/postgres,
#                                     one database shared by every replica) or sqlite (each
#                                     replica its own file in its SERVE_DATA_DIR)
#   STACK_MLFLOW_AUTH [1]             MLflow's basic-auth app: the admin (user admin) for ops and
#                                     the trainer, the read-only mlservice-reader for the replicas,
#                                     mlservice-admin-api (EDIT on the model) for their /admin;
#                                     passwords generated into $STACK_DIR/secrets/ (0: no auth)
#   LOAN_DATA [../shared/data/loan_approval.csv]
#   SERVE_ADMIN_TOKEN                 unset: one is generated into $STACK_DIR/admin-token
#   SERVE_SHUTDOWN_DRAIN [3s]         longer than HAProxy's fall × inter + timeout check (1.5 s)
#   SERVE_SHUTDOWN_TIMEOUT [20s]      in-flight requests' time on SIGTERM, after the drain
#   STACK_SERVE_STOP_GRACE [30]       seconds a replica gets on SIGTERM before SIGKILL (≥ drain + timeout)
#   SERVE_POLL_INTERVAL, SERVE_MODEL, SERVE_LOG_LEVEL, ...  passed to every replica
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$root/.cache/stack}"
STACK_HOST="${STACK_HOST:-127.0.0.1}"
STACK_REPLICAS="${STACK_REPLICAS:-3}"
STACK_LB_PORT="${STACK_LB_PORT:-8000}"
STACK_LB_STATS_PORT="${STACK_LB_STATS_PORT:-8404}"
STACK_SERVE_PORT="${STACK_SERVE_PORT:-8001}"
STACK_MLFLOW_PORT="${STACK_MLFLOW_PORT:-5000}"
STACK_PROMETHEUS_PORT="${STACK_PROMETHEUS_PORT:-9090}"
STACK_LEGACY_PORT="${STACK_LEGACY_PORT:-8080}"
STACK_POSTGRES_PORT="${STACK_POSTGRES_PORT:-5432}"
STACK_RECORD="${STACK_RECORD:-postgres}"
STACK_TRAIN="${STACK_TRAIN:-notebook}"
STACK_PROMETHEUS="${STACK_PROMETHEUS:-auto}"
STACK_LEGACY="${STACK_LEGACY:-1}"
STACK_START_TIMEOUT="${STACK_START_TIMEOUT:-180}"
STACK_MLFLOW_AUTH="${STACK_MLFLOW_AUTH:-1}"
LOAN_DATA="${LOAN_DATA:-$(cd "$root/.." && pwd)/shared/data/loan_approval.csv}"
venv="$root/notebooks/.venv"
run="$STACK_DIR/run"   # <name>.pid
logs="$STACK_DIR/logs" # <name>.log
bin="$STACK_DIR/bin"
# A draining replica must leave HAProxy's rotation before it stops
# accepting: see the check settings in stack/haproxy.cfg.
export SERVE_SHUTDOWN_DRAIN="${SERVE_SHUTDOWN_DRAIN:-3s}"
export SERVE_SHUTDOWN_TIMEOUT="${SERVE_SHUTDOWN_TIMEOUT:-20s}"
# Seconds a replica gets on SIGTERM before SIGKILL: at least the drain and
# the in-flight timeout above, as compose's stop_grace_period (30s).
STACK_SERVE_STOP_GRACE="${STACK_SERVE_STOP_GRACE:-30}"

say() { printf 'stack: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

alive() { [ -s "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

# start NAME CMD...: CMD in a new session (its PID is its process group),
# stdout and stderr to logs/NAME.log.
start() {
  local name="$1"; shift
  setsid "$@" >"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$run/$name.pid"
}

# stop NAME [SECONDS]: SIGTERM to the group, SIGKILL after SECONDS [15]
# (a replica: STACK_SERVE_STOP_GRACE).
stop() {
  local name="$1" grace="${2:-15}" pid
  case "$name" in serve-*) grace="${2:-$STACK_SERVE_STOP_GRACE}" ;; esac
  [ -s "$run/$name.pid" ] || return 0
  pid="$(cat "$run/$name.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq $((grace * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name (pid $pid) ignored SIGTERM; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  fi
  # Whatever is left in the group (a child that outlived its leader).
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$run/$name.pid"
}

# wait_http NAME URL: until URL answers 2xx, NAME exits, or the time runs out.
wait_http() {
  local name="$1" url="$2" deadline=$((SECONDS + STACK_START_TIMEOUT))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    if ! alive "$name"; then
      tail -n 30 "$logs/$name.log" >&2 || true
      die "$name exited during start-up (log: $logs/$name.log)"
    fi
    [ $SECONDS -lt $deadline ] || { tail -n 30 "$logs/$name.log" >&2; die "$name: $url not ready after ${STACK_START_TIMEOUT}s"; }
    sleep 0.3
  done
  # Something else may hold the port and answer; make sure it is ours.
  sleep 0.2
  alive "$name" || { tail -n 30 "$logs/$name.log" >&2; die "$name exited during start-up (log: $logs/$name.log)"; }
}

# need_port NAME PORT: fail unless nothing listens on PORT yet.
need_port() {
  if (exec 3<>"/dev/tcp/$STACK_HOST/$2") 2>/dev/null; then
    die "$1: port $2 on $STACK_HOST is in use by another process; set STACK_${3}_PORT"
  fi
}

# All component names that have a PID file, whatever STACK_REPLICAS is now.
started() { (cd "$run" 2>/dev/null && ls -- *.pid 2>/dev/null | sed 's/\.pid$//') || true; }

down() {
  local order=(legacy prometheus haproxy) n
  for n in $(started); do case "$n" in serve-*) order+=("$n") ;; esac; done
  order+=(trainer postgres mlflow)
  for n in "${order[@]}"; do stop "$n"; done
  say "stopped (state kept in $STACK_DIR)"
}

status() {
  local n any=0
  for n in $(started); do
    any=1
    if alive "$n"; then echo "$n running (pid $(cat "$run/$n.pid"))"; else echo "$n not running (stale pid file)"; fi
  done
  [ $any = 1 ] || echo "nothing started from $STACK_DIR"
}

url() { echo "http://$STACK_HOST:$1"; }

# postgres_bin: the directory of Debian's PostgreSQL server programs.
postgres_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

# start_replica serve-N: start it with the command `up` wrote for it.
start_replica() {
  local cmd
  # shellcheck disable=SC2207 # the file holds words quoted with printf %q
  eval "cmd=($(cat "$run/$1.cmd"))"
  start "$1" "${cmd[@]}"
}

# haproxy_config SERVER-LINE...: stack/haproxy.cfg with this stack's listen
# addresses and replicas in place of compose's (the "local:" blocks).
haproxy_config() {
  local servers; servers="$(printf '%s\n' "$@")"
  awk -v bind="    bind $STACK_HOST:$STACK_LB_PORT" -v stats="    bind $STACK_HOST:$STACK_LB_STATS_PORT" -v servers="$servers" '
    /^ *# local: end/ { skip = 0; next }
    skip { next }
    /^ *# local: bind/ { print bind; skip = 1; next }
    /^ *# local: stats/ { print stats; skip = 1; next }
    /^ *# local: servers/ { print servers; skip = 1; next }
    /^ *# local: resolvers/ { print "    nameserver unused 127.0.0.1:53"; skip = 1; next }
    { print }' "$root/stack/haproxy.cfg"
}

# lb_up: how many replicas HAProxy has in rotation (0 when it does not answer).
lb_up() {
  curl -fsS --max-time 2 "$(url "$STACK_LB_PORT")/-/lb" 2>/dev/null | sed -n 's/.*"up":\([0-9]*\).*/\1/p' | grep . || echo 0
}

# wait_lb N: until HAProxy has N replicas in rotation.
wait_lb() {
  local deadline=$((SECONDS + STACK_START_TIMEOUT))
  until [ "$(lb_up)" -ge "$1" ]; do
    alive haproxy || { tail -n 30 "$logs/haproxy.log" >&2; die "haproxy exited (log: $logs/haproxy.log)"; }
    [ $SECONDS -lt $deadline ] || die "HAProxy has $(lb_up) of $1 replicas in rotation after ${STACK_START_TIMEOUT}s (log: $logs/haproxy.log)"
    sleep 0.2
  done
}

# restart_replica serve-N: SIGTERM (the replica drains: /ready 503, HAProxy
# takes it out), wait for it to exit, start it again and wait until HAProxy
# has every replica back in rotation.
restart_replica() {
  local name="$1" total
  total="$(started | grep -c '^serve-' || true)"
  say "restarting $name"
  stop "$name"
  start_replica "$name"
  local port
  port="$(sed -n 's/.*SERVE_ADDR=[^ ]*:\([0-9][0-9]*\).*/\1/p' "$run/$name.cmd")"
  wait_http "$name" "$(url "$port")/ready"
  wait_lb "$total"
  say "$name is back in rotation"
}

up() {
  [[ "$STACK_REPLICAS" =~ ^[1-9][0-9]*$ ]] || die "STACK_REPLICAS=$STACK_REPLICAS: must be a whole number ≥ 1"
  [ -x "$venv/bin/mlflow" ] || die "no $venv/bin/mlflow: run \`make notebooks-env\` first"
  local n
  for n in $(started); do alive "$n" && die "$n is already running from $STACK_DIR: run \`make stack-down\` first"; done
  need_port mlflow "$STACK_MLFLOW_PORT" MLFLOW
  need_port haproxy "$STACK_LB_PORT" LB
  need_port haproxy "$STACK_LB_STATS_PORT" LB_STATS
  command -v haproxy >/dev/null || die "no haproxy: run \`make stack-deps\` (apt-get install haproxy)"
  local i
  for i in $(seq "$STACK_REPLICAS"); do need_port "serve-$i" $((STACK_SERVE_PORT + i - 1)) SERVE; done
  [ "$STACK_PROMETHEUS" = 0 ] || need_port prometheus "$STACK_PROMETHEUS_PORT" PROMETHEUS
  [ "$STACK_LEGACY" = 0 ] || need_port legacy "$STACK_LEGACY_PORT" LEGACY
  case "$STACK_RECORD" in
    postgres) need_port postgres "$STACK_POSTGRES_PORT" POSTGRES ;;
    sqlite) ;;
    *) die "STACK_RECORD=$STACK_RECORD: must be postgres or sqlite" ;;
  esac
  mkdir -p "$run" "$logs" "$bin" "$STACK_DIR/mlflow/artifacts"
  trap 'rc=$?; if [ $rc != 0 ]; then say "start-up failed; stopping what was started"; down; fi' EXIT

  local ort="${ONNXRUNTIME_SHARED_LIBRARY_PATH:-}"
  [ -n "$ort" ] && [ -s "$ort" ] || ort="$("$root/scripts/onnxruntime.sh")"

  say "building serve and legacy into $bin"
  (cd "$root" && CGO_ENABLED=1 go build -o "$bin/serve" ./serve \
    && { [ "$STACK_LEGACY" = 0 ] || go build -o "$bin/legacy" ./legacy; })

  local mlflow_url; mlflow_url="$(url "$STACK_MLFLOW_PORT")"
  # MLflow's basic-auth app: its own user store beside the tracking
  # database; the admin account is created on the first start.
  local auth_env=() auth_args=() trainer_env=() trainer_args=() serve_auth=()
  case "$STACK_MLFLOW_AUTH" in
    1)
      mkdir -p "$STACK_DIR/secrets" && chmod 700 "$STACK_DIR/secrets"
      # Passwords, and the auth app's CSRF key: one per stack, kept across restarts.
      local f
      for f in mlflow-admin-password mlflow-reader-password mlflow-writer-password mlflow-flask-secret-key; do
        [ -s "$STACK_DIR/secrets/$f" ] ||
          (umask 077 && od -An -tx1 -N18 /dev/urandom | tr -d ' \n' >"$STACK_DIR/secrets/$f")
      done
      (umask 077 && cat >"$STACK_DIR/mlflow/basic_auth.ini" <<INI
[mlflow]
default_permission = READ
database_uri = sqlite:///$STACK_DIR/mlflow/basic_auth.db
admin_username = admin
admin_password = $(cat "$STACK_DIR/secrets/mlflow-admin-password")
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# Each replica polls: check a password once a minute, not on every call (PBKDF2).
auth_cache_ttl_seconds = 60
INI
)
      auth_env=(MLFLOW_AUTH_CONFIG_PATH="$STACK_DIR/mlflow/basic_auth.ini"
        MLFLOW_FLASK_SERVER_SECRET_KEY="$(cat "$STACK_DIR/secrets/mlflow-flask-secret-key")")
      auth_args=(--app-name basic-auth)
      trainer_env=(MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD="$(cat "$STACK_DIR/secrets/mlflow-admin-password")"
        MLFLOW_READER_PASSWORD="$(cat "$STACK_DIR/secrets/mlflow-reader-password")"
        MLFLOW_WRITER_PASSWORD="$(cat "$STACK_DIR/secrets/mlflow-writer-password")")
      trainer_args=(--reader mlservice-reader --writer mlservice-admin-api)
      serve_auth=(MLFLOW_TRACKING_USERNAME=mlservice-reader
        MLFLOW_TRACKING_PASSWORD="$(cat "$STACK_DIR/secrets/mlflow-reader-password")"
        SERVE_MLFLOW_WRITE_USERNAME=mlservice-admin-api
        SERVE_MLFLOW_WRITE_PASSWORD="$(cat "$STACK_DIR/secrets/mlflow-writer-password")") ;;
    0) ;;
    *) die "STACK_MLFLOW_AUTH=$STACK_MLFLOW_AUTH: must be 1 or 0" ;;
  esac
  say "starting MLflow on $mlflow_url$([ "$STACK_MLFLOW_AUTH" = 1 ] && echo " (basic auth)")"
  # No job runner (its workers each import MLflow: slow start-up); no
  # inherited tracking URI or credentials.
  (cd "$STACK_DIR/mlflow" && start mlflow env -u MLFLOW_TRACKING_URI -u MLFLOW_TRACKING_TOKEN \
      -u MLFLOW_TRACKING_USERNAME -u MLFLOW_TRACKING_PASSWORD "${auth_env[@]}" \
      MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false PYTHONUNBUFFERED=1 "$venv/bin/mlflow" server \
      --backend-store-uri "sqlite:///$STACK_DIR/mlflow/mlflow.db" \
      --artifacts-destination "$STACK_DIR/mlflow/artifacts" --serve-artifacts \
      --host "$STACK_HOST" --port "$STACK_MLFLOW_PORT" --workers 1 "${auth_args[@]}")
  wait_http mlflow "$mlflow_url/health"

  # The trainer runs as MLflow's admin (ops' account) and sets up the
  # replicas' accounts.
  trainer() {
    env -u MLFLOW_TRACKING_TOKEN "${trainer_env[@]}" "$venv/bin/python" "$root/stack/train.py" \
      --tracking-uri "$mlflow_url" "${trainer_args[@]}" "$@" >"$logs/trainer.log" 2>&1 \
      || { tail -n 30 "$logs/trainer.log" >&2; die "trainer failed"; }
  }
  case "$STACK_TRAIN" in
    none) say "STACK_TRAIN=none: not registering any version"; trainer --accounts-only ;;
    artifacts)
      say "registering the shipped versions of artifacts/ (log: $logs/trainer.log)"
      trainer --from-artifacts "$root/artifacts/loan-approval" ;;
    notebook)
      [ -s "$LOAN_DATA" ] || die "no data set at LOAN_DATA=$LOAN_DATA (see notebooks/README.md, Data); or use STACK_TRAIN=artifacts"
      say "training with train.ipynb on $LOAN_DATA (log: $logs/trainer.log)"
      trainer --data "$LOAN_DATA" --workdir "$STACK_DIR/trainer" ;;
    *) die "STACK_TRAIN=$STACK_TRAIN: must be notebook, artifacts or none" ;;
  esac
  tail -n 1 "$logs/trainer.log" 2>/dev/null | sed 's/^/stack: /' >&2 || true

  # The decision record: Debian's PostgreSQL, one cluster per stack in
  # $STACK_DIR/postgres, shared by every replica (SERVE_DECISIONS_URL).
  local record_env=()
  if [ "$STACK_RECORD" = postgres ]; then
    local pgbin; pgbin="$(postgres_bin)" || die "no PostgreSQL server (initdb): run \`make stack-deps\` (apt-get install postgresql)"
    local pgdir="$STACK_DIR/postgres" pgas=()
    mkdir -p "$STACK_DIR/secrets" && chmod 700 "$STACK_DIR/secrets"
    [ -s "$STACK_DIR/secrets/postgres-password" ] ||
      (umask 077 && od -An -tx1 -N18 /dev/urandom | tr -d ' \n' >"$STACK_DIR/secrets/postgres-password")
    if [ "$(id -u)" = 0 ]; then
      # PostgreSQL refuses to run as root: the cluster belongs to the
      # `postgres` user Debian's package creates.
      id postgres >/dev/null 2>&1 || die "running as root and there is no postgres user (apt-get install postgresql)"
      pgas=(runuser -u postgres --)
      chmod o+x "$STACK_DIR"
      mkdir -p "$pgdir" && chown postgres: "$pgdir" && chmod 700 "$pgdir"
    else
      mkdir -p "$pgdir" && chmod 700 "$pgdir"
    fi
    if [ ! -s "$pgdir/data/PG_VERSION" ]; then
      say "initialising PostgreSQL in $pgdir/data"
      local pw="$pgdir/pwfile"
      (umask 077 && cp "$STACK_DIR/secrets/postgres-password" "$pw") && { [ -z "${pgas[*]}" ] || chown postgres: "$pw"; }
      "${pgas[@]}" env LC_ALL=C "$pgbin/initdb" -D "$pgdir/data" -U mlservice --pwfile="$pw" \
        --auth=scram-sha-256 -E UTF8 --locale=C >"$logs/postgres-init.log" 2>&1 \
        || { rm -f "$pw"; tail -n 20 "$logs/postgres-init.log" >&2; die "initdb failed"; }
      rm -f "$pw"
    fi
    say "starting PostgreSQL (the decision record) on $STACK_HOST:$STACK_POSTGRES_PORT"
    start postgres "${pgas[@]}" env LC_ALL=C "$pgbin/postgres" -D "$pgdir/data" -p "$STACK_POSTGRES_PORT" \
      -c listen_addresses="$STACK_HOST" -c unix_socket_directories="$pgdir" -c max_connections=200
    local deadline=$((SECONDS + 60))
    until "$pgbin/pg_isready" -q -h "$STACK_HOST" -p "$STACK_POSTGRES_PORT"; do
      alive postgres || { tail -n 30 "$logs/postgres.log" >&2; die "postgres exited during start-up (log: $logs/postgres.log)"; }
      [ $SECONDS -lt $deadline ] || die "PostgreSQL not ready after 60 s (log: $logs/postgres.log)"
      sleep 0.2
    done
    local pgpass; pgpass="$(cat "$STACK_DIR/secrets/postgres-password")"
    if ! PGPASSWORD="$pgpass" "$pgbin/psql" -qtA -h "$STACK_HOST" -p "$STACK_POSTGRES_PORT" -U mlservice -d postgres \
        -c "SELECT 1 FROM pg_database WHERE datname = 'decisions'" | grep -q 1; then
      PGPASSWORD="$pgpass" "$pgbin/createdb" -h "$STACK_HOST" -p "$STACK_POSTGRES_PORT" -U mlservice decisions \
        || die "createdb decisions failed"
    fi
    record_env=(SERVE_DECISIONS_URL="postgres://mlservice:$pgpass@$STACK_HOST:$STACK_POSTGRES_PORT/decisions?sslmode=disable")
  fi

  if [ -z "${SERVE_ADMIN_TOKEN:-}" ]; then
    [ -s "$STACK_DIR/admin-token" ] || (umask 077 && od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$STACK_DIR/admin-token")
    SERVE_ADMIN_TOKEN="$(cat "$STACK_DIR/admin-token")"
  fi
  local port backends=() targets=() servers=()
  for i in $(seq "$STACK_REPLICAS"); do
    port=$((STACK_SERVE_PORT + i - 1))
    mkdir -p "$STACK_DIR/serve-$i"
    # The replica's command, kept for `restart`: the SERVE_*, MLFLOW_* and
    # ONNXRUNTIME_* variables of this shell plus the replica's own (it holds
    # the admin token: owner-only).
    (umask 077 && : >"$run/serve-$i.cmd")
    {
      printf 'env'
      local v
      for v in $(compgen -e | grep -E '^(SERVE_|MLFLOW_|ONNXRUNTIME_)' || true); do printf ' %q' "$v=${!v}"; done
      printf ' %q' "${serve_auth[@]}" "${record_env[@]}" SERVE_ADDR="$STACK_HOST:$port" \
        SERVE_CACHE_DIR="$STACK_DIR/serve-$i" SERVE_DATA_DIR="$STACK_DIR/serve-$i/data" \
        MLFLOW_TRACKING_URI="$mlflow_url" SERVE_ADMIN_TOKEN="$SERVE_ADMIN_TOKEN" \
        SERVE_ALLOW_VERSIONS_WITHOUT_REASONS="${SERVE_ALLOW_VERSIONS_WITHOUT_REASONS:-true}" \
        SERVE_TRUSTED_PROXIES="${SERVE_TRUSTED_PROXIES:-$STACK_HOST}" \
        ONNXRUNTIME_SHARED_LIBRARY_PATH="$ort" "$bin/serve"
      echo
    } >"$run/serve-$i.cmd"
    start_replica "serve-$i"
    backends+=("$(url "$port")")
    targets+=("'$STACK_HOST:$port'")
    servers+=("    server serve-$i $STACK_HOST:$port")
  done
  for i in $(seq "$STACK_REPLICAS"); do
    wait_http "serve-$i" "$(url $((STACK_SERVE_PORT + i - 1)))/ready"
  done
  say "$STACK_REPLICAS serve replicas ready"

  haproxy_config "${servers[@]}" >"$STACK_DIR/haproxy.cfg"
  haproxy -c -q -f "$STACK_DIR/haproxy.cfg" || die "haproxy: $STACK_DIR/haproxy.cfg is not valid"
  start haproxy haproxy -db -f "$STACK_DIR/haproxy.cfg"
  wait_lb "$STACK_REPLICAS"

  local prom=0
  case "$STACK_PROMETHEUS" in
    1) command -v prometheus >/dev/null || die "STACK_PROMETHEUS=1 but no prometheus (apt-get install prometheus)"; prom=1 ;;
    auto) command -v prometheus >/dev/null && prom=1 || say "no prometheus installed: skipping it (apt-get install prometheus)" ;;
  esac
  if [ $prom = 1 ]; then
    # monitoring/prometheus/prometheus.local.yml, with this stack's replicas and ports.
    {
      echo "# Written by stack/stack.sh for this stack; see monitoring/prometheus/prometheus.local.yml."
      echo "global: {scrape_interval: 5s, evaluation_interval: 5s, external_labels: {stack: local}}"
      if compgen -G "$root/monitoring/prometheus/rules/*.yml" >/dev/null; then
        echo "rule_files: ['$root/monitoring/prometheus/rules/*.yml']"
      fi
      echo "scrape_configs:"
      echo "  - {job_name: mlservice, metrics_path: /metrics, static_configs: [{targets: [$(IFS=,; echo "${targets[*]}")]}]}"
      echo "  - {job_name: haproxy, metrics_path: /metrics, static_configs: [{targets: ['$STACK_HOST:$STACK_LB_STATS_PORT']}]}"
      echo "  - {job_name: prometheus, static_configs: [{targets: ['$STACK_HOST:$STACK_PROMETHEUS_PORT']}]}"
    } >"$STACK_DIR/prometheus.yml"
    start prometheus prometheus --config.file="$STACK_DIR/prometheus.yml" \
      --storage.tsdb.path="$STACK_DIR/prometheus" --web.listen-address="$STACK_HOST:$STACK_PROMETHEUS_PORT"
    wait_http prometheus "$(url "$STACK_PROMETHEUS_PORT")/-/ready"
  fi

  if [ "$STACK_LEGACY" != 0 ]; then
    start legacy "$bin/legacy" web -addr "$STACK_HOST:$STACK_LEGACY_PORT" -api "$(url "$STACK_LB_PORT")" \
      -queue "$STACK_DIR/legacy/queue"
    wait_http legacy "$(url "$STACK_LEGACY_PORT")/"
  fi
  trap - EXIT

  cat <<EOF
ML Service stack is up ($STACK_REPLICAS replicas; state, PIDs and logs in $STACK_DIR):
  API (HAProxy)        $(url "$STACK_LB_PORT")          e.g. curl $(url "$STACK_LB_PORT")/admin/models -H "Authorization: Bearer \$(cat $STACK_DIR/admin-token)"
  replicas             ${backends[*]}
  HAProxy's exporter   $(url "$STACK_LB_STATS_PORT")/metrics
  MLflow               $mlflow_url
EOF
  [ "$STACK_RECORD" = postgres ] && echo "  decision record      PostgreSQL $STACK_HOST:$STACK_POSTGRES_PORT, database decisions, user mlservice (password in $STACK_DIR/secrets/postgres-password)"
  [ "$STACK_MLFLOW_AUTH" = 1 ] && echo "  MLflow admin (ops)   user admin, password in $STACK_DIR/secrets/mlflow-admin-password"
  [ $prom = 1 ] && echo "  Prometheus           $(url "$STACK_PROMETHEUS_PORT")"
  [ "$STACK_LEGACY" != 0 ] && echo "  loan officer's form  $(url "$STACK_LEGACY_PORT")"
  if [ -s "$STACK_DIR/admin-token" ] && [ "$SERVE_ADMIN_TOKEN" = "$(cat "$STACK_DIR/admin-token")" ]; then
    echo "  admin token          in $STACK_DIR/admin-token"
  fi
  echo "Stop it with: make stack-down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  restart)
    [[ "${2:-}" =~ ^serve-[0-9]+$ ]] && [ -s "$run/${2}.cmd" ] || die "usage: $0 restart serve-N (a replica of this stack)"
    restart_replica "$2" ;;
  haproxy-config)
    # The HAProxy configuration `up` would write for these settings, with
    # the replica ports STACK_SERVE_PORT, +1, ... (for stack/haproxy_test.go).
    servers=()
    for i in $(seq "$STACK_REPLICAS"); do servers+=("    server serve-$i $STACK_HOST:$((STACK_SERVE_PORT + i - 1))"); done
    haproxy_config "${servers[@]}" ;;
  rolling-restart)
    for n in $(started); do case "$n" in serve-*) restart_replica "$n" ;; esac; done ;;
  *) die "usage: $0 up|down|status|restart serve-N|rolling-restart|haproxy-config" ;;
esac
