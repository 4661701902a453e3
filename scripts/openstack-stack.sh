#!/usr/bin/env bash
# A real Keystone + Glance (Debian packages) on 127.0.0.1, for tests and for people.
#
#   scripts/openstack-stack.sh start    # (re)create and start; prints `export NAME=value` lines
#   scripts/openstack-stack.sh env      # print the env of the running stack
#   scripts/openstack-stack.sh status   # exit 0 if Keystone and Glance both answer, else 1
#   scripts/openstack-stack.sh stop     # stop what `start` started
#
#   eval "$(scripts/openstack-stack.sh start)"
#
# Progress goes to stderr, the env to stdout (and to $STACK_DIR/env).
# Knobs: STACK_DIR (default <repo>/.stack), KEYSTONE_PORT, GLANCE_PORT (default: free ports),
#        KEYSTONE_DB_NAME (the PostgreSQL database, dropped on every fresh start; by default one
#        per STACK_DIR, so that a second stack on the machine, a clone's say, never drops this one's).
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$REPO_DIR/.stack}"
KEYSTONE_DB_NAME="${KEYSTONE_DB_NAME:-keystone_$(printf '%s' "$STACK_DIR" | sha256sum | cut -c1-12)}"

# Fixed, well-known credentials: this stack only ever listens on 127.0.0.1.
ADMIN_PASSWORD="stack-admin"
GLANCE_SERVICE_PASSWORD="stack-glance"
DEMO_PASSWORD="stack-demo"
ALT_PASSWORD="stack-alt"
GATEWAY_SERVICE_PASSWORD="stack-gateway"
KEYSTONE_DB_PASSWORD="keystone"
REGION="RegionOne"
READY_TIMEOUT=60

log() { printf '[openstack-stack %3ss] %s\n' "$SECONDS" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  echo "usage: $0 start|stop|env|status" >&2
  exit 2
}

# ---------------------------------------------------------------- helpers

# True when an HTTP server answers URL with a status below 500 (300 counts: Glance's version list).
http_answers() {
  python3 - "$1" <<'PY' 2>/dev/null
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
        sys.exit(0 if r.status < 500 else 1)
except urllib.error.HTTPError as e:
    sys.exit(0 if e.code < 500 else 1)
except Exception:
    sys.exit(1)
PY
}

keystone_answers() { http_answers "http://127.0.0.1:$1/v3"; }
glance_answers() { http_answers "http://127.0.0.1:$1/versions"; }

# True when something accepts TCP connections on 127.0.0.1:PORT (no ss/iproute2 needed).
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# PID from a pid file, only if that process is alive and is really ours (its command line
# names a file under STACK_DIR), so a recycled pid is never signalled.
live_pid() {
  local pidfile="$1" pid
  [[ -s "$pidfile" ]] || return 1
  pid="$(<"$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$STACK_DIR/" || return 1
  echo "$pid"
}

tail_log() {
  local f
  for f in "$@"; do
    [[ -f "$f" ]] || continue
    log "---- last lines of $f ----"
    tail -n 40 "$f" >&2 || true
  done
}

# Wait until CHECK PORT succeeds, or fail with the logs' tails.
wait_until_answers() {
  local name="$1" check="$2" port="$3" pidfile="$4"
  shift 4
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$check" "$port"; do
    if ! live_pid "$pidfile" >/dev/null; then
      tail_log "$@"
      die "$name exited before answering on 127.0.0.1:$port"
    fi
    if ((SECONDS >= deadline)); then
      tail_log "$@"
      die "$name did not answer on 127.0.0.1:$port within ${READY_TIMEOUT}s"
    fi
    sleep 0.3
  done
}

load_state() {
  # Written by us in start(); holds the ports of the running stack.
  # shellcheck source=/dev/null
  [[ -f "$STACK_DIR/state" ]] && source "$STACK_DIR/state"
}

# ---------------------------------------------------------------- prerequisites

