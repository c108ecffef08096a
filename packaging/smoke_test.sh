#!/usr/bin/env bash
# Smoke-test a built Hoist bundle (dist/hoist/ by default, or the folder given as $1):
#
#   1. the folder has both executables, and every ELF file in it finds its libraries;
#   2. `hoist --version` and `hoist-gui --version` print the version in core/__init__.py;
#   3. `hoist-gui --bundle-check` (packaging/launch_gui.py): resources via importlib.resources,
#      the Qt plugins, SVG support and keyring's backends are in the bundle;
#   4. `hoist-gui --smoke-test` opens the main window offscreen (QT_QPA_PLATFORM=offscreen) and
#      prints "window shown"; again on X11 (the bundled xcb plugin) under Xvfb when xvfb-run is
#      installed (skipped otherwise);
#   5. `hoist push` from the bundle pushes a file (several chunks) and a folder to a real local
#      registry (Debian's docker-registry, started here on 127.0.0.1), and curl then finds the
#      manifest and the blobs, byte for byte; the docker credential helper hoist runs on the way
#      gets the caller's LD_LIBRARY_PATH, not the bundle's (packaging/rthook_child_env.py);
#   6. `hoist pull` from the bundle gives the pushed folder back (its small file from a bundle).
#
# Runs alone on an existing bundle (`bash packaging/smoke_test.sh [DIST]`); build.sh runs it last.
# Needs docker-registry, curl and python3 (for JSON); everything it writes is in a temp folder,
# with HOME and Hoist's folders pointed there. Exits non-zero when any check fails.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIST=$(cd "${1:-$ROOT/dist/hoist}" 2>/dev/null && pwd) || {
  echo "smoke test: no bundle at ${1:-$ROOT/dist/hoist} (run packaging/build.sh first)" >&2
  exit 2
}
CLI=$DIST/hoist
GUI=$DIST/hoist-gui
EXPECTED=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/core/__init__.py")
TIMEOUT=${HOIST_SMOKE_TIMEOUT:-60}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hoist-smoke.XXXXXX")
REGISTRY_PID=""
cleanup() {
  if [ -n "$REGISTRY_PID" ]; then
    kill "$REGISTRY_PID" 2>/dev/null
    wait "$REGISTRY_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Nothing the bundle does may touch the user's files, keyring or docker credentials.
mkdir -p "$WORK/home" "$WORK/state" "$WORK/config" "$WORK/data" "$WORK/runtime"
chmod 700 "$WORK/runtime"
export HOME=$WORK/home XDG_CONFIG_HOME=$WORK/home/.config XDG_DATA_HOME=$WORK/home/.local/share
export XDG_STATE_HOME=$WORK/home/.local/state XDG_CACHE_HOME=$WORK/home/.cache
export XDG_RUNTIME_DIR=$WORK/runtime DOCKER_CONFIG=$WORK/home/.docker
export HOIST_STATE_DIR=$WORK/state HOIST_CONFIG_DIR=$WORK/config HOIST_DATA_DIR=$WORK/data
unset DBUS_SESSION_BUS_ADDRESS

PASSED=0
FAILED=0
SKIPPED=0
FAILURES=()
pass() { PASSED=$((PASSED + 1)); printf '  ok    %s\n' "$1"; }
fail() { FAILED=$((FAILED + 1)); FAILURES+=("$1"); printf '  FAIL  %s\n' "$1"; [ -n "${2:-}" ] && sed 's/^/        | /' <<<"$2"; }
skip() { SKIPPED=$((SKIPPED + 1)); printf '  skip  %s\n' "$1"; }

echo "smoke test: $DIST (expecting version $EXPECTED)"
started=$(date +%s)

# -- 1. layout and libraries -------------------------------------------------------------------
if [ -x "$CLI" ] && [ -x "$GUI" ]; then
  pass "both executables present ($(du -sh "$DIST" | cut -f1) folder)"
else
  fail "executables missing: $(ls "$DIST" 2>&1 | tr '\n' ' ')"
fi

unresolved=""
if command -v ldd >/dev/null; then
  libpath="$DIST/_internal:$DIST/_internal/PySide6/Qt/lib"
  count=0
  while IFS= read -r -d '' f; do
    head -c 4 "$f" 2>/dev/null | grep -q 'ELF' || continue
    count=$((count + 1))
    missing=$(LD_LIBRARY_PATH=$libpath ldd "$f" 2>/dev/null | grep 'not found' | awk '{print $1}' | tr '\n' ' ')
    [ -n "$missing" ] && unresolved+="${f#"$DIST"/}: $missing"$'\n'
  done < <(find "$DIST" -type f \( -name '*.so*' -o -name hoist -o -name hoist-gui \) -print0)
  if [ -z "$unresolved" ]; then
    pass "all $count ELF files resolve their libraries"
  else
    fail "ELF files with unresolved libraries" "$unresolved"
  fi
else
  skip "library check (no ldd)"
fi

# -- 2. versions -------------------------------------------------------------------------------
out=$("$CLI" --version 2>&1)
if [ "$out" = "hoist $EXPECTED" ]; then pass "hoist --version: $out"; else fail "hoist --version" "$out"; fi

out=$(QT_QPA_PLATFORM=offscreen timeout "$TIMEOUT" "$GUI" --version 2>&1)
if [ "$(tail -n1 <<<"$out")" = "hoist $EXPECTED" ]; then
  pass "hoist-gui --version: $(tail -n1 <<<"$out")"
else
  fail "hoist-gui --version (expected 'hoist $EXPECTED')" "$out"
fi

# -- 3. what the bundle holds ----------------------------------------------------------------------
out=$(QT_QPA_PLATFORM=offscreen timeout "$TIMEOUT" "$GUI" --bundle-check 2>&1)
rc=$?
if [ $rc -eq 0 ] && grep -q '^bundle check: ok' <<<"$out"; then
  pass "hoist-gui --bundle-check"
  sed 's/^/        /' <<<"$out" | grep -v '^        bundle check'
else
  fail "hoist-gui --bundle-check (exit $rc)" "$out"
fi

# -- 4. the window -----------------------------------------------------------------------------
out=$(QT_QPA_PLATFORM=offscreen timeout "$TIMEOUT" "$GUI" --smoke-test 2>&1)
rc=$?
if [ $rc -eq 0 ] && grep -q '^window shown' <<<"$out"; then
  pass "hoist-gui --smoke-test offscreen: window shown"
else
  fail "hoist-gui --smoke-test offscreen (exit $rc)" "$out"
fi

if command -v xvfb-run >/dev/null; then
  out=$(env -u QT_QPA_PLATFORM -u WAYLAND_DISPLAY QT_QPA_PLATFORM=xcb \
    timeout "$TIMEOUT" xvfb-run -a -s "-screen 0 1280x800x24" "$GUI" --smoke-test 2>&1)
  rc=$?
  if [ $rc -eq 0 ] && grep -q '^window shown' <<<"$out"; then
    pass "hoist-gui --smoke-test on X11 (Xvfb, bundled xcb plugin): window shown"
  else
    fail "hoist-gui --smoke-test on X11 under Xvfb (exit $rc)" "$out"
  fi
else
  skip "X11 window under Xvfb (xvfb-run not installed)"
fi

# -- 5. a real push --------------------------------------------------------------------------------
SMOKE_AUTH=smoke:smoke-pass
push_checks() {
  local port cfg i digest ref out rc
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cfg=$WORK/registry.yml
  cat >"$cfg" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry-data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
auth:
  htpasswd:
    realm: hoist-smoke
    path: $WORK/htpasswd
EOF
  # The registry wants a login that only the credential helper below knows, so the push must
  # ask it (Hoist looks credentials up only when a registry asks for them).
  htpasswd -Bbn smoke smoke-pass >"$WORK/htpasswd"
  docker-registry serve "$cfg" >"$WORK/registry.log" 2>&1 &
  REGISTRY_PID=$!
  for i in $(seq 1 100); do
    curl -fsS -u "$SMOKE_AUTH" -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null && break
    if ! kill -0 "$REGISTRY_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if ! curl -fsS -u "$SMOKE_AUTH" -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
    fail "local registry did not start on 127.0.0.1:$port" "$(cat "$WORK/registry.log")"
    return
  fi
  pass "local registry (docker-registry $(docker-registry --version 2>/dev/null | awk '{print $3}')) on 127.0.0.1:$port"

  # A docker credential helper for this registry: hoist runs it when the registry asks for a
  # login. It records the library path it was given (the bundle must not leak its own to the
  # programs it starts), then answers with the registry's credentials.
  mkdir -p "$WORK/bin" "$DOCKER_CONFIG"
  cat >"$WORK/bin/docker-credential-hoistsmoke" <<EOF
#!/bin/sh
printf '%s\n' "\${LD_LIBRARY_PATH-<unset>}" >"$WORK/helper-env"
echo '{"ServerURL": "127.0.0.1:$port", "Username": "smoke", "Secret": "smoke-pass"}'
EOF
  chmod +x "$WORK/bin/docker-credential-hoistsmoke"
  export PATH="$WORK/bin:$PATH"
  printf '{"credHelpers": {"127.0.0.1:%s": "hoistsmoke"}}\n' "$port" >"$DOCKER_CONFIG/config.json"

  # A file of several chunks, not a multiple of the chunk size. `hoist push` prints
  # REPOSITORY@sha256:<manifest digest> on stdout.
  head -c $((5 * 1024 * 1024 + 4321)) /dev/urandom >"$WORK/payload.bin"
  ref=127.0.0.1:$port/smoke/hoist:file
  out=$("$CLI" push --plain-http --progress plain --chunk-size 1MiB "$ref" "$WORK/payload.bin" \
    2>"$WORK/push-file.err")
  rc=$?
  if [ $rc -ne 0 ] || [[ "$out" != "${ref%:*}@sha256:"* ]]; then
    fail "hoist push (file) exit $rc, stdout '$out'" "$(tail -n 20 "$WORK/push-file.err")"
  else
    pass "hoist push (file, 5 MiB in 1 MiB chunks): $out"
    verify_artifact "smoke/hoist" "file" "${out#*@}" "$port" "$WORK/payload.bin" "payload.bin"
  fi
  if [ ! -f "$WORK/helper-env" ]; then
    fail "hoist push did not run the docker credential helper configured for the registry"
  elif [ "$(cat "$WORK/helper-env")" = "${LD_LIBRARY_PATH-<unset>}" ]; then
    pass "programs hoist starts get the caller's LD_LIBRARY_PATH ($(cat "$WORK/helper-env")), not the bundle's"
  else
    fail "a credential helper started by hoist got LD_LIBRARY_PATH=$(cat "$WORK/helper-env")"
  fi

  # A folder with --pack: packed into a tar by the bundled Python (tarfile, gzip).
  mkdir -p "$WORK/folder/sub"
  echo "hello from the hoist smoke test" >"$WORK/folder/hello.txt"
  # data.bin is over the bundling limit (2 MiB): a layer of its own; hello.txt goes in a bundle.
  head -c 3145728 /dev/urandom >"$WORK/folder/sub/data.bin"
  ref=127.0.0.1:$port/smoke/hoist:folder
  out=$("$CLI" push --plain-http --progress plain --pack "$ref" "$WORK/folder" \
    2>"$WORK/push-dir.err")
  rc=$?
  if [ $rc -ne 0 ] || [[ "$out" != "${ref%:*}@sha256:"* ]]; then
    fail "hoist push --pack (folder) exit $rc, stdout '$out'" "$(tail -n 20 "$WORK/push-dir.err")"
  else
    pass "hoist push --pack (folder): $out"
    verify_artifact "smoke/hoist" "folder" "${out#*@}" "$port" "" "folder"
  fi

  # The same folder as its files (the default): one layer per file, titled folder/sub/...
  ref=127.0.0.1:$port/smoke/hoist:folder-files
  out=$("$CLI" push --plain-http --progress plain "$ref" "$WORK/folder" 2>"$WORK/push-files.err")
  rc=$?
  if [ $rc -ne 0 ] || [[ "$out" != "${ref%:*}@sha256:"* ]]; then
    fail "hoist push (folder as files) exit $rc, stdout '$out'" \
      "$(tail -n 20 "$WORK/push-files.err")"
  else
    pass "hoist push (folder as files): $out"
    verify_artifact "smoke/hoist" "folder-files" "${out#*@}" "$port" \
      "$WORK/folder/sub/data.bin" "folder/sub/data.bin"
    # Pulled back by the bundle's own hoist: the same tree (the small file from its bundle).
    if "$CLI" pull --plain-http --progress plain -o "$WORK/pulled" "$ref" >"$WORK/pull.out" \
      2>"$WORK/pull.err" && diff -r "$WORK/folder" "$WORK/pulled/folder" >"$WORK/pull.diff" 2>&1
    then
      pass "hoist pull (folder as files): the same tree, the small file unpacked from its bundle"
    else
      fail "hoist pull (folder as files) did not give the folder back" \
        "$(tail -n 20 "$WORK/pull.err" "$WORK/pull.diff")"
    fi
  fi
}

# verify_artifact REPO TAG MANIFEST_DIGEST PORT [LOCAL_FILE] TITLE
verify_artifact() {
  local repo=$1 tag=$2 want=$3 port=$4 local_file=$5 title=$6 base manifest got layer blob
  base=http://127.0.0.1:$port/v2/$repo
  manifest=$WORK/manifest-$tag.json
  if ! curl -fsS -u "$SMOKE_AUTH" -o "$manifest" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "$base/manifests/$tag"; then
    fail "curl: manifest $repo:$tag is not in the registry"
    return
  fi
  got=sha256:$(sha256sum "$manifest" | cut -d' ' -f1)
  if [ "$got" = "$want" ]; then
    pass "curl: manifest $repo:$tag is there, digest $got as printed"
  else
    fail "curl: manifest $repo:$tag digest $got, hoist printed $want"
  fi
  layer=$(python3 - "$manifest" "$title" <<'EOF'
import json, sys
manifest = json.load(open(sys.argv[1]))
for layer in manifest.get("layers", []):
    name = layer.get("annotations", {}).get("org.opencontainers.image.title", "")
    if name == sys.argv[2]:
        print(layer["digest"], layer["size"], layer["mediaType"])
        break
EOF
  )
  if [ -z "$layer" ]; then
    fail "manifest $repo:$tag has no layer titled $title" "$(cat "$manifest")"
    return
  fi
  read -r digest size media <<<"$layer"
  blob=$WORK/blob-$tag
  if ! curl -fsSL -u "$SMOKE_AUTH" -o "$blob" "$base/blobs/$digest"; then
    fail "curl: blob $digest of $repo:$tag is not in the registry"
    return
  fi
  got=sha256:$(sha256sum "$blob" | cut -d' ' -f1)
  if [ "$got" != "$digest" ] || [ "$(stat -c %s "$blob")" != "$size" ]; then
    fail "blob $digest: fetched $(stat -c %s "$blob") bytes hashing to $got (manifest says $size)"
  elif [ -n "$local_file" ] && ! cmp -s "$blob" "$local_file"; then
    fail "blob $digest differs from $local_file"
  elif [ -n "$local_file" ]; then
    pass "curl: blob $digest ($size bytes, $media) matches the file byte for byte"
  else
    listing=$(tar -tzf "$blob" 2>/dev/null || tar -tf "$blob" 2>/dev/null)
    if grep -q 'sub/data.bin' <<<"$listing" && grep -q 'hello.txt' <<<"$listing"; then
      pass "curl: blob $digest ($size bytes, $media) is the folder's archive"
    else
      fail "blob $digest is not an archive of the folder" "$listing"
    fi
  fi
}

if ! command -v docker-registry >/dev/null || ! command -v curl >/dev/null \
  || ! command -v htpasswd >/dev/null; then
  fail "push to a local registry: needs docker-registry, curl and htpasswd (apt-get install docker-registry curl apache2-utils)"
elif ! command -v python3 >/dev/null; then
  fail "push to a local registry: needs python3 to read JSON"
else
  push_checks
fi

# -- summary -----------------------------------------------------------------------------------
echo "smoke test took $(($(date +%s) - started))s"
echo "smoke-test: $PASSED passed, $FAILED failed, $SKIPPED skipped"
if [ "$FAILED" -ne 0 ]; then
  printf '  failed: %s\n' "${FAILURES[@]}"
  exit 1
fi
exit 0
