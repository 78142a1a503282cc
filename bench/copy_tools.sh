#!/usr/bin/env bash
# Installs the tools that bench/copy_bench.py races against phasegate's copy, once per machine:
#
#   awscli (1.x, from PyPI)  into its own venv   $CACHE/awscli/bin/aws
#   s5cmd  (Go module)       built with go        $CACHE/bin/s5cmd
#   rclone (Debian package)  with apt-get        /usr/bin/rclone (needs root)
#
# CACHE is ~/.cache/phasegate/bench unless PHASEGATE_BENCH_CACHE says otherwise. Running it
# again installs only what is missing or at another version. A tool that cannot be had is
# reported and skipped (copy_bench.py then marks it "not installed"); the exit code is 1 if any
# tool is missing at the end, else 0.
#
# Versions are pinned so two runs of the benchmark race the same competitors; override
# with AWSCLI_VERSION / S5CMD_VERSION. rclone is whatever Debian ships (its version is
# recorded in the results).
set -uo pipefail

CACHE="${PHASEGATE_BENCH_CACHE:-$HOME/.cache/phasegate/bench}"
AWSCLI_VERSION="${AWSCLI_VERSION:-1.46.3}"
S5CMD_VERSION="${S5CMD_VERSION:-v2.3.0}"
PYTHON="${PYTHON:-python3}"

mkdir -p "$CACHE/bin"
missing=()

say() { printf 'copy_tools: %s\n' "$*" >&2; }

# -- awscli: its own venv, so its botocore pin never meets phasegate's -----------------
install_awscli() {
    local venv="$CACHE/awscli"
    if [[ -x "$venv/bin/aws" ]] &&
        [[ "$("$venv/bin/python" -c 'import awscli; print(awscli.__version__)' 2>/dev/null)" == "$AWSCLI_VERSION" ]]; then
        say "awscli $AWSCLI_VERSION: already installed"
        return 0
    fi
    say "awscli $AWSCLI_VERSION: installing into $venv"
    "$PYTHON" -m venv "$venv" &&
        timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check "awscli==$AWSCLI_VERSION" ||
        {
            say "awscli: pip could not install awscli==$AWSCLI_VERSION"
            return 1
        }
}

# -- s5cmd: a Go module, built here (no prebuilt binary can be downloaded) --------------
# Not `go install MODULE@VERSION`: that also asks the proxy for the module's version list
# (to look for a deprecation notice), which the proxy here refuses, and go install then
# fails. `go get` of the exact version in a scratch module, then `go build`, needs only
# that version. The -X flag stamps the version into `s5cmd version`, as release builds do.
install_s5cmd() {
    local bin="$CACHE/bin/s5cmd" stamp="$CACHE/bin/.s5cmd-version" scratch
    if [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$S5CMD_VERSION" ]]; then
        say "s5cmd $S5CMD_VERSION: already installed"
        return 0
    fi
    if ! command -v go >/dev/null; then
        say "s5cmd: no Go toolchain on PATH (needed to build it)"
        return 1
    fi
    say "s5cmd $S5CMD_VERSION: building with go (a minute or two)"
    scratch="$(mktemp -d)"
    if (
        cd "$scratch" &&
            go mod init s5cmd-build >/dev/null 2>&1 &&
            timeout 600 go get "github.com/peak/s5cmd/v2@$S5CMD_VERSION" &&
            GOFLAGS=-buildvcs=false timeout 900 go build -o "$bin.tmp" \
                -ldflags "-X github.com/peak/s5cmd/v2/version.Version=${S5CMD_VERSION#v}" \
                github.com/peak/s5cmd/v2
    ); then
        mv "$bin.tmp" "$bin"
        printf '%s\n' "$S5CMD_VERSION" >"$stamp"
        rm -rf "$scratch"
    else
        rm -rf "$scratch" "$bin.tmp"
        say "s5cmd: could not build github.com/peak/s5cmd/v2@$S5CMD_VERSION"
        return 1
    fi
}

# -- rclone: Debian's package ---------------------------------------------------------
install_rclone() {
    if command -v rclone >/dev/null; then
        say "rclone: already installed ($(command -v rclone))"
        return 0
    fi
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
        say "rclone: not installed and apt-get cannot install it here (needs root and Debian)"
        return 1
    fi
    say "rclone: apt-get install"
    # Refresh the package lists only when they hold no rclone (apt-get update is slow).
    if [[ -z "$(apt-cache policy rclone 2>/dev/null | grep Candidate | grep -v none)" ]]; then
        timeout 600 apt-get update -qq || say "rclone: apt-get update failed"
    fi
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq rclone >/dev/null ||
        {
            say "rclone: apt-get install rclone failed"
            return 1
        }
}

install_awscli || missing+=(awscli)
install_s5cmd || missing+=(s5cmd)
install_rclone || missing+=(rclone)

if ((${#missing[@]})); then
    say "missing: ${missing[*]} (copy_bench.py reports them as not installed)"
    exit 1
fi
say "all tools in place under $CACHE (rclone from the system)"