ensure_packages() {
  if ! command -v glance-api >/dev/null || ! command -v keystone-manage >/dev/null; then
    [[ "$(id -u)" == 0 ]] || die "glance-api/keystone are not installed and we are not root to install them"
    log "installing glance-api keystone python3-psycopg2 (takes a minute or two)"
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y glance-api keystone python3-psycopg2 >&2
  fi
  # The Debian packages try to start their own services; policy-rc.d refuses that on CI images,
  # and we run our own copies below anyway.
}

ensure_postgres() {
  if ! pg_isready -q -h 127.0.0.1; then
    command -v pg_ctlcluster >/dev/null || die "PostgreSQL is not running on 127.0.0.1:5432 and pg_ctlcluster is missing"
    local version
    version="$(ls /etc/postgresql)"
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2
    local deadline=$((SECONDS + 30))
    until pg_isready -q -h 127.0.0.1; do
      ((SECONDS < deadline)) || die "PostgreSQL did not come up on 127.0.0.1:5432"
      sleep 0.3
    done
  fi
}

# A fresh database on every fresh start: a stale one (other fernet keys, other ids) breaks bootstrap.
reset_keystone_db() {
  local psql=(psql -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d postgres)
  PGOPTIONS="-c client_min_messages=warning" "${psql[@]}" >&2 <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'keystone') THEN
    CREATE ROLE keystone LOGIN PASSWORD '$KEYSTONE_DB_PASSWORD';
  END IF;
END \$\$;
-- WITH (FORCE): a Keystone killed without a clean stop may still hold connections.
DROP DATABASE IF EXISTS "$KEYSTONE_DB_NAME" WITH (FORCE);
CREATE DATABASE "$KEYSTONE_DB_NAME" OWNER keystone;
SQL
}

# ---------------------------------------------------------------- keystone

write_keystone_conf() {
  local k="$STACK_DIR/keystone"
  cat >"$k/keystone.conf" <<EOF
# Generated by scripts/openstack-stack.sh; rewritten on every fresh start.
[DEFAULT]
log_file = $k/keystone.log

[database]
# PostgreSQL, not SQLite: under uwsgi SQLite fails with "database is locked".
connection = postgresql://keystone:$KEYSTONE_DB_PASSWORD@127.0.0.1/$KEYSTONE_DB_NAME

[identity]
# bcrypt's minimum cost: every password check (token request) is ~60x cheaper than the default 12.
password_hash_rounds = 4

[token]
provider = fernet

[fernet_tokens]
key_repository = $k/fernet-keys

[fernet_receipts]
key_repository = $k/fernet-keys

[credential]
key_repository = $k/credential-keys
EOF
}

# keystone-manage prints eventlet tracebacks at exit but exits 0: keep its chatter in a file.
keystone_manage() {
  keystone-manage --config-file "$STACK_DIR/keystone/keystone.conf" "$@" \
    </dev/null >>"$STACK_DIR/keystone/keystone-manage.out" 2>&1 9>&-
}

keystone_manage_failed() {
  tail_log "$STACK_DIR/keystone/keystone-manage.out" "$STACK_DIR/keystone/keystone.log"
  die "keystone-manage $1 failed"
}

setup_keystone() {
  local url="http://127.0.0.1:$KEYSTONE_PORT/v3/" user group keys_pid
  user="$(id -un)"
  group="$(id -gn)"
  log "keystone: db_sync, fernet keys, bootstrap"
  # The key repositories do not touch the database: make them while db_sync runs (~2 s each).
  (keystone_manage fernet_setup --keystone-user "$user" --keystone-group "$group" &&
    keystone_manage credential_setup --keystone-user "$user" --keystone-group "$group") &
  keys_pid=$!
  keystone_manage db_sync || keystone_manage_failed db_sync
  wait "$keys_pid" || keystone_manage_failed "fernet_setup/credential_setup"
  keystone_manage bootstrap \
    --bootstrap-password "$ADMIN_PASSWORD" \
    --bootstrap-username admin --bootstrap-project-name admin --bootstrap-role-name admin \
    --bootstrap-service-name keystone \
    --bootstrap-admin-url "$url" --bootstrap-internal-url "$url" --bootstrap-public-url "$url" \
    --bootstrap-region-id "$REGION" || keystone_manage_failed bootstrap
}

