#!/usr/bin/env bash
# The reference OpenHands Python SDK, runnable on a host whose Python is too old.
#
# openhands needs Python >= 3.12 and the host's system Python may be older, so
# this keeps a minimal Debian trixie root (trixie ships 3.13) with a venv that
# holds the pinned SDK, and runs commands inside it with chroot. The directory
# you call it from appears in the chroot as /src, so relative paths still work.
#
# Usage:
#   xtask/pyenv.sh setup              build the root and venv (once per version)
#   xtask/pyenv.sh python ARGS...     run the venv's python, cwd /src
#   xtask/pyenv.sh server PORT [KEY]  run the Python agent server on 127.0.0.1
#   xtask/pyenv.sh root               print the chroot's directory
#
# Environment:
#   PYREF_VERSION  openhands version of all four packages (default 1.58.2)
#   PYREF_ROOT     cache directory; the chroot is $PYREF_ROOT/rootfs (default
#                  /var/cache/openhands-rs-pyenv-VERSION: one root per version,
#                  owned by this script alone, so no other tool's packages leak in)
#
# `python` and `server` see a clean environment plus every variable whose name
# starts with OH_ or FIXTURE_. Each of their runs mounts its /src (and the
# server its working directory) in a private mount namespace, so concurrent
# runs do not disturb one another.
# Everything but `root` needs root privileges.
set -euo pipefail

VER="${PYREF_VERSION:-1.58.2}"
ROOT="${PYREF_ROOT:-/var/cache/openhands-rs-pyenv-$VER}/rootfs"
STAMP="$ROOT/.pyref-$VER"
VENV=/opt/oh
PACKAGES=(
    "openhands-agent-server==$VER"
    "openhands-workspace==$VER"
    "openhands-tools==$VER"
    "openhands-sdk==$VER"
)
EXTRAS=(websockets httpx)

say() { printf 'pyenv: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

usage() {
    echo "usage: pyenv.sh setup | python ARGS... | server PORT [KEY] | root" >&2
    exit 2
}

need_root() {
    [[ $(id -u) -eq 0 ]] ||
        die "needs root (debootstrap, mount and chroot); run it as root or with sudo"
}

# The host's Debian mirror: deb822 sources first, then the classic list.
mirror() {
    local url=""
    if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
        url=$(awk '$1 == "URIs:" { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
    fi
    if [[ -z $url && -r /etc/apt/sources.list ]]; then
        # Skip options such as [signed-by=...]: take the first URL on a deb line.
        url=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; exit } }' \
            /etc/apt/sources.list)
    fi
    printf '%s\n' "${url:-http://deb.debian.org/debian}"
}

bootstrap() {
    if ! command -v debootstrap >/dev/null; then
        say "installing debootstrap…"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
    fi
    say "building the reference Python root (debootstrap, a few minutes)…"
    mkdir -p "$ROOT"
    debootstrap --variant=minbase \
        --include=python3,python3-venv,ca-certificates,bash,git,procps \
        trixie "$ROOT" "$(mirror)"
}

# The host's CA bundle (it may trust a local proxy) and resolver.
copy_host_files() {
    if [[ -r /etc/ssl/certs/ca-certificates.crt ]]; then
        mkdir -p "$ROOT/etc/ssl/certs"
        cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
    fi
    if [[ -r /etc/resolv.conf ]]; then
        cp -L --remove-destination /etc/resolv.conf "$ROOT/etc/resolv.conf"
    fi
}

mount_system() {
    local dir
    for dir in proc dev dev/pts; do
        mkdir -p "$ROOT/$dir"
        mountpoint -q "$ROOT/$dir" || mount --bind "/$dir" "$ROOT/$dir"
    done
}

# Show the caller's directory at /src, replacing whatever was there. Only
# called in a private mount namespace (see the bottom of this file).
mount_src() {
    mkdir -p "$ROOT/src"
    if mountpoint -q "$ROOT/src"; then
        umount "$ROOT/src"
    fi
    mount --bind "$PWD" "$ROOT/src"
}

