#!/usr/bin/env bash
# Regenerates tests/ptx/*.ptx from tests/cuda/*.cu with the repo-local nvcc (scripts/setup-cuda
# installs it), for compute_80 with line info (or for the architecture a source names on a first-line
# `// nvcc-arch: ARCH` comment, e.g. compute_90a for the Hopper kernels). Run from anywhere; commit the result.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../../.." && pwd)
nvcc=${NVCC:-$root/.cuda/nvidia/cu13/bin/nvcc}
[ -x "$nvcc" ] || { echo "regen.sh: no nvcc at $nvcc (run scripts/setup-cuda or set NVCC)" >&2; exit 1; }
cd "$here"
for cu in *.cu; do
  arch=$(sed -n '1s|^// nvcc-arch: ||p' "$cu")
  "$nvcc" -ptx -arch="${arch:-compute_80}" -lineinfo -std=c++17 "$cu" -o "../ptx/${cu%.cu}.ptx"
  # nvcc writes absolute paths into the .file directives: make them relative to the repo root so
  # the committed PTX does not depend on this machine's directories.
  sed -i "s|\"$root/|\"|" "../ptx/${cu%.cu}.ptx"
  echo "regen.sh: wrote tests/ptx/${cu%.cu}.ptx"
done
