#!/usr/bin/env bash
# Source on the GPU host after .gpu/bootstrap.sh: compiles pyzmq's extension (from .gpu/pyzmq.tar.xz, see
# stage-pyzmq.sh) against the kit's libzmq for this host's python3, once per host, and puts it on PYTHONPATH.
_pz=/opt/gpu-kit/pyzmq
if ! python3 -c 'import zmq' 2>/dev/null; then
  if [ ! -f $_pz/.built ]; then
    mkdir -p $_pz && tar -C $_pz -xJf "$(dirname "${BASH_SOURCE[0]}")/../../.gpu/pyzmq.tar.xz"
    _inc=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    _ext=$(python3 -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
    gcc -O2 -shared -fPIC -w -I"$_inc" -I/opt/gpu-kit/zmq/prefix/include -I$_pz/zmq/utils \
      $_pz/zmq/backend/cython/_zmq.c -L/opt/gpu-kit/zmq/prefix/lib -lzmq -Wl,-rpath,/opt/gpu-kit/zmq/prefix/lib \
      -o "$_pz/zmq/backend/cython/_zmq$_ext" && touch $_pz/.built
  fi
  export PYTHONPATH=$_pz${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -c 'import zmq; print("pyzmq", zmq.__version__, "libzmq", zmq.zmq_version())'
unset _pz _inc _ext
