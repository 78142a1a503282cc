#!/usr/bin/env bash
# Builds the Pulumi CLI from source through the Go module proxy, for machines where no
# Pulumi release can be downloaded but Go can fetch modules, and puts it, with the
# scripts the CLI's distribution ships beside it, in a cache directory outside the
# repository. Prints that directory (its bin/) as the last line of stdout:
#
#     PATH="$(scripts/build-pulumi.sh):$PATH"
#
# Pinned to one version, the lowest the proxy serves at or above the `pulumi` Python
# SDK phasegate depends on. A second run finds the build in place and takes seconds.
#
# What it builds and takes:
#   pulumi                          the CLI (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi),
#                                   from a throwaway module that requires pkg/v3 and sdk/v3
#                                   at the same version and repeats pkg/v3's non-local
#                                   replace directives (which is why `go install` refuses it)
#   pulumi-resource-pulumi-python   runs Python dynamic providers   } files of the sdk/v3
#   pulumi-language-python-exec     runs a Python program           } module, as shipped
#
# Not served by the module proxy here, so not built: the Python language host
# (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3, a module of its
# own). Without it the CLI runs Python programs only inline, through the Automation API,
# which is how phasegate runs them, and starts a Python policy pack only as an executable,
# which is how phasegate passes them (src/phasegate/engines/pulumi_policy.py).
set -euo pipefail

VERSION="${PHASEGATE_PULUMI_VERSION:-v3.274.0}"
CACHE="${PHASEGATE_PULUMI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/phasegate/pulumi}"
HOME_DIR="$CACHE/$VERSION"
BIN="$HOME_DIR/bin"
SRC="$HOME_DIR/src"

say() { echo "build-pulumi: $*" >&2; }

if [ -x "$BIN/pulumi" ] && [ "$("$BIN/pulumi" version 2>/dev/null)" = "$VERSION" ] \
    && [ -x "$BIN/pulumi-resource-pulumi-python" ] && [ -x "$BIN/pulumi-language-python-exec" ]; then
    say "Pulumi CLI $VERSION already built"
    echo "$BIN"
    exit 0
fi

command -v go >/dev/null || { say "needs go on PATH"; exit 1; }
say "building the Pulumi CLI $VERSION from source (a few minutes the first time) in $HOME_DIR"
mkdir -p "$SRC" "$BIN"
cd "$SRC"

# The module's own go.mod says which replaces it builds with; the local ones (sdk/v3 =>
# ../sdk) become plain requirements of the same version.
pkg_mod="$(go mod download -json "github.com/pulumi/pulumi/pkg/v3@$VERSION" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
[ -f "$pkg_mod" ] || { say "the module proxy did not give pkg/v3@$VERSION"; exit 1; }
go_line="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$pkg_mod" | head -1)"
{
    echo "module phasegate.local/pulumi-build"
    echo
    echo "go ${go_line:-1.26}"
    echo
    grep -E '^replace [^ ]+( v[^ ]+)? => [^./][^ ]* v' "$pkg_mod" || true
} > go.mod
cat > tools.go <<'EOF'
//go:build tools

package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
EOF
go get "github.com/pulumi/pulumi/pkg/v3@$VERSION" "github.com/pulumi/pulumi/sdk/v3@$VERSION" >&2
go mod tidy >&2
go build -trimpath \
    -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$VERSION" \
    -o "$BIN/pulumi.new" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi >&2

sdk="$(go list -m -f '{{.Dir}}' "github.com/pulumi/pulumi/sdk/v3")"
for script in python/dist/pulumi-resource-pulumi-python python/cmd/pulumi-language-python-exec; do
    install -m 0755 "$sdk/$script" "$BIN/$(basename "$script")"
done
mv "$BIN/pulumi.new" "$BIN/pulumi"
say "built $("$BIN/pulumi" version) into $BIN"
echo "$BIN"
