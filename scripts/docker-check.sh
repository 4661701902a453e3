#!/usr/bin/env bash
# The Dockerfile, checked without a Docker engine (the CI machines have none), in two parts:
#  1. the lines that matter, read with grep: two stages on the base image, production
#     dependencies only at runtime, the unprivileged user and its storage volume, the port, the
#     HEALTHCHECK and the command;
#  2. the runtime stage played on this machine: `npm run build`, then a copy with the build
#     output and production dependencies only, started as CMD starts it (`npm start`) as an
#     unprivileged user; it must answer /healthz and the HEALTHCHECK, write its storage, and exit
#     0 on SIGTERM, as `docker stop` sends it.
#
#   bash scripts/docker-check.sh               # exit 0 when the image would build and run
#   DOCKERFILE=path bash scripts/docker-check.sh
#   DOCKER_CHECK_USER=someone                  # the unprivileged user when run as root (nobody)
#   DOCKER_CHECK_KEEP=1                        # keep the temp dir
#
# It uses this machine's node and npm, so node must have the base image's major version.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dockerfile=${DOCKERFILE:-$repo/Dockerfile}
base_image=node:24-bookworm-slim

log() { printf 'docker-check: %s\n' "$*" >&2; }
die() {
  log "FAIL: $*"
  exit 1
}