start_keystone() {
  local k="$STACK_DIR/keystone"
  log "keystone: starting uwsgi on 127.0.0.1:$KEYSTONE_PORT"
  # setsid: own process group, so stop() can reap every worker. </dev/null and the redirections:
  # the daemon must not hold the caller's stdout (else `eval "$(... start)"` never returns) nor
  # our lock fd 9 (else the next start/stop blocks forever).
  # --die-on-term: SIGTERM means exit, not reload. --need-app: exit if Keystone cannot load.
  # --buffer-size: room for large request headers (tokens, X-Subject-Token).
  # Connection: close: --http-socket answers HTTP/1.1 without it, then closes the socket anyway,
  # so a client reusing the connection (Glance's auth middleware, Node's undici) fails at random
  # with "Remote end closed connection" / "other side closed". The header makes clients not reuse.
  setsid uwsgi --http-socket "127.0.0.1:$KEYSTONE_PORT" --plugins python3 \
    --wsgi-file /usr/bin/keystone-wsgi-public --need-app \
    --master --processes 2 --threads 2 --die-on-term --buffer-size 65535 \
    --add-header "Connection: close" \
    --env "OS_KEYSTONE_CONFIG_FILES=$k/keystone.conf" \
    --env "OS_CORS__ALLOWED_ORIGIN=*" \
    --pidfile "$k/uwsgi.pid" \
    </dev/null >>"$k/uwsgi.log" 2>&1 9>&- &
  echo $! >"$STACK_DIR/keystone.pid"
  wait_until_answers keystone keystone_answers "$KEYSTONE_PORT" "$STACK_DIR/keystone.pid" \
    "$k/uwsgi.log" "$k/keystone.log"
}

