#!/usr/bin/env bash
# Run on the networked machine, once the offline kit is staged in .gpu/: turns the kit's pyzmq sources into .gpu/pyzmq.tar.xz, the pure-Python
# package plus its Cython extension already translated to C. The GPU host lacks pyzmq's build backend
# (scikit-build-core, cmake), so it only has to compile one C file (pyzmq-build.sh), ~20 s.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -c "import sys,tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$root/.gpu/zmq.tar.xz" "$work"
tar -C "$work" -xzf "$work"/pyzmq_*.orig.tar.gz
src=$(echo "$work"/pyzmq-*/)
(cd "$src" && PYTHONPATH="$work/cython" python3 -c "
import sys
sys.argv = ['cython', '-3', '--module-name', 'zmq.backend.cython._zmq', '-I', 'zmq/backend/cython',
            'zmq/backend/cython/_zmq.py', '-o', 'zmq/backend/cython/_zmq.c']
from Cython.Compiler.Main import setuptools_main
setuptools_main()" 2>/dev/null)
find "$src/zmq" -name '*.so' -delete
rm -rf "$src/zmq/tests"
tar -C "$src" -cf - zmq | xz -9 -T0 > "$root/.gpu/pyzmq.tar.xz"
ls -la "$root/.gpu/pyzmq.tar.xz"