# ---------------------------------------------------------------------------------------------
# 1. The Dockerfile's invariants.
[[ -f $dockerfile ]] || die "no Dockerfile at $dockerfile"
# One instruction a line: comment lines dropped (Docker drops them inside continuations too),
# continuations joined.
instructions=$(sed -e '/^[[:space:]]*#/d' "$dockerfile" | sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta')
# The runtime stage: from the second FROM on.
runtime=$(awk 'toupper($1) == "FROM" { n++ } n == 2' <<<"$instructions")

# Fails unless the runtime stage has a line matching the extended regexp $1 (any case).
want() {
  grep -qiE "$1" <<<"$runtime" || die "$2"
}

mapfile -t froms < <(grep -iE '^FROM[[:space:]]' <<<"$instructions")
((${#froms[@]} == 2)) || die "want two stages (build, runtime), found ${#froms[@]}"
for from in "${froms[@]}"; do
  read -r _ image _ <<<"$from"
  [[ $image == "$base_image" ]] || die "a stage on $image, not $base_image: $from"
done
log "two stages on $base_image"
want '^COPY[[:space:]]+--from=[^[:space:]]+[[:space:]]+/app/dist[[:space:]]' 'the runtime stage does not copy /app/dist from the build stage'
want '^RUN[[:space:]].*npm ci[^&;|]*--omit=dev' 'the runtime stage does not install with npm ci --omit=dev'
# `npm start` would otherwise run prestart (the build), whose tools are not installed.
want '^ENV[[:space:]].*npm_config_ignore_scripts=true' 'the runtime stage does not set npm_config_ignore_scripts=true'
want '^ENV[[:space:]].*STORAGE_DIR=/app/storage([[:space:]]|$)' 'the runtime stage does not set STORAGE_DIR=/app/storage'
want '^RUN[[:space:]].*chown[[:space:]]+(-R[[:space:]]+)?node(:node)?[[:space:]]+/app/storage' 'the runtime stage does not give /app/storage to the node user'
[[ $(grep -iE '^USER[[:space:]]' <<<"$runtime" | tail -n1) =~ ^USER[[:space:]]+node[[:space:]]*$ ]] ||
  die 'the runtime stage does not end as USER node'
want '^VOLUME[[:space:]].*/app/storage' 'no VOLUME for /app/storage'
want '^EXPOSE[[:space:]]+1080([[:space:]]|$)' 'no EXPOSE 1080'
healthcheck=$(sed -nE 's/^HEALTHCHECK[[:space:]]+([^[:space:]]+[[:space:]]+)*CMD[[:space:]]+//p' <<<"$runtime")
[[ $healthcheck == *'/healthz'* ]] || die 'no HEALTHCHECK that asks /healthz'
[[ $healthcheck != '['* ]] || die 'the HEALTHCHECK is in exec form; this check runs the shell form only'
# The exec form: npm is PID 1 and gets the SIGTERM (a shell form would leave it to /bin/sh).
[[ $(grep -iE '^CMD[[:space:]]' <<<"$runtime" | tail -n1 | tr -d '[:space:]') == 'CMD["npm","start"]' ]] ||
  die 'the command is not CMD ["npm", "start"]'
log 'runtime stage: production dependencies, USER node, VOLUME /app/storage, EXPOSE 1080, HEALTHCHECK /healthz, CMD npm start'

# ---------------------------------------------------------------------------------------------
# 2. The runtime stage on this machine.
want_major=${base_image#node:}
want_major=${want_major%%-*}
have=$(node --version)
[[ $have == "v$want_major."* ]] || die "the image runs Node $want_major, this machine's node is $have: put Node $want_major first on PATH"
# As in the image, npm and node see a PATH with just them; the build and install see nothing
# of an outer `npm run` either (its npm_* variables name this checkout).
path_dirs=$(dirname "$(command -v node)"):$(dirname "$(command -v npm)"):/usr/local/bin:/usr/bin:/bin
clean_env=(env)
for var in $(compgen -e); do [[ $var != npm_* && $var != INIT_CWD ]] || clean_env+=(-u "$var"); done
clean_env+=("PATH=$path_dirs")

if [[ $(id -u) == 0 ]]; then
  run_user=${DOCKER_CHECK_USER:-nobody}
  id "$run_user" >/dev/null 2>&1 || die "no user $run_user (set DOCKER_CHECK_USER)"
  run_group=$(id -gn "$run_user")
  as_user=(setpriv "--reuid=$run_user" "--regid=$run_group" --clear-groups)
else
  run_user=$(id -un)
  run_group=$(id -gn)
  as_user=()
  log "not root: the app runs as $run_user, who runs this check"
fi
run_uid=$(id -u "$run_user")

work=$(mktemp -d "${TMPDIR:-/tmp}/docker-check.XXXXXX")
chmod 755 "$work" # the unprivileged user reads the app from here
app_pid=
cleanup() {
  local rc=$?
  # Its session may outlive its leader (an orphaned child): signal the whole group.
  if [[ -n $app_pid ]] && pgrep -s "$app_pid" >/dev/null; then
    kill -TERM -- "-$app_pid" 2>/dev/null || true
    sleep 1
    kill -KILL -- "-$app_pid" 2>/dev/null || true
  fi
  if [[ -n ${DOCKER_CHECK_KEEP:-} ]]; then log "kept $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The build stage: what it copies, built with this checkout's (dev) dependencies.
build=$work/build
mkdir "$build"
cp -a "$repo/package.json" "$repo/package-lock.json" "$repo/tsconfig.json" "$repo/src" "$build/"
ln -s "$repo/node_modules" "$build/node_modules"
(cd "$build" && "${clean_env[@]}" npm run build) >"$work/build.log" 2>&1 || {
  cat "$work/build.log" >&2
  die 'npm run build failed'
}
log 'build: npm run build'

# The runtime stage: the package files, production dependencies only, the build output.
app=$work/app
mkdir "$app"
cp -a "$repo/package.json" "$repo/package-lock.json" "$app/"
(cd "$app" && "${clean_env[@]}" npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund) >"$work/npm-ci.log" 2>&1 || {
  cat "$work/npm-ci.log" >&2
  die 'npm ci --omit=dev failed'
}
[[ ! -e $app/node_modules/typescript ]] || die 'dev dependencies in the runtime copy'
cp -a "$build/dist" "$app/dist"
mkdir "$app/storage" "$work/home"
[[ $(id -u) != 0 ]] || chown "$run_user:$run_group" "$app/storage" "$work/home"
log 'runtime: npm ci --omit=dev and dist'

port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
# The image's environment: its ENV lines, and a free port here.
app_env=(env -i "PATH=$path_dirs" "HOME=$work/home" NODE_ENV=production "STORAGE_DIR=$app/storage"
  npm_config_ignore_scripts=true npm_config_update_notifier=false HOST=127.0.0.1 "PORT=$port")

# In its own session, so that its whole process tree can be listed and signalled.
(cd "$app" && exec setsid "${as_user[@]}" "${app_env[@]}" npm start) >"$work/app.log" 2>&1 &
app_pid=$!
log "npm start as $run_user (PORT=$port)"

# The status line, then the body.
http_get() {
  node -e '
    fetch(process.argv[1]).then(async (r) => { console.log(r.status); console.log(await r.text()); })
      .catch(() => process.exit(1));' "$1"
}

base=http://127.0.0.1:$port
status=
for ((i = 0; i < 300; i++)); do
  kill -0 "$app_pid" 2>/dev/null || {
    cat "$work/app.log" >&2
    die 'the app exited before answering'
  }
  status=$(http_get "$base/healthz" | head -n1) || true
  [[ $status == 200 ]] && break
  sleep 0.1
done
[[ $status == 200 ]] || {
  cat "$work/app.log" >&2
  die "/healthz did not answer 200 (got '$status')"
}
log '  /healthz: 200'

# Every process runs as the unprivileged user, and the gateway is node itself (npm start execs it).
pids=$(pgrep -s "$app_pid" | paste -sd, -) || true
[[ -n $pids ]] || die 'no process in the app session'
ps -o uid=,args= -p "$pids" >"$work/ps"
while read -r uid args; do
  [[ $uid == "$run_uid" ]] || die "a process runs as uid $uid, not $run_user ($run_uid): $args"
done <"$work/ps"
grep -qE '^[[:space:]]*[0-9]+[[:space:]]+node dist/main\.js' "$work/ps" || die "no 'node dist/main.js' process: $(cat "$work/ps")"
log "  processes run as $run_user:"
sed 's/^/docker-check:     /' "$work/ps" >&2

ready=$(http_get "$base/readyz" | tail -n +2)
# Glance is not here: readyz answers 503, but its storage probe must pass.
[[ $ready == *'"storage":"ok"'* ]] || die "/readyz: storage not writable for $run_user: $ready"
[[ -n $(find "$app/storage" -mindepth 1 -maxdepth 1 -user "$run_user" -print -quit) ]] ||
  die "nothing in the storage volume was written by $run_user"
log "  storage written by $run_user: $(find "$app/storage" -mindepth 1 -maxdepth 1 -printf '%f ')($ready)"

(cd "$app" && timeout 10 "${as_user[@]}" "${app_env[@]}" /bin/sh -c "$healthcheck") || die "HEALTHCHECK failed: $healthcheck"
log '  HEALTHCHECK: ok'

# As `docker stop`: SIGTERM to the main process only; all gone well within its 10 s.
kill -TERM "$app_pid"
for ((i = 0; i < 100; i++)); do
  pgrep -s "$app_pid" >/dev/null || break
  sleep 0.1
done
! pgrep -s "$app_pid" >/dev/null || die "still running 10 s after SIGTERM: $(pgrep -a -s "$app_pid")"
rc=0
wait "$app_pid" || rc=$?
app_pid=
((rc == 0)) || die "exit status $rc after SIGTERM, not 0"
log '  stopped on SIGTERM, exit status 0'

# The app's own log: errors fail the check, warnings are shown (pino levels 40, 50, 60).
while IFS= read -r line; do log "  app warning: $line"; done < <(grep '"level":40' "$work/app.log" || true)
if grep -qE '"level":(50|60)' "$work/app.log"; then
  grep -E '"level":(50|60)' "$work/app.log" >&2
  die 'the app logged errors'
fi
log OK
