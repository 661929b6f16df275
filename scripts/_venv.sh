# Sourced by demo.sh and test.sh: make .venv and install convnp into it with the extras named in $1.
# Reinstalls only when pyproject.toml or the extras change. Works where Debian ships Python without ensurepip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
extras=${1:-}
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv >/dev/null 2>&1; then
        # Debian without python3-venv: make the venv bare, then let the system pip put pip into it.
        rm -rf .venv
        "$PYTHON" -m venv --without-pip .venv
        "$PYTHON" -m pip --python .venv/bin/python install --quiet pip
    fi
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
stamp=".venv/.convnp-installed"
want="$(cat pyproject.toml | cksum) $spec"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setting up .venv: pip install -e '$spec'" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
    echo "$want" > "$stamp"
fi