# Run a command in the chroot with the host's environment (for pip: proxies,
# index URLs). PIP_FIND_LINKS would name host paths, so it is cleared.
in_root() {
    PIP_FIND_LINKS='' chroot "$ROOT" "$@"
}

# Every openhands package in the venv must be exactly $VER: a pin that pip
# could not honour, or a stray package, would mix two versions of the SDK.
check_versions() {
    in_root "$VENV/bin/python" - "$VER" <<'PY' || die "the venv does not hold openhands $VER throughout"
import sys
from importlib.metadata import distributions

want = sys.argv[1]
found = {
    d.metadata["Name"].lower(): d.version
    for d in distributions()
    if d.metadata["Name"].lower().startswith("openhands-")
}
wrong = {name: ver for name, ver in found.items() if ver != want}
needed = {"openhands-agent-server", "openhands-sdk", "openhands-tools", "openhands-workspace"}
missing = needed - found.keys()
for name, ver in sorted(wrong.items()):
    print(f"pyenv: {name} is {ver}, not {want}", file=sys.stderr)
for name in sorted(missing):
    print(f"pyenv: {name} is missing", file=sys.stderr)
sys.exit(1 if wrong or missing else 0)
PY
}

setup() {
    need_root
    if [[ ! -x $ROOT/usr/bin/python3 ]]; then
        bootstrap
    fi
    copy_host_files
    mount_system
    if [[ ! -e $STAMP ]]; then
        say "installing openhands $VER into the venv…"
        in_root python3 -m venv "$VENV"
        in_root "$VENV/bin/pip" install -q "${PACKAGES[@]}" "${EXTRAS[@]}"
        check_versions
        touch "$STAMP"
    elif ! in_root "$VENV/bin/python" -c 'import websockets, httpx' 2>/dev/null; then
        say "installing ${EXTRAS[*]} into the venv…"
        in_root "$VENV/bin/pip" install -q "${EXTRAS[@]}"
    fi
}

# The environment of python and server: fixed settings plus OH_* and
# FIXTURE_* from the caller.
CLEAN_ENV=(
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    HOME=/root
    LANG=C.UTF-8
    LITELLM_LOCAL_MODEL_COST_MAP=True
    OPENHANDS_SUPPRESS_BANNER=1
)
add_passthrough_env() {
    local name
    for name in $(compgen -e); do
        case $name in
        OH_* | FIXTURE_*) CLEAN_ENV+=("$name=${!name}") ;;
        esac
    done
}

run_python() {
    mount_src
    add_passthrough_env
    exec chroot "$ROOT" /usr/bin/env -i --chdir=/src "${CLEAN_ENV[@]}" "$VENV/bin/python" "$@"
}

check_server_args() {
    [[ $# -ge 1 && $# -le 2 ]] || usage
    [[ $1 =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$1'"
}

run_server() {
    local port=$1
    add_passthrough_env
    if [[ $# -eq 2 ]]; then
        CLEAN_ENV+=("SESSION_API_KEY=$2")
    fi
    # The server keeps its state in its working directory; a fresh tmpfs
    # gives every run an empty one that no other run can see.
    mkdir -p "$ROOT/work-pyserver"
    mount -t tmpfs -o mode=0755 pyserver "$ROOT/work-pyserver"
    exec chroot "$ROOT" /usr/bin/env -i --chdir=/work-pyserver "${CLEAN_ENV[@]}" \
        "$VENV/bin/python" -m openhands.agent_server --host 127.0.0.1 --port "$port"
}

case "${1:-}" in
setup) setup ;;
python | server)
    if [[ -z ${PYREF_PRIVATE_NS:-} ]]; then
        [[ $1 != server ]] || check_server_args "${@:2}"
        setup
        # Run again in a private mount namespace: the root is shared (with
        # other tooling, with other runs of this script), but the /src and
        # server directory mounted from here on are seen by this run alone.
        PYREF_PRIVATE_NS=1 exec unshare --mount --propagation private -- \
            bash "${BASH_SOURCE[0]}" "$@"
    fi
    task=$1
    shift
    "run_$task" "$@"
    ;;
root) printf '%s\n' "$ROOT" ;;
*) usage ;;
esac
