#!/usr/bin/env bash
# Check the Dockerfile without a Docker engine: run its stages on this machine, in temp dirs.
#
# The Dockerfile is parsed (FROM, WORKDIR, COPY [--from], RUN, ENV, ARG, USER, CMD, HEALTHCHECK...),
# and each stage is played in its own temp "root": an absolute path /x of the image becomes
# <stage root>/x, in WORKDIR, COPY, ENV values and RUN commands alike. Then the final stage's
# CMD runs with its ENV (plus HOST=127.0.0.1, PORT=<free>), as an unprivileged user standing in
# for the image's USER, and the check asks /healthz, /readyz (storage must be writable for that
# user) and the image's own HEALTHCHECK, and checks which user the processes run as.
#
#   bash scripts/docker-check.sh            # exit 0 when the image would build and start
#   DOCKER_CHECK_USER=someone bash scripts/docker-check.sh   # run as another user (root only)
#   DOCKER_CHECK_KEEP=1 ...                 # keep the temp dir for a look
#
# What it cannot check: the base image itself (it uses this machine's node and npm, and says
# so when their major version differs from the FROM tag), VOLUME/EXPOSE, and layer caching.
# `npm cache clean` is skipped (it would empty this machine's shared npm cache); npm runs with
# --prefer-offline.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dockerfile=${DOCKERFILE:-$repo/Dockerfile}
context=${DOCKER_CONTEXT:-$repo}