# Projects, users, roles and the image service, through Keystone's REST API (no openstack CLI).
provision_keystone() {
  log "keystone: creating projects, users, roles and the image endpoints"
  KS_URL="http://127.0.0.1:$KEYSTONE_PORT/v3" GLANCE_URL="http://127.0.0.1:$GLANCE_PORT" \
    ADMIN_PASSWORD="$ADMIN_PASSWORD" GLANCE_SERVICE_PASSWORD="$GLANCE_SERVICE_PASSWORD" \
    DEMO_PASSWORD="$DEMO_PASSWORD" ALT_PASSWORD="$ALT_PASSWORD" REGION="$REGION" \
    GATEWAY_SERVICE_PASSWORD="$GATEWAY_SERVICE_PASSWORD" \
    python3 - <<'PY'
import json, os, sys, urllib.error, urllib.request

KS = os.environ["KS_URL"]
E = os.environ


def call(method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(KS + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.headers, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        sys.exit(f"{method} {path}: HTTP {e.code}: {e.read()[:500]!r}")


def token(user, password, project):
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
    headers, _ = call("POST", "/auth/tokens", body)
    return headers["X-Subject-Token"]


admin = token("admin", E["ADMIN_PASSWORD"], "admin")


# The database is brand new (dropped on every fresh start), so create without looking first:
# each Keystone call costs ~0.1 s here.
def create(collection, kind, **attrs):
    _, body = call("POST", f"/{collection}", {kind: attrs}, admin)
    return body[kind]["id"]


def project(name):
    return create("projects", "project", name=name, domain_id="default",
                  description=f"{name} (openstack-stack.sh)")


# admin/member/reader come from bootstrap; create member/reader if this Keystone does not.
_, body = call("GET", "/roles", token=admin)
roles = {r["name"]: r["id"] for r in body["roles"]}
for name in ("member", "reader"):
    if name not in roles:
        roles[name] = create("roles", "role", name=name)


def user(name, password, project_id, role_id):
    uid = create("users", "user", name=name, password=password, domain_id="default",
                 default_project_id=project_id, enabled=True)
    call("PUT", f"/projects/{project_id}/users/{uid}/roles/{role_id}", token=admin)


user("glance", E["GLANCE_SERVICE_PASSWORD"], project("service"), roles["admin"])
user("demo", E["DEMO_PASSWORD"], project("demo"), roles["member"])
user("alt", E["ALT_PASSWORD"], project("alt"), roles["member"])
# The gateway's service user: the trustee of the uploads' trusts. It needs no role at all.
create("users", "user", name="gateway", password=E["GATEWAY_SERVICE_PASSWORD"], domain_id="default", enabled=True)

svc = create("services", "service", type="image", name="glance",
             description="Image service", enabled=True)
for interface in ("public", "internal", "admin"):
    create("endpoints", "endpoint", service_id=svc, interface=interface,
           url=E["GLANCE_URL"], region_id=E["REGION"], enabled=True)

# Prove the credentials we are about to print work.
token("demo", E["DEMO_PASSWORD"], "demo")
token("alt", E["ALT_PASSWORD"], "alt")
PY
}

# ---------------------------------------------------------------- glance

write_glance_conf() {
  local g="$STACK_DIR/glance" paste
  paste=/etc/glance/glance-api-paste.ini
  [[ -f "$paste" ]] || paste=/usr/share/glance-common/glance-api-paste.ini
  [[ -f "$paste" ]] || die "glance-api-paste.ini not found"
  cat >"$g/glance-api.conf" <<EOF
# Generated by scripts/openstack-stack.sh; rewritten on every fresh start.
# client_socket_timeout is left at its default (900 s).
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $GLANCE_PORT
workers = 1
enabled_backends = fs:file
log_file = $g/glance-api.log

[database]
# SQLite is fine for Glance with one worker.
connection = sqlite:///$g/glance.sqlite

[glance_store]
default_backend = fs

[fs]
filesystem_store_datadir = $g/images/

[os_glance_staging_store]
filesystem_store_datadir = $g/staging/

[os_glance_tasks_store]
filesystem_store_datadir = $g/tasks/

[oslo_concurrency]
lock_path = $g/lock

[paste_deploy]
config_file = $paste
# keystone: real tokens, 401s and per-project visibility. (Empty = no auth at all.)
flavor = keystone

[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:$KEYSTONE_PORT/v3
auth_url = http://127.0.0.1:$KEYSTONE_PORT/v3
auth_type = password
project_domain_id = default
user_domain_id = default
project_name = service
username = glance
password = $GLANCE_SERVICE_PASSWORD
region_name = $REGION
# No in-process token cache: a token revoked at Keystone is refused by Glance at once.
token_cache_time = -1
EOF
}

# Glance needs Keystone only when a request comes in, so its db_sync and boot overlap Keystone's.
glance_db_sync_bg() {
  local g="$STACK_DIR/glance"
  log "glance: db_sync (in the background)"
  glance-manage --config-file "$g/glance-api.conf" db_sync </dev/null >>"$g/glance-manage.out" 2>&1 9>&- &
  GLANCE_DB_SYNC_PID=$!
}

start_glance() {
  local g="$STACK_DIR/glance"
  wait "$GLANCE_DB_SYNC_PID" || {
    tail_log "$g/glance-manage.out"
    die "glance-manage db_sync failed"
  }
  log "glance: starting glance-api on 127.0.0.1:$GLANCE_PORT"
  # Same daemon hygiene as uwsgi above (own process group, no inherited stdout or lock fd).
  setsid glance-api --config-file "$g/glance-api.conf" \
    </dev/null >>"$g/glance-api.out" 2>&1 9>&- &
  echo $! >"$STACK_DIR/glance.pid"
}

wait_glance() {
  local g="$STACK_DIR/glance"
  wait_until_answers glance glance_answers "$GLANCE_PORT" "$STACK_DIR/glance.pid" \
    "$g/glance-api.out" "$g/glance-api.log"
}

# ---------------------------------------------------------------- env

write_env() {
  local tmp="$STACK_DIR/env.tmp"
  cat >"$tmp" <<EOF
export OS_AUTH_URL=http://127.0.0.1:$KEYSTONE_PORT/v3
export GLANCE_URL=http://127.0.0.1:$GLANCE_PORT
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=$REGION
export OS_ADMIN_PASSWORD=$ADMIN_PASSWORD
export OS_USERNAME=demo
export OS_PASSWORD=$DEMO_PASSWORD
export OS_PROJECT_NAME=demo
export ALT_USERNAME=alt
export ALT_PASSWORD=$ALT_PASSWORD
export ALT_PROJECT_NAME=alt
export SERVICE_USERNAME=gateway
export SERVICE_PASSWORD=$GATEWAY_SERVICE_PASSWORD
export STACK_DIR=$STACK_DIR
EOF
  mv -f "$tmp" "$STACK_DIR/env"
}

# ---------------------------------------------------------------- stop

# PIDs in process group PGID whose command line names STACK_DIR: ours, even when the leader is gone.
# Reads /proc directly: minimal Debian images have no ps (procps).
our_group_members() {
  local pgid="$1" dir pid stat grp
  for dir in /proc/[0-9]*; do
    pid="${dir#/proc/}"
    stat="$(cat 2>/dev/null "$dir/stat")" || continue
    # Fields after "(comm) ": state ppid pgrp ...; comm itself may hold spaces.
    read -r _ _ grp _ <<<"${stat##*) }"
    if [[ "$grp" == "$pgid" ]] && tr '\0' ' ' 2>/dev/null <"$dir/cmdline" | grep -qF -- "$STACK_DIR/"; then
      echo "$pid"
    fi
  done
}

# Stop one service: SIGNAL to its leader (glance-api's parent stops its worker, the uwsgi master its
# workers), wait for the whole group to go, then SIGKILL whatever of it is left. setsid made the
# recorded pid the group id of the service and all its children.
stop_service() {
  local name="$1" signal="$2" pidfile="$STACK_DIR/$1.pid" pid deadline
  local -a left
  [[ -s "$pidfile" ]] || return 0
  pid="$(<"$pidfile")"
  if [[ "$pid" =~ ^[0-9]+$ ]]; then
    if live_pid "$pidfile" >/dev/null; then
      log "$name: stopping (pid $pid, SIG$signal)"
      kill "-$signal" "$pid" 2>/dev/null || true
    fi
    deadline=$((SECONDS + 20))
    mapfile -t left < <(our_group_members "$pid")
    while ((${#left[@]} > 0 && SECONDS < deadline)); do
      sleep 0.2
      mapfile -t left < <(our_group_members "$pid")
    done
    if ((${#left[@]} > 0)); then
      log "$name: killing leftover processes ${left[*]}"
      kill -KILL "${left[@]}" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

wait_port_free() {
  local port="$1" deadline=$((SECONDS + 20))
  [[ -n "$port" ]] || return 0
  while port_in_use "$port"; do
    ((SECONDS < deadline)) || die "port $port is still in use after stop"
    sleep 0.2
  done
}

# Stop leaves STACK_DIR (configs, logs, data) in place for post-mortems; the next fresh
# start wipes the keystone/ and glance/ folders and the Keystone database.
do_stop() {
  local KEYSTONE_PORT="" GLANCE_PORT=""
  load_state || true
  stop_service glance TERM
  stop_service keystone INT # SIGINT: uwsgi's "exit now" (plain SIGTERM would mean reload without --die-on-term)
  wait_port_free "$GLANCE_PORT"
  wait_port_free "$KEYSTONE_PORT"
}

# ---------------------------------------------------------------- start / status

stack_answers() {
  local KEYSTONE_PORT="" GLANCE_PORT=""
  load_state || return 1
  [[ -n "$KEYSTONE_PORT" && -n "$GLANCE_PORT" ]] || return 1
  live_pid "$STACK_DIR/keystone.pid" >/dev/null &&
    live_pid "$STACK_DIR/glance.pid" >/dev/null &&
    keystone_answers "$KEYSTONE_PORT" && glance_answers "$GLANCE_PORT"
}

start_failed() {
  local rc=$?
  ((rc != 0)) || return 0
  log "start failed (exit $rc); stopping what was started, logs stay in $STACK_DIR"
  do_stop || true
  exit "$rc"
}

do_start() {
  local want_k="${KEYSTONE_PORT:-}" want_g="${GLANCE_PORT:-}"
  if stack_answers && [[ -f "$STACK_DIR/env" ]]; then
    local KEYSTONE_PORT="" GLANCE_PORT=""
    load_state
    # Same stack, unless the caller asks for other ports.
    if [[ (-z "$want_k" || "$want_k" == "$KEYSTONE_PORT") && (-z "$want_g" || "$want_g" == "$GLANCE_PORT") ]]; then
      log "already running (keystone :$KEYSTONE_PORT, glance :$GLANCE_PORT)"
      cat "$STACK_DIR/env"
      return 0
    fi
  fi

  local t0=$SECONDS
  do_stop # whatever half of a previous stack is still recorded
  # A failed start stops what it started (no stray daemons in CI); its logs stay in STACK_DIR.
  trap start_failed EXIT
  ensure_packages
  ensure_postgres

  KEYSTONE_PORT="${want_k:-$(free_port)}"
  GLANCE_PORT="${want_g:-$(free_port)}"
  while [[ -z "$want_g" && "$GLANCE_PORT" == "$KEYSTONE_PORT" ]]; do GLANCE_PORT="$(free_port)"; done
  [[ "$KEYSTONE_PORT" != "$GLANCE_PORT" ]] || die "KEYSTONE_PORT and GLANCE_PORT must differ"
  local p
  for p in "$KEYSTONE_PORT" "$GLANCE_PORT"; do
    ! port_in_use "$p" || die "port $p on 127.0.0.1 is already in use"
  done

  # Fresh state: new DB ids and fernet keys make old Glance data and tokens meaningless anyway.
  rm -rf "$STACK_DIR/keystone" "$STACK_DIR/glance" "$STACK_DIR/env"
  mkdir -p "$STACK_DIR/keystone" \
    "$STACK_DIR/glance"/{images,staging,tasks,lock}
  printf 'KEYSTONE_PORT=%s\nGLANCE_PORT=%s\n' "$KEYSTONE_PORT" "$GLANCE_PORT" >"$STACK_DIR/state"

  write_glance_conf
  glance_db_sync_bg
  reset_keystone_db
  write_keystone_conf
  setup_keystone
  start_glance
  start_keystone
  provision_keystone
  wait_glance
  write_env
  trap - EXIT
  log "ready in $((SECONDS - t0))s: keystone http://127.0.0.1:$KEYSTONE_PORT/v3, glance http://127.0.0.1:$GLANCE_PORT (logs in $STACK_DIR)"
  cat "$STACK_DIR/env"
}

do_env() {
  # Refuse rather than hand out the URLs of a dead stack.
  if ! { [[ -f "$STACK_DIR/env" ]] && stack_answers; }; then
    die "no running stack in $STACK_DIR (run: $0 start)"
  fi
  cat "$STACK_DIR/env"
}

do_status() {
  if stack_answers; then
    log "running: keystone and glance answer ($STACK_DIR)"
    return 0
  fi
  log "not running (or not answering): $STACK_DIR"
  return 1
}

# ---------------------------------------------------------------- main

[[ $# -eq 1 && "$1" =~ ^(start|stop|env|status)$ ]] || usage
mkdir -p "$STACK_DIR"
STACK_DIR="$(cd "$STACK_DIR" && pwd)" # absolute: it is written into the configs

# One start/stop at a time per STACK_DIR (parallel test runners may all call start).
exec 9>"$STACK_DIR/.lock"
flock 9

case "$1" in
  start) do_start ;;
  stop) do_stop ;;
  env) do_env ;;
  status) do_status ;;
  *) usage ;;
esac
