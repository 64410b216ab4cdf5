# Sourced by build-guests: the pinned versions of the tools that build guests,
# and `install_crate`, which `cargo install`s one at its version unless that version is there.
# The shared CARGO_TARGET_DIR is for the project; installs build in cargo's own temporary
# directory.
WASM_TOOLS_VERSION=1.263.0
WIT_BINDGEN_VERSION=0.63.0
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"

install_crate() { # crate binary version [cargo install flags]
  local have
  have=$("$cargo_bin/$2" --version 2>/dev/null | awk '{print $2}' || true)
  if [ "$have" != "$3" ]; then
    say "installing $1 $3 (found: ${have:-none})"
    env -u CARGO_TARGET_DIR cargo install --locked --quiet "${@:4}" "$1@$3"
  fi
}