log() { printf 'docker-check: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

[[ -f $dockerfile ]] || die "no Dockerfile at $dockerfile"

work=$(mktemp -d "${TMPDIR:-/tmp}/docker-check.XXXXXX")
chmod 755 "$work" # the unprivileged user must reach the runtime stage's files
app_pid=
cleanup() {
  local rc=$?
  # The app's session may outlive its leader (an orphaned child): signal the whole group.
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

# ---------------------------------------------------------------------------------------------
# 1. Parse the Dockerfile into calls of the df_* functions below (one per instruction), with
#    every argument single-quoted for bash. Line continuations are joined, comment lines inside
#    them dropped (as Docker does), JSON ("exec") and shell forms told apart.
parse() {
  node --input-type=module - "$1" <<'EOF'
import fs from 'node:fs';
const text = fs.readFileSync(process.argv[2], 'utf8');
const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
const out = [];
let escape = '\\';
const lines = text.split(/\r?\n/);
// Parser directives (# syntax=, # escape=) sit at the very top.
for (const line of lines) {
  const m = /^#\s*(\w+)\s*=\s*(\S+)\s*$/.exec(line);
  if (!m) break;
  if (m[1].toLowerCase() === 'escape') escape = m[2];
}
const instructions = [];
let current = null;
for (const raw of lines) {
  const line = raw.replace(/\s+$/, '');
  if (current === null) {
    if (/^\s*(#|$)/.test(line)) continue;
    current = { text: '', line: raw };
  } else if (/^\s*#/.test(line)) {
    continue; // a comment line inside a continuation
  }
  if (line.endsWith(escape)) {
    current.text += line.slice(0, -1) + ' ';
  } else {
    current.text += line;
    instructions.push(current);
    current = null;
  }
}
if (current) instructions.push(current);

/** `["a","b"]` as an array, or null for the shell form. */
const execForm = (s) => {
  if (!/^\s*\[/.test(s)) return null;
  try {
    const v = JSON.parse(s);
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : null;
  } catch {
    return null;
  }
};
/** Words with "double" and 'single' quotes and backslash escapes, as ENV/ARG/COPY split them. */
const words = (s) => {
  const result = [];
  let word = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (/\s/.test(c)) {
      if (word !== null) result.push(word);
      word = null;
      continue;
    }
    word ??= '';
    if (c === '"' || c === "'") {
      const end = s.indexOf(c, i + 1);
      if (end < 0) throw new Error(`unterminated quote in: ${s}`);
      word += s.slice(i + 1, end).replace(c === '"' ? /\\(["\\$])/g : /$^/, '$1');
      i = end;
    } else if (c === '\\' && i + 1 < s.length) {
      word += s[++i];
    } else {
      word += c;
    }
  }
  if (word !== null) result.push(word);
  return result;
};
const command = (s) => {
  const exec = execForm(s);
  return exec ? ['exec', ...exec] : ['shell', s.trim()];
};

// The last stage's USER, so that RUN chown in earlier lines can map it.
let finalUser = 'root';
for (const { text } of instructions) {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(text);
  if (!m) continue;
  if (m[1].toUpperCase() === 'FROM') finalUser = 'root';
  if (m[1].toUpperCase() === 'USER') finalUser = m[2].trim().split(':')[0];
}
out.push(`df_image_user ${q(finalUser)}`);

for (const { text, line } of instructions) {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(text);
  if (!m) throw new Error(`cannot read: ${line}`);
  const [, word, rest] = m;
  const kw = word.toUpperCase();
  const args = rest.trim();
  switch (kw) {
    case 'FROM': {
      const w = words(args).filter((x) => !x.startsWith('--'));
      const name = w.length >= 3 && w[1].toUpperCase() === 'AS' ? w[2] : '';
      out.push(`df_from ${q(w[0])} ${q(name)}`);
      break;
    }
    case 'ENV':
    case 'ARG':
    case 'LABEL': {
      const w = words(args);
      const pairs = [];
      if (kw === 'ENV' && w.length >= 1 && !w[0].includes('=')) {
        pairs.push([w[0], args.slice(args.indexOf(w[0]) + w[0].length).trim()]); // legacy `ENV KEY value`
      } else {
        for (const x of w) {
          const eq = x.indexOf('=');
          pairs.push(eq < 0 ? [x, null] : [x.slice(0, eq), x.slice(eq + 1)]);
        }
      }
      for (const [k, v] of pairs) out.push(`df_${kw.toLowerCase()} ${q(k)}${v === null ? '' : ` ${q(v)}`}`);
      break;
    }
    case 'COPY':
    case 'ADD': {
      const w = execForm(args) ?? words(args);
      const flags = w.filter((x) => x.startsWith('--'));
      const paths = w.filter((x) => !x.startsWith('--'));
      out.push(`df_copy ${q(kw)} ${q(flags.join(' '))} ${paths.map(q).join(' ')}`);
      break;
    }
    case 'RUN':
    case 'CMD':
    case 'ENTRYPOINT':
      out.push(`df_${kw.toLowerCase()} ${command(args).map(q).join(' ')}`);
      break;
    case 'HEALTHCHECK': {
      const hm = /^((?:--\S+\s+)*)CMD\s+(.*)$/is.exec(args);
      if (hm) out.push(`df_healthcheck ${command(hm[2]).map(q).join(' ')}`);
      else out.push(`df_note ${q(`HEALTHCHECK ${args}`)}`);
      break;
    }
    case 'WORKDIR':
    case 'USER':
    case 'SHELL':
      out.push(`df_${kw.toLowerCase()} ${(kw === 'SHELL' ? execForm(args) ?? [args] : [args]).map(q).join(' ')}`);
      break;
    case 'EXPOSE':
    case 'VOLUME':
    case 'STOPSIGNAL':
    case 'MAINTAINER':
      out.push(`df_note ${q(`${kw} ${args}`)}`);
      break;
    default:
      out.push(`df_unsupported ${q(kw)} ${q(line)}`);
  }
}
out.push('df_end');
process.stdout.write(out.join('\n') + '\n');
EOF
}

# ---------------------------------------------------------------------------------------------
# 2. Who stands in for the image's USER.
me=$(id -un)
if [[ $(id -u) == 0 ]]; then
  run_user=${DOCKER_CHECK_USER:-nobody}
  id "$run_user" >/dev/null 2>&1 || die "user $run_user does not exist (set DOCKER_CHECK_USER)"
  run_group=$(id -gn "$run_user")
  if command -v setpriv >/dev/null; then
    as_user=(setpriv "--reuid=$run_user" "--regid=$run_group" --clear-groups)
  elif command -v runuser >/dev/null; then
    as_user=(runuser -u "$run_user" --)
  else
    die "root, but neither setpriv nor runuser to drop privileges"
  fi
else
  run_user=$me
  run_group=$(id -gn)
  as_user=()
  log "not root: everything runs as $me (USER cannot be switched, chown is skipped)"
fi
run_uid=$(id -u "$run_user")

# ---------------------------------------------------------------------------------------------
# 3. The instructions.
stage=-1
declare -A stage_root=()   # stage index and stage name -> its root dir
image_user=root
root='' cwd='' user=root
declare -a env_keys=()
declare -A env=()
cmd=() healthcheck=() entrypoint=()
shell_cmd=(/bin/sh -c)

# /x/y of the image -> <root>/x/y; relative paths stay relative to the WORKDIR.
map_path() {
  local p=$1
  if [[ $p == /* ]]; then printf '%s%s' "$root" "$p"; else printf '%s/%s' "$cwd" "$p"; fi
}

# Absolute paths into the stage root inside a shell command or an ENV value: only paths whose
# first component exists in the stage root (e.g. /app), so that /bin/sh or /dev/null stay as they are.
map_text() {
  local s=$1 d name
  for d in "$root"/*/; do
    [[ -d $d ]] || continue
    name=$(basename "$d")
    s=$(printf '%s' "$s" | sed -E "s#(^|[[:space:]=:\"'(])/$name(/|\$|[[:space:];&|\"')])#\\1$root/$name\\2#g")
  done
  printf '%s' "$s"
}

set_env() {
  local k=$1 v=$2
  [[ -v "env[$k]" ]] || env_keys+=("$k")
  env[$k]=$v
}

# This machine's PATH without the node_modules/.bin entries `npm run`/`npx` put first.
clean_path=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v 'node_modules/\.bin' | paste -sd: -)
# Root's RUN steps share this machine's npm cache, so that --prefer-offline finds the packages.
npm_cache=$(npm config get cache 2>/dev/null || true)

# The environment a RUN or CMD sees: this machine's PATH and a home for npm, then the ENV lines.
stage_env() {
  local k
  printf '%s\0' "PATH=$clean_path" "HOME=$work/home" "npm_config_prefer_offline=true" \
    "npm_config_update_notifier=false" "npm_config_fund=false" "npm_config_audit=false"
  if [[ $user == root && -n $npm_cache ]]; then printf '%s\0' "npm_config_cache=$npm_cache"; fi
  for k in "${env_keys[@]}"; do printf '%s=%s\0' "$k" "$(map_text "${env[$k]}")"; done
}

# Shell functions every RUN gets: chown maps the image's user to ours (and is skipped without
# root); `npm cache clean` is skipped.
run_prelude() {
  cat <<EOF
chown() {
  [ "\$(id -u)" = 0 ] || { echo "docker-check: skip chown \$* (not root)" >&2; return 0; }
  _owner_done=; _args=
  for _a in "\$@"; do
    case "\$_a" in
      -*) ;;
      *) if [ -z "\$_owner_done" ]; then
           _owner_done=1
           _u=\${_a%%:*}; _g=; case "\$_a" in *:*) _g=\${_a#*:} ;; esac
           [ "\$_u" = '$image_user' ] && _u='$run_user'
           [ "\$_g" = '$image_user' ] && _g='$run_group'
           _a=\$_u\${_g:+:\$_g}
         fi ;;
    esac
    _args="\$_args '\$_a'"
  done
  eval "command chown \$_args"
}
npm() {
  if [ "\$1" = cache ]; then echo "docker-check: skip npm \$*" >&2; return 0; fi
  command npm "\$@"
}
EOF
}

in_stage() {
  # Run a command in the WORKDIR with the stage's environment, as the stage's USER.
  local -a envv=() prefix=()
  mapfile -d '' envv < <(stage_env)
  if [[ $user != root && $(id -u) == 0 ]]; then prefix=("${as_user[@]}"); fi
  (cd "$cwd" && "${prefix[@]}" env -i "${envv[@]}" "$@")
}

df_image_user() { image_user=$1; }
df_note() { log "  (not checked) $1"; }
df_unsupported() { die "unsupported instruction $1: $2"; }

df_from() {
  local image=$1 name=$2
  stage=$((stage + 1))
  root=$work/stage$stage
  mkdir -p "$root"
  chmod 755 "$root"
  stage_root[$stage]=$root
  [[ -n $name ]] && stage_root[$name]=$root
  cwd=$root user=root
  env_keys=() env=() cmd=() healthcheck=() entrypoint=()
  shell_cmd=(/bin/sh -c)
  if [[ -n ${stage_root[$image]:-} && $image != "$name" ]]; then
    die "FROM another stage ($image) is not supported"
  fi
  log "stage $stage: FROM $image${name:+ AS $name}"
  if [[ $image =~ ^node:([0-9]+) ]]; then
    local want=${BASH_REMATCH[1]} have
    have=$(node -p 'process.versions.node.split(".")[0]')
    [[ $have == "$want" ]] || log "  note: the image has node $want, this machine node $have"
  fi
}

df_workdir() {
  local dir
  dir=$(map_text "$1")
  [[ $dir == /* ]] || dir=$cwd/$dir
  [[ $dir == "$root"* ]] || dir=$root$1
  mkdir -p "$dir"
  cwd=$dir
  log "  WORKDIR $1"
}

df_env() { set_env "$1" "$2"; log "  ENV $1=$2"; }
df_arg() { [[ $# -ge 2 ]] && set_env "$1" "$2"; log "  ARG $*"; }
df_label() { :; }
df_user() { user=${1%%:*}; log "  USER $1 (here: $run_user)"; }
df_shell() { shell_cmd=("$@"); }

# COPY [--from=stage] [--chown=u:g] src... dest, with the build context's .dockerignore.
df_copy() {
  local kw=$1 flags=$2
  shift 2
  local -a srcs=("${@:1:$#-1}")
  local dest=${!#} from_root=$context owner=
  local flag
  for flag in $flags; do
    case $flag in
      --from=*) from_root=${stage_root[${flag#--from=}]:-}
        [[ -n $from_root ]] || die "COPY $flag: no such stage (an image? not supported)" ;;
      --chown=*) owner=${flag#--chown=} ;;
      --chmod=* | --link | --parents=false) ;;
      *) die "$kw $flag is not supported" ;;
    esac
  done
  local target
  target=$(map_path "$dest")
  if (( ${#srcs[@]} > 1 )) || [[ $dest == */ ]]; then mkdir -p "$target"; fi
  local src path
  for src in "${srcs[@]}"; do
    [[ $src == *://* ]] && die "$kw from a URL is not supported"
    if [[ $from_root == "$context" ]]; then path=$context/${src#/}; else path=$from_root/${src#/}; fi
    local -a matches=()
    # shellcheck disable=SC2206  # a glob in the source is meant
    matches=($path)
    [[ -e ${matches[0]} ]] || die "$kw $src: not found (in ${from_root})"
    local m
    for m in "${matches[@]}"; do
      if [[ -d $m ]]; then
        mkdir -p "$target"
        cp -a "$m/." "$target/"
        [[ $from_root == "$context" ]] && apply_dockerignore "${m#"$context"/}" "$target"
      elif [[ -d $target ]]; then
        cp -a "$m" "$target/"
      else
        mkdir -p "$(dirname "$target")"
        cp -a "$m" "$target"
      fi
    done
  done
  if [[ -n $owner && $(id -u) == 0 ]]; then
    local u=${owner%%:*} g=${owner#*:}
    [[ $u == "$image_user" ]] && u=$run_user
    [[ $g == "$image_user" ]] && g=$run_group
    chown -R "$u${g:+:$g}" "$target"
  fi
  log "  $kw ${flags:+$flags }${srcs[*]} $dest"
}

# Remove what .dockerignore keeps out of the context from a copied directory (plain paths and
# globs, relative to the context; `!` exceptions are not supported).
apply_dockerignore() {
  local rel=$1 target=$2 pattern
  [[ -f $context/.dockerignore ]] || return 0
  [[ $rel == . || $rel == "$context" ]] && rel=
  while IFS= read -r pattern || [[ -n $pattern ]]; do
    pattern=${pattern%%#*}
    pattern=${pattern#/}
    pattern=${pattern%/}
    pattern=$(printf '%s' "$pattern" | sed 's/[[:space:]]*$//')
    [[ -z $pattern || $pattern == '!'* ]] && continue
    if [[ -z $rel ]]; then
      # shellcheck disable=SC2086
      (cd "$target" && rm -rf -- $pattern)
    elif [[ $pattern == "$rel"/* ]]; then
      # shellcheck disable=SC2086
      (cd "$target" && rm -rf -- ${pattern#"$rel"/})
    fi
  done <"$context/.dockerignore"
}

df_run() {
  local form=$1
  shift
  log "  RUN $*"
  local -a argv
  if [[ $form == shell ]]; then
    argv=("${shell_cmd[@]}" "$(run_prelude)
$(map_text "$1")")
  else
    local a
    argv=()
    for a in "$@"; do argv+=("$(map_text "$a")"); done
  fi
  in_stage "${argv[@]}" || die "RUN $* failed"
}

df_cmd() { cmd=("$@"); }
df_entrypoint() { entrypoint=("$@"); }
df_healthcheck() { healthcheck=("$@"); }

# The final stage: start CMD, then ask it.
df_end() {
  ((${#cmd[@]})) || die "the last stage has no CMD"
  if [[ $user == root ]]; then die "the image runs as root (no USER in the last stage)"; fi
  local -a argv=()
  if ((${#entrypoint[@]})); then
    [[ ${entrypoint[0]} == exec ]] || die "a shell-form ENTRYPOINT ignores CMD; not supported"
    argv=("${entrypoint[@]:1}")
  fi
  if [[ ${cmd[0]} == exec ]]; then argv+=("${cmd[@]:1}"); else argv+=("${shell_cmd[@]}" "${cmd[1]}"); fi

  local port
  port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  set_env HOST 127.0.0.1
  set_env PORT "$port"
  mkdir -p "$work/home"
  [[ $(id -u) == 0 ]] && chown "$run_user:$run_group" "$work/home"

  log "CMD ${argv[*]} as $run_user (HOST=127.0.0.1 PORT=$port)"
  # Its own session, so that the whole process tree can be signalled and listed.
  local -a envv=() prefix=()
  mapfile -d '' envv < <(stage_env)
  [[ $(id -u) == 0 ]] && prefix=("${as_user[@]}")
  (cd "$cwd" && exec setsid "${prefix[@]}" env -i "${envv[@]}" "${argv[@]}") >"$work/app.log" 2>&1 &
  app_pid=$!

  local base=http://127.0.0.1:$port status='' i
  for ((i = 0; i < 300; i++)); do
    kill -0 "$app_pid" 2>/dev/null || { cat "$work/app.log" >&2; die "the process exited before answering"; }
    status=$(http_get "$base/healthz" | head -n1) || true
    [[ $status == 200 ]] && break
    sleep 0.1
  done
  [[ $status == 200 ]] || { cat "$work/app.log" >&2; die "/healthz did not answer 200 (got '${status}')"; }
  log "  /healthz: 200"

  # Every process of the tree runs as the stand-in user, and one of them is node.
  local pids pid uid comm saw_node=
  pids=$(pgrep -s "$app_pid" || true)
  [[ -n $pids ]] || die "no process in the app's session"
  for pid in $pids; do
    uid=$(ps -o uid= -p "$pid" 2>/dev/null | tr -d ' ') || continue
    comm=$(ps -o comm= -p "$pid" 2>/dev/null) || continue
    [[ -z $uid ]] && continue
    [[ $uid == "$run_uid" ]] || die "process $pid ($comm) runs as uid $uid, not $run_user ($run_uid)"
    [[ $comm == node ]] && saw_node=1
  done
  [[ -n $saw_node ]] || die "no node process in the app's session ($pids)"
  log "  processes run as $run_user:"
  ps -o pid=,ppid=,user=,args= -p "${pids//$'\n'/,}" | sed 's/^/docker-check:     /' >&2

  # Storage is writable for that user (readyz also asks Glance, which is not here: 503 is fine).
  local ready
  ready=$(http_get "$base/readyz" | tail -n +2)
  [[ $ready == *'"storage":"ok"'* ]] || die "/readyz: storage not ok for $run_user: $ready"
  log "  /readyz: $ready"
  if [[ -v "env[STORAGE_DIR]" ]]; then
    local storage
    storage=$(map_text "${env[STORAGE_DIR]}")
    [[ $storage == /* ]] || storage=$cwd/$storage
    [[ -n $(find "$storage" -mindepth 1 -maxdepth 1 -user "$run_user" -print -quit) ]] ||
      die "nothing in STORAGE_DIR ($storage) was written by $run_user"
    log "  STORAGE_DIR written by $run_user: $(find "$storage" -mindepth 1 -maxdepth 1 -printf '%f ')"
  fi

  if ((${#healthcheck[@]})); then
    local -a hc
    if [[ ${healthcheck[0]} == exec ]]; then hc=("${healthcheck[@]:1}"); else hc=("${shell_cmd[@]}" "${healthcheck[1]}"); fi
    in_stage_as_user "${hc[@]}" || die "HEALTHCHECK failed: ${hc[*]}"
    log "  HEALTHCHECK: ok"
  fi

  # Stop as `docker stop` does: SIGTERM to the main process only (PID 1 in the container; with
  # `docker run --init` tini passes it on the same way), and every process must be gone well
  # within Docker's 10 s grace time.
  kill -TERM "$app_pid"
  for ((i = 0; i < 100; i++)); do
    pgrep -s "$app_pid" >/dev/null || break
    sleep 0.1
  done
  if pgrep -s "$app_pid" >/dev/null; then die "still running 10 s after SIGTERM: $(pgrep -a -s "$app_pid")"; fi
  local rc=0
  wait "$app_pid" 2>/dev/null || rc=$?
  app_pid=
  ((rc == 0)) || die "exit status $rc after SIGTERM, not 0 (the app did not shut down on its own)"
  log "  stopped on SIGTERM, exit status 0"

  # The app's own log: errors fail the check, warnings are shown (pino levels 40, 50, 60).
  local line
  while IFS= read -r line; do log "  app warning: $line"; done < <(grep '"level":40' "$work/app.log" || true)
  if grep -qE '"level":(50|60)' "$work/app.log"; then
    grep -E '"level":(50|60)' "$work/app.log" >&2
    die "the app logged errors"
  fi
  log "OK"
}

in_stage_as_user() {
  local saved=$user
  user=$run_user
  [[ $(id -u) == 0 ]] || user=root
  in_stage "$@"
  local rc=$?
  user=$saved
  return $rc
}

# The status line, then the body.
http_get() {
  node -e '
    fetch(process.argv[1]).then(async (r) => { console.log(r.status); console.log(await r.text()); })
      .catch(() => process.exit(1));' "$1"
}

program=$(parse "$dockerfile") || die "cannot parse $dockerfile"
log "Dockerfile: $dockerfile, context: $context, work: $work"
eval "$program"
