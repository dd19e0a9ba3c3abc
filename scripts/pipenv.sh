# Sourced by the other scripts: puts a pinned pipenv within reach as `pipenv_cmd`.
PIPENV_PIN="pipenv==2026.10.3"

pipenv_cmd() {
    python3 -m pipenv "$@"
}

if ! python3 -m pipenv --version >/dev/null 2>&1; then
    echo "Installing $PIPENV_PIN ..." >&2
    # A Debian system Python refuses system-wide installs (PEP 668); a per-user one always works.
    python3 -m pip install --quiet "$PIPENV_PIN" 2>/dev/null || python3 -m pip install --quiet --user "$PIPENV_PIN"
fi
